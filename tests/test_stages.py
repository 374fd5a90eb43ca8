"""Each refresh stage alone, through the stage contract, on a small batch with a real
temporary warehouse (datatrove's `filter.filter(doc)` style): what it keeps, what it
rejects and why, and what it hands the warehouse."""

from __future__ import annotations

import pytest

from quality.stage import QualityConfig, Validate
from tasks.checks import Check
from tasks.decontaminate import DecontamConfig, Decontaminate
from tasks.dedup import Dedup, DedupConfig
from tasks.embed import DEFAULT_MODEL, Embed
from tasks.execute import ExecConfig, Execute
from tasks.sources import load_questions
from tasks.stage import StageResult
from tasks.teachers.base import Selection
from tasks.teachers.reference import ReferenceTeacher
from tasks.types import Question, Sample
from warehouse import Store


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "wh.duckdb")


def _q(text: str, answer: str | None = "7", program: str | None = "ans = 7",
       context: str = "") -> Question:
    return Question(text=text, source="test", context=context, gold_answer=answer,
                    gold_program=program, source_id=text[:12])


def _embedded(store: Store, questions: list[Question]) -> None:
    """What the embed stage does before dedup: vectors into the cache."""
    result = Embed(DEFAULT_MODEL, store).run(Embed(DEFAULT_MODEL, store).todo(questions))
    store.save_stage("r0", result)


def test_embed_works_only_on_texts_without_vectors(store):
    qs = [_q("How many apples are left?"), _q("How many apples are left?", context="x"),
          _q("What is the total cost?")]
    embed = Embed(DEFAULT_MODEL, store)
    todo = embed.todo(qs)
    assert [q.text for q in todo] == ["How many apples are left?", "What is the total cost?"]
    result = embed.run(todo)
    assert result.kept == todo and result.counts["embedded"] == 2
    store.save_stage("r0", result)
    assert embed.todo(qs) == []  # stored: never embedded twice


def test_dedup_stage_collapses_exact_and_semantic_duplicates(store):
    a = _q("A shop sells 12 apples and 7 pears. How many fruits does it sell?")
    b = _q("A shop sells 12 apples and 7 pears. How many fruits does it sell in total?")
    c = _q("A train travels 60 km in 2 hours. What is its speed?")
    exact = Question(text=a.text.upper(), source="test", gold_answer="19", source_id="zz")
    batch = [a, b, c, exact]
    _embedded(store, batch)
    result = Dedup(DedupConfig(), store).run(batch)
    assert {r.reason for r in result.rejections} == {"exact_duplicate", "semantic_duplicate"}
    assert all(r.stage == "dedup" for r in result.rejections)
    assert len(result.kept) == 2 and c in result.kept
    assert result.counts["new"] == 3
    # Questions, dedup verdicts and rejections land together.
    store.save_stage("r1", result)
    assert store.counts()["dedup"] == 3 and store.counts()["questions"] == 3
    again = Dedup(DedupConfig(), store).run(batch)
    assert again.counts["already_done"] == 1 and again.counts["new"] == 0  # the duplicate
    # Stored but not yet decided (no teacher ran): they come back as stored, undeduped.
    assert again.counts["resumed"] == 2
    assert {q.question_id for q in again.kept} == {q.question_id for q in result.kept}


def test_decontaminate_stage_rejects_benchmark_questions(store, shared_data):
    spec = f"gsm8k:{shared_data / 'gsm8k' / 'test.jsonl'}"
    bench = load_questions(spec, n=5)
    mine = _q("A baker makes 12 trays of 7 rolls. How many rolls in all?", "84", "ans = 84")
    stage = Decontaminate(DecontamConfig(decontaminate=[spec]), store, DEFAULT_MODEL,
                          lambda s: load_questions(s, n=5))
    result = stage.run([bench[0], mine])
    assert result.kept == [mine]
    assert [(r.item_id, r.stage) for r in result.rejections] == [
        (bench[0].question_id, "decontaminate")]


def test_reference_teacher_execute_and_check(store):
    good = _q("Seven?", "7", "ans = 3 + 4")
    wrong = _q("Eight?", "8", "ans = 3 + 4")
    broken = _q("Nine?", "9", "ans = 1 / 0")
    none = _q("No program?", "1", None)
    taught = ReferenceTeacher().run([good, wrong, broken, none])
    assert [r.reason for r in taught.rejections] == ["no_program"]
    assert all(s.teacher == "reference" for s in taught.kept)

    executed = Execute(ExecConfig()).run(taught.kept)
    assert [s.exec_status for s in executed.kept] == ["ok", "ok", "error"]
    assert [(r.item_id, r.stage, r.reason) for r in executed.rejections] == [
        (broken.question_id, "execute", "error")]

    by_id = {q.question_id: q for q in (good, wrong, broken)}
    checked = Check(by_id, Selection()).run(executed.kept)
    assert [s.question_id for s in checked.kept] == [good.question_id]
    assert [(r.item_id, r.reason) for r in checked.rejections] == [
        (wrong.question_id, "wrong_answer")]
    assert [s.correct for s in checked.records["samples"]] == [True, False, None]
    store.save_stage("r2", checked)
    assert store.counts()["samples"] == 3


def test_check_stage_keeps_distinct_correct_samples_with_multi_selection():
    q = _q("Seven?", "7", None)
    samples = [Sample(q.question_id, "openai", "m", "pot_v1", i, p, exec_status="ok",
                      exec_value=v)
               for i, (p, v) in enumerate([("ans = 7", 7), ("ans = 3 + 4", 7),
                                           ("ans = 7  # same", 7), ("ans = 8", 8)])]
    result = Check({q.question_id: q}, Selection(multi=True, keep_per_question=2)).run(samples)
    rows = result.records["selections"]
    assert [r["rank"] for r in rows] == [0, 1] and len(result.kept) == 1
    assert {r["sample_id"] for r in rows} == {samples[0].sample_id, samples[1].sample_id}


def test_quality_stage_names_the_failing_expectation_and_holds_a_failed_batch(store):
    qs = [_q(f"Question number {i} about apples?", "7", "ans = 7") for i in range(4)]
    samples = [Sample(q.question_id, "reference", "gold", "ref-v1", 0, "ans = 7",
                      exec_status="ok", predicted="7", correct=True) for q in qs]
    samples[0].predicted = "inf"  # ran, but no finite answer (on a question without gold)
    by_id = {q.question_id: q for q in qs}
    ok = Validate(QualityConfig(max_rejected_fraction=0.5), by_id, "r3").run(samples)
    assert len(ok.kept) == 3 and [r.stage for r in ok.rejections] == ["quality"]
    assert ok.rejections[0].reason == "expect_column_values_to_be_finite_numbers(answer)"
    held = Validate(QualityConfig(max_rejected_fraction=0.1), by_id, "r3").run(samples)
    assert held.kept == [] and held.counts["gate_failed"] == 1
    assert sorted(r.stage for r in held.rejections) == ["quality"] + ["quality_gate"] * 3
    store.save_stage("r3", held)
    assert store.counts()["rejections"] == 4
    _, suites = store.query("SELECT suite, success FROM validations ORDER BY suite")
    assert ("curated_batch", False) in suites and len(suites) >= 2  # one row per suite


def test_stage_results_merge_by_chunk():
    a: StageResult[int] = StageResult(kept=[1], records={"samples": [1]})
    a.merge(StageResult(kept=[2], records={"samples": [2], "dedup": [3]}))
    assert a.kept == [1, 2] and a.records == {"samples": [1, 2], "dedup": [3]}
