from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import pytest

from tasks.dedup import DedupItem, exact_dedup, number_signature, semantic_dedup
from tasks.embed import embed_texts
from tasks.types import Question

TABLE_A = "| Line item | 2019 | 2020 |\n|---|---|---|\n| Revenue | 100 | 120 |"
TABLE_B = "| Line item | 2019 | 2020 |\n|---|---|---|\n| Revenue | 300 | 250 |"


def test_exact_dedup_is_order_independent():
    qs = [Question(text="What is  2+2?", source="jsonl", source_id=f"f:{i}") for i in range(3)]
    qs.append(Question(text="what is 2+2?", source="gsm8k", source_id="g:1"))
    kept1, rej1 = exact_dedup(qs)
    kept2, rej2 = exact_dedup(list(reversed(qs)))
    assert len(kept1) == 1 and kept1[0].source_id == kept2[0].source_id == "g:1"
    assert sorted(r.item_id for r in rej1) == sorted(r.item_id for r in rej2)
    assert sorted(r.detail.split(":")[0] + ":" + r.detail.split(":")[1] for r in rej1) == \
        ["f:0", "f:1", "f:2"]
    # Same line numbers in two files of the same name never share a rejection key.
    a = Question(text="x y z", source="gsm8k", source_id="gsm8k:train.jsonl:1")
    b = Question(text="x y z", source="jsonl", source_id="gsm8k:train.jsonl:1")
    c = Question(text="x y z", source="tatqa", source_id="gsm8k:train.jsonl:1")
    _, rej = exact_dedup([a, b, c])
    assert len({r.item_id for r in rej}) == 2
    assert all(r.reason == "exact_duplicate" for r in rej1)


def test_number_signature():
    assert number_signature("From 2019 to 2,020 by 3.5") == frozenset({"2019", "2020", "3.5"})


def _items(texts_contexts):
    return [DedupItem(f"id{i:02d}", t, c) for i, (t, c) in enumerate(texts_contexts)]


def test_semantic_dedup_collapses_paraphrase_but_respects_context_and_numbers():
    rows = [
        ("What was the percentage change in revenue from 2019 to 2020?", TABLE_A),
        ("What was the percent change in revenue from 2019 to 2020?", TABLE_A),  # paraphrase
        ("What was the percentage change in revenue from 2019 to 2020?", TABLE_B),  # other table
        ("What was the percentage change in revenue from 2018 to 2019?", TABLE_A),  # other years
    ]
    items = _items(rows)
    vecs = embed_texts([t for t, _ in rows])
    assert float(vecs[0] @ vecs[1]) >= 0.95  # the guard, not the model, separates 0/2 and 0/3
    out = {i: (rep, sim) for i, rep, sim in semantic_dedup(items, vecs, threshold=0.95)}
    assert out["id01"][0] == "id00" and out["id01"][1] >= 0.95
    assert out["id00"] == ("id00", 1.0)
    assert out["id02"][0] == "id02"
    assert out["id03"][0] == "id03"
    # Without the numbers guard the year-swapped question would collapse too.
    loose = {i: rep for i, rep, _ in semantic_dedup(items, vecs, threshold=0.95,
                                                    numbers_must_match=False)}
    assert loose["id02"] == "id02"


def test_representative_does_not_depend_on_input_order():
    rows = [(f"How many apples does Tom have if he buys {n} apples?", "") for n in (3, 3, 3)]
    rows[1] = ("How many apples does Tom have if he buys 3 apples ?", "")
    rows[2] = ("How many apples does Tom have, if he buys 3 apples?", "")
    items = _items(rows)
    vecs = embed_texts([t for t, _ in rows])
    base = {i: r for i, r, _ in semantic_dedup(items, vecs)}
    order = list(range(3))
    for seed in range(4):
        random.Random(seed).shuffle(order)
        got = {i: r for i, r, _ in semantic_dedup([items[k] for k in order], vecs[order])}
        assert got == base
    assert set(base.values()) == {"id00"}


def test_new_items_map_to_warehouse_representatives():
    known_rows = [("What was the percent change in revenue from 2019 to 2020?", TABLE_A)]
    new_rows = [("What was the percentage change in revenue from 2019 to 2020?", TABLE_A),
                ("What was the average revenue in 2019 and 2020?", TABLE_A)]
    known = [DedupItem("zz-known", *known_rows[0])]
    new = [DedupItem("aa-new", *new_rows[0]), DedupItem("bb-new", *new_rows[1])]
    kv = embed_texts([known_rows[0][0]])
    nv = embed_texts([t for t, _ in new_rows])
    out = {i: r for i, r, _ in semantic_dedup(new, nv, known, kv)}
    # The stored item keeps its role even though the new id sorts first.
    assert out == {"aa-new": "zz-known", "bb-new": "bb-new"}


def test_generator_paraphrase_pair_collapses_to_one():
    from tasks.sources.procedural import generate_questions

    qs = generate_questions(600, seed=3)
    groups = defaultdict(list)
    for q in qs:
        groups[q.meta["underlying_id"]].append(q)
    pairs = [g for g in groups.values() if len({q.text for q in g}) > 1]
    if not pairs:
        pytest.fail("the generator produced no paraphrase pair in 600 items")
    a, b = pairs[0][0], next(q for q in pairs[0] if q.text != pairs[0][0].text)
    items = [DedupItem(q.question_id, q.text, q.context) for q in (a, b)]
    vecs = embed_texts([a.text, b.text])
    reps = {rep for _, rep, _ in semantic_dedup(items, vecs)}
    assert len(reps) == 1, (a.text, b.text, float(vecs[0] @ vecs[1]))
    # And over all generated items, most paraphrase groups collapse.
    uniq = list({q.question_id: q for q in qs}.values())
    vecs = embed_texts([q.text for q in uniq])
    rep_of = {i: r for i, r, _ in semantic_dedup(
        [DedupItem(q.question_id, q.text, q.context) for q in uniq], vecs)}
    collapsed = sum(1 for g in pairs
                    if len({rep_of[q.question_id] for q in g}) == 1)
    assert collapsed / len(pairs) >= 0.8, (collapsed, len(pairs))
    assert np.isfinite(vecs).all()


@pytest.mark.slow
def test_leader_grouping_never_records_a_duplicate_beyond_the_threshold():
    # The generator's distinct texts in one block (no context, no numbers guard): the
    # similarity graph is dense, and components chain through it.
    from tasks.sources.procedural import generate_questions

    qs = list({q.text_key: q for q in generate_questions(1500, seed=3)}.values())
    items = [DedupItem(q.question_id, q.text, "") for q in qs]
    vecs = embed_texts([q.text for q in qs])
    by_id = {it.item_id: v for it, v in zip(items, vecs, strict=True)}
    t = 0.95
    comp = semantic_dedup(items, vecs, threshold=t, numbers_must_match=False)
    lead = semantic_dedup(items, vecs, threshold=t, numbers_must_match=False,
                          grouping="leader")
    rep_of = {i: r for i, r, _ in lead}
    assert sum(i != r for i, r, _ in lead) > 300
    for item, rep, sim in lead:
        if item != rep:
            assert sim >= t and float(by_id[item] @ by_id[rep]) >= t, (item, rep, sim)
            assert rep_of[rep] == rep  # its representative is kept
    # The same data chains under components: members far below the threshold.
    assert min(sim for i, r, sim in comp if i != r) < 0.9
