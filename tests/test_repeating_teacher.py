"""The noisy teacher's `repeating` mode (tasks/teachers/mistakes.py): a misunderstood question
type gets the same mistake on every one of its questions and no other question is touched;
the real sandbox runs each wrong program and the real answer check rejects it as
`wrong_answer`; the plan is a pure function of seed, share and type, and a refresh records
it."""

from __future__ import annotations

import ast
import json
from collections import Counter
from pathlib import Path

import pytest

from tasks.checks import check_samples
from tasks.execute import execute_programs
from tasks.sources import load_questions
from tasks.teachers import make_teacher
from tasks.teachers.mistakes import MISTAKES, MistakePlan, fitting, question_types, shape
from tasks.teachers.noisy import NoisyTeacher, NoisyTeacherConfig
from tasks.teachers.reference import reference_program
from tasks.types import Question, Rejection


@pytest.fixture(scope="module")
def procedural() -> list[Question]:
    return list({q.question_id: q for q in load_questions("procedural", n=300, seed=13)
                 }.values())


@pytest.fixture(scope="module")
def tatqa(shared_data: Path) -> list[Question]:
    path = shared_data / "tatqa" / "tatqa_dataset_dev.json"
    return list({q.question_id: q for q in load_questions(f"tatqa:{path}")
                 if q.meta.get("answer_type") == "arithmetic"}.values())


def _verify(samples, questions) -> dict[str, str]:
    """question_id -> (stage, reason) of the real execute + check stages' rejections."""
    by_id = {q.question_id: q for q in questions}
    rejections = check_samples(samples, execute_programs([s.program for s in samples]), by_id)
    return {r.item_id: f"{r.stage}:{r.reason}" for r in rejections}


def _types(questions: list[Question]) -> dict[str, tuple[str | None, str | None]]:
    out = {}
    for q in questions:
        program = reference_program(q)
        if not isinstance(program, Rejection):
            out[q.question_id] = question_types(q, program)
    return out


def _ans_shape(program: str) -> str:
    return shape(program.strip().splitlines()[-1].split("=", 1)[1].strip())


def test_percent_change_over_the_new_value_on_every_percent_change_question(procedural):
    """The misunderstood type (pinned) is wrong the same way on each of its questions; every
    other question keeps its reference program; verification rejects exactly the wrong ones."""
    kind = "procedural:percent_change"
    teacher = NoisyTeacher(noise="repeating", wrong_types=[kind],
                           mistakes=["percent_change_over_new"])
    result = teacher.run(procedural)
    by_id = {q.question_id: q for q in procedural}
    mine = [s for s in result.kept if s.meta["question_type"].startswith(kind + ":")]
    others = [s for s in result.kept if s not in mine]
    assert len(mine) >= 30 and len(others) >= 200
    for s in mine:
        assert s.meta["mistakes"] == {s.meta["question_type"]: "percent_change_over_new"}
        assert s.meta["error_kind"] == "percent_change_over_new"
        assert _ans_shape(reference_program(by_id[s.question_id])) == "(a-b)/b*100"
        assert _ans_shape(s.program) == "(a-b)/a*100"  # over the new value, every time
        assert s.program.splitlines()[:-1] == \
            reference_program(by_id[s.question_id]).strip().splitlines()[:-1]
    for s in others:
        assert s.program == reference_program(by_id[s.question_id])
        assert "mistakes" not in s.meta and not s.meta.get("error_kind")
    verdicts = _verify(result.kept, procedural)
    assert verdicts == {s.question_id: "check:wrong_answer" for s in mine}


@pytest.mark.parametrize("mistake", [m for m in MISTAKES if m != "wrong_header_level"])
def test_each_formula_mistake_repeats_on_its_type_and_is_rejected(procedural, tatqa, mistake):
    """For each mistake, the most common type it fits (procedural, else TAT-QA dev): pinned,
    every question of that type carries it and fails the answer check, none other does."""
    for questions in (procedural, tatqa):
        types = Counter(f for f, _ in _types(questions).values()
                        if f and mistake in fitting(f.rsplit(":", 1)[-1]))
        if types and types.most_common(1)[0][1] >= 5:
            break
    qtype, n = types.most_common(1)[0]
    assert n >= 5, (mistake, types)
    result = NoisyTeacher(noise="repeating", wrong_types=[qtype], mistakes=[mistake]
                          ).run(questions)
    mine = [s for s in result.kept if s.meta.get("question_type") == qtype]
    assert len(mine) == n
    assert all(s.meta["mistakes"] == {qtype: mistake} for s in mine)
    wrong = [s for s in mine if s.meta["error_kind"] == mistake]
    # Only equal operands (a - b with a == b) can hide a fitting mistake; they are labelled.
    assert len(wrong) >= n - 1 and all(s.meta.get("answer_unchanged") for s in mine
                                      if s not in wrong)
    assert not [s for s in result.kept if s not in mine and s.meta.get("error_kind")]
    verdicts = _verify(result.kept, questions)
    assert verdicts == {s.question_id: "check:wrong_answer" for s in wrong}


def test_wrong_header_level_reads_the_other_group_on_real_tables(tatqa):
    """TAT-QA questions with an operand in a table with column groups (Domestic/International,
    Group/Company): the pinned reading type takes the same heading under the other group, on
    every such question, and verification rejects each."""
    result = NoisyTeacher(noise="repeating", wrong_types=["tatqa:multi_header"],
                          mistakes=["wrong_header_level"]).run(tatqa)
    mine = [s for s in result.kept if s.meta.get("reading_type") == "tatqa:multi_header"]
    assert len(mine) >= 20
    assert all(s.meta["mistakes"] == {"tatqa:multi_header": "wrong_header_level"}
               for s in mine)
    assert not [s for s in result.kept if s not in mine and s.meta.get("mistakes")]
    # The Domestic/International discount-rate table: 2019 Domestic 4.00% is read as
    # International 1.90% (the same year one group over).
    by_id = {q.question_id: q for q in tatqa}
    discount = [s for s in mine if "4.0" in reference_program(by_id[s.question_id])
                and "Domestic" in by_id[s.question_id].context
                and "discount rate" in by_id[s.question_id].text.lower()]
    assert discount
    for s in discount:
        literals = {n.value for n in ast.walk(ast.parse(s.program.split("=", 1)[1].strip()))
                    if isinstance(n, ast.Constant)}
        assert 1.9 in literals and 4.0 not in literals, s.program
    wrong = [s for s in mine if s.meta.get("error_kind")]
    assert len(wrong) >= len(mine) - 2
    verdicts = _verify(result.kept, tatqa)
    assert verdicts == {s.question_id: "check:wrong_answer" for s in wrong}


def test_plan_is_a_function_of_seed_share_and_type(tatqa):
    """Chunks and order do not change the plan; another seed draws other types; the share of
    misunderstood types is near the asked one; the realised plan is in the stage's counts."""
    teacher = NoisyTeacher(error_rate=0.3, seed=4, noise="repeating")
    whole = teacher.run(tatqa)
    parts = NoisyTeacher(error_rate=0.3, seed=4, noise="repeating").run(tatqa[300:])
    parts.merge(NoisyTeacher(error_rate=0.3, seed=4, noise="repeating").run(tatqa[:300]))
    key = {s.question_id: (s.program, s.meta.get("error_kind")) for s in whole.kept}
    assert key == {s.question_id: (s.program, s.meta.get("error_kind")) for s in parts.kept}
    types = {s.meta["question_type"] for s in whole.kept if s.meta.get("question_type")}
    wrong = {t for t in types if teacher.plan.misunderstands(t)}
    assert 0.15 <= len(wrong) / len(types) <= 0.45, (len(wrong), len(types))
    other = MistakePlan(0.3, seed=5)
    assert {t for t in types if other.misunderstands(t)} != wrong
    # Same mistake across every question of a type, recorded with the counts.
    seen: dict[str, set[str]] = {}
    for s in whole.kept:
        for t, m in (s.meta.get("mistakes") or {}).items():
            seen.setdefault(t, set()).add(m)
    assert seen and all(len(m) == 1 for m in seen.values())
    planned = {k for k in whole.counts if k.startswith("plan.")}
    assert planned == {f"plan.{m}.{t}" for t, ms in seen.items() for m in ms}
    assert MistakePlan(0.0, seed=4).mistake(next(iter(types))) is None
    with pytest.raises(ValueError, match="mistakes must be some of"):
        MistakePlan(0.3, mistakes=("typo",))


def test_config_selects_the_mode_and_independent_mode_is_unchanged(procedural):
    cfg = NoisyTeacherConfig(noise="repeating", error_rate=0.5, error_seed=3,
                             wrong_types=["procedural:ratio"])
    teacher = make_teacher(cfg, cache=None, run_id="r")
    assert teacher.noise == "repeating" and teacher.plan.wrong_types == ("procedural:ratio",)
    s = teacher.run(procedural[:5]).kept[0]
    assert s.gen_params == {"noise": "repeating", "error_rate": 0.5, "seed": 3,
                            "plan": "repeating-v1", "wrong_types": ["procedural:ratio"]}
    # The default stays the independent teacher, with the same sample identity as before.
    plain = make_teacher(NoisyTeacherConfig(), cache=None, run_id="r")
    assert plain.noise == "independent"
    assert plain.run(procedural[:1]).kept[0].gen_params == {"error_rate": 0.3, "seed": 0}
    with pytest.raises(ValueError):
        NoisyTeacherConfig(noise="sometimes")


@pytest.mark.usefixtures("prefect_harness")
def test_a_refresh_records_the_mode_and_the_plan(tmp_path):
    from flows.refresh import RefreshConfig, refresh
    from warehouse import Store

    wh = str(tmp_path / "w.duckdb")
    summary = refresh(RefreshConfig(source="procedural", n=80, seed=13, teacher="noisy",
                                    noise="repeating", error_rate=0.4, error_seed=2,
                                    warehouse=wh))
    store = Store(wh)
    _, [(params, counts)] = store.query("SELECT params, counts FROM runs WHERE run_id = ?",
                                        [summary.run_id])
    params, counts = json.loads(params), json.loads(counts)
    assert params["teacher"]["noise"] == "repeating"
    assert params["teacher"]["error_rate"] == 0.4 and params["teacher"]["error_seed"] == 2
    planned = {k for k in counts if ".plan." in k or k.startswith("plan.")}
    assert planned
    _, rows = store.query("SELECT meta, correct FROM samples WHERE teacher = 'noisy'")
    metas = [(json.loads(m) if m else {}, c) for m, c in rows]
    wrong = [m for m, c in metas if m.get("error_kind")]
    assert wrong and all(c is False for m, c in metas if m.get("error_kind"))
    assert all(c is True for m, c in metas if not m.get("mistakes"))
