"""The procedural source: determinism, splits, kinds, paraphrase/duplicate rates, gold programs.

Gold programs are untrusted elsewhere, so they are never exec'd here: a tiny AST evaluator
(numbers, names, + - * / **) checks them against gold_answer instead, and one test runs a
sample through the real sandbox.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections import Counter, defaultdict

import pytest

from tasks.sources.procedural import KINDS, PHRASINGS, generate_questions
from tasks.types import Question

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.Pow: operator.pow}


def _arith(src: str) -> float:
    """Value of `ans` for straight-line arithmetic; anything else fails the test."""
    env: dict[str, float] = {}

    def ev(node: ast.expr) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return node.value
        if isinstance(node, ast.Name):
            return env[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        raise AssertionError(f"unexpected node {ast.dump(node)}")

    for stmt in ast.parse(src).body:
        assert isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name)
        env[stmt.targets[0].id] = ev(stmt.value)
    return env["ans"]


def _full(q: Question) -> tuple:
    # Question equality ignores meta; determinism must cover it too.
    return (q.text, q.context, q.gold_answer, q.gold_program, q.difficulty, q.source_id, q.meta)


@pytest.fixture(scope="module")
def train() -> list[Question]:
    return generate_questions(2000, seed=11)


def test_deterministic_and_prefix_stable() -> None:
    a = generate_questions(300, seed=7)
    assert [_full(q) for q in a] == [_full(q) for q in generate_questions(300, seed=7)]
    longer = generate_questions(700, seed=7)
    assert [_full(q) for q in a] == [_full(q) for q in longer[:300]]
    assert [q.text for q in generate_questions(300, seed=8)] != [q.text for q in a]


def test_seeds_never_share_tables() -> None:
    ctx = {q.context for q in generate_questions(1000, seed=1)}
    assert not ctx & {q.context for q in generate_questions(1000, seed=2)}


def test_unknown_split_rejected() -> None:
    with pytest.raises(ValueError):
        generate_questions(5, split="test")


def _pattern(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{\w+\\\}", ".+", re.escape(template)) + r"\Z")


def test_heldout_disjoint_from_train(train: list[Question]) -> None:
    heldout = generate_questions(2000, seed=11, split="heldout")
    assert not {q.question_id for q in train} & {q.question_id for q in heldout}
    assert not {q.context for q in train} & {q.context for q in heldout}
    for kind, (tr, ho) in PHRASINGS.items():
        assert len(tr) >= 3 and len(ho) >= 1 and not set(tr) & set(ho), kind
    for split, items, allowed in (("train", train, 0), ("heldout", heldout, 1)):
        for q in items:
            own = PHRASINGS[q.meta["kind"]][allowed]
            other = PHRASINGS[q.meta["kind"]][1 - allowed]
            assert q.source_id.startswith(f"procedural:{split}:11:")
            assert (q.meta["phrasing"] >= len(PHRASINGS[q.meta["kind"]][0])) == bool(allowed)
            # The text itself, not only the recorded index, must come from the split's set.
            assert any(_pattern(t).match(q.text) for t in own), q.text
            assert not any(_pattern(t).match(q.text) for t in other), q.text


def test_kinds_and_fields(train: list[Question]) -> None:
    assert len(KINDS) >= 8
    assert set(Counter(q.meta["kind"] for q in train)) == set(KINDS)
    for i, q in enumerate(train):
        assert q.source == "procedural" and q.source_id == f"procedural:train:11:{i}"
        assert q.difficulty is not None and q.difficulty >= 1
        assert math.isfinite(float(q.gold_answer))
        assert {"kind", "phrasing", "company", "years", "unit", "underlying_id",
                "table"} <= set(q.meta)
        title, header = q.context.split("\n")[:2]
        assert q.meta["company"] in title and q.meta["unit"] in title
        assert header == "| Line item | " + " | ".join(map(str, q.meta["years"])) + " |"
        rows = q.meta["table"]["rows"]
        assert 4 <= len(rows) <= 8 and 2 <= len(q.meta["years"]) <= 4
        assert all(v > 0 for vals in rows.values() for v in vals)


def test_gold_programs_match_answers(train: list[Question]) -> None:
    for q in train:
        compile(q.gold_program, "<p>", "exec")
        tree = ast.parse(q.gold_program)
        assert isinstance(tree.body[-1], ast.Assign) and tree.body[-1].targets[0].id == "ans"
        assert q.difficulty == sum(isinstance(n, ast.BinOp) for n in ast.walk(tree))
        # Same operands in the same order: the values must agree exactly, not just closely.
        assert repr(round(_arith(q.gold_program), 6)) == q.gold_answer, q.gold_program
        # Every operand the program names is printed in the context table.
        for stmt in tree.body[:-1]:
            value = stmt.value.value
            shown = f"{value:,.0f}" if isinstance(value, int) else f"{value:,.1f}"
            assert f" {shown} |" in q.context


def test_paraphrase_and_duplicate_rates(train: list[Question]) -> None:
    by_uid: dict[str, list[Question]] = defaultdict(list)
    for q in train:
        by_uid[q.meta["underlying_id"]].append(q)
    paraphrases = duplicates = 0
    for group in by_uid.values():
        texts = {q.text for q in group}
        assert len({(q.context, q.gold_answer, q.meta["kind"]) for q in group}) == 1
        paraphrases += len(texts) - 1
        duplicates += len(group) - len(texts)
    # Expected ~200 and ~40 in 2000 items; bounds are several standard deviations wide.
    assert 130 <= paraphrases <= 280
    assert 15 <= duplicates <= 75
    ids = Counter(q.question_id for q in train)
    assert sum(c - 1 for c in ids.values()) == duplicates  # exact duplicates share question_id
    assert Counter(q.meta["origin"] for q in train)["paraphrase"] == paraphrases


def test_gold_programs_run_in_sandbox() -> None:
    from tasks.execute import execute_programs

    qs = generate_questions(200, seed=3)
    results = execute_programs([q.gold_program for q in qs], timeout_s=5.0, memory_mb=512,
                               workers=2)
    for q, r in zip(qs, results, strict=True):
        assert r.status == "ok", (q.gold_program, r)
        assert math.isclose(float(r.value), float(q.gold_answer), rel_tol=1e-6, abs_tol=1e-6)

