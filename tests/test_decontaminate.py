from __future__ import annotations

from tasks.decontaminate import Benchmark, contamination_rejections, ngram_matches, ngrams
from tasks.embed import embed_texts
from tasks.sources import load_questions
from tasks.types import Question


def _q(text: str, sid: str, context: str = "") -> Question:
    return Question(text=text, source="t", source_id=sid, context=context)


def test_ngrams_short_and_long():
    assert ngrams("A b c", 10) == {("a", "b", "c")}
    assert len(ngrams(" ".join(f"w{i}" for i in range(12)), 10)) == 3


def test_gsm8k_test_question_is_caught_by_ngrams_and_its_paraphrase_by_embeddings(
        shared_data):
    test = load_questions(f"gsm8k:{shared_data / 'gsm8k' / 'test.jsonl'}", n=200)
    bench = Benchmark("gsm8k-test", test)
    leaked = _q(test[5].text, "train:leak")
    words = test[7].text.split()
    # A light paraphrase: numbers and a few words changed, no 10-gram left in common.
    para_text = test[7].text.replace("How many", "What number of").replace(",", " ,")
    para = _q(para_text, "train:para")
    clean = _q("A farmer plants 17 rows of corn with 9 stalks each. How many stalks?",
               "train:clean")
    qs = [leaked, para, clean]
    assert leaked.question_id in ngram_matches(qs, bench)
    vecs = embed_texts([q.text for q in qs])
    bvecs = embed_texts([q.text for q in test])
    rej = {r.item_id: r for r in contamination_rejections(qs, vecs, [(bench, bvecs)])}
    assert rej[leaked.question_id].reason == "benchmark_overlap"
    assert test[5].source_id in rej[leaked.question_id].detail
    assert para.question_id in rej and words
    assert clean.question_id not in rej
    assert all(r.stage == "decontaminate" for r in rej.values())


def test_context_decides_for_table_questions():
    table = "| Line item | 2018 | 2019 |\n|---|---|---|\n| Revenue | 5,829 | 5,735 |"
    other = "| Line item | 2018 | 2019 |\n|---|---|---|\n| Revenue | 100 | 120 |"
    text = "What was the change in revenue from 2018 to 2019?"
    b = Benchmark("tatqa-test", [_q(text, "b1", table)])
    bv = embed_texts([text])
    same_table = _q(text + " ", "q1", table)
    other_table = _q(text, "q2", other)
    reworded = _q("By how much did revenue change between 2018 and 2019?", "q3", table)
    qs = [same_table, other_table, reworded]
    out = {r.item_id: r.reason for r in contamination_rejections(
        qs, embed_texts([q.text for q in qs]), [(b, bv)])}
    assert out[same_table.question_id] == "benchmark_overlap"
    assert other_table.question_id not in out      # the same words over another table
    assert out[reworded.question_id] in {"benchmark_overlap", "benchmark_paraphrase"}
