"""QualityStage, the quality step under the stage contract (tasks/stage.py), on candidates
made the real way: procedural questions -> reference teacher -> sandbox -> answer check."""

from __future__ import annotations

import dataclasses

import pandas as pd

from quality.stage import QualityStage, candidate_rows
from tasks.checks import check_samples, select_samples
from tasks.execute import execute_programs
from tasks.stage import Stage
from tasks.teachers.reference import reference_samples
from tasks.types import Question, Sample


def _candidates(n: int, seed: int) -> list[tuple[Question, Sample]]:
    from tasks.sources import load_questions

    questions = {q.question_id: q for q in load_questions("procedural", n=n, seed=seed)}
    samples, _ = reference_samples(list(questions.values()))
    check_samples(samples, execute_programs([s.program for s in samples]), questions)
    return [(questions[s.question_id], s) for s in select_samples(samples)]


def test_stage_keeps_good_pairs_and_names_row_rejections(tmp_path):
    items = _candidates(40, seed=1)
    broken_q, broken_s = items[0]
    items[0] = (broken_q, dataclasses.replace(broken_s, program="ans = (1 +"))
    stage = QualityStage(run_id="r1", docs_dir=tmp_path / "docs", max_rejected_fraction=0.5)
    assert isinstance(stage, Stage) and stage.batch_size is None
    out = stage.run(items)
    assert [r.item_id for r in out.rejections] == [broken_q.question_id]
    assert out.rejections[0].reason == "expect_column_values_to_compile_as_python(program)"
    assert out.rejections[0].stage == stage.name == "quality"
    assert len(out.kept) == len(items) - 1
    assert out.counts["quality_rejected"] == 1 and out.counts["gate_held"] == 0
    suites = {suite for suite, *_ in out.records["validation"]}
    assert suites == {"questions", "samples", "curated_batch"}
    assert out.records["quality_report"].docs_index.is_file()


def test_a_refused_batch_keeps_nothing_and_holds_the_rest_with_the_reason(tmp_path):
    items = _candidates(40, seed=2)
    reference = candidate_rows(_candidates(120, seed=3))
    one_kind = [(q, s) for q, s in items if q.meta["kind"] == items[0][0].meta["kind"]]
    stage = QualityStage(run_id="r2", docs_dir=tmp_path / "docs", reference=reference,
                         drift_blocking=True)
    out = stage.run(one_kind)
    assert out.kept == []
    assert {r.stage for r in out.rejections} == {"quality_gate"}
    assert len(out.rejections) == out.counts["gate_held"] == len(one_kind)
    detail = out.rejections[0].detail
    assert detail.startswith("run r2: batch refused by")
    assert "expect_column_kl_divergence_from_reference_to_be_less_than(kind)" in detail
    # Without drift_blocking the same batch passes, with the drift as a warning.
    warned = dataclasses.replace(stage, drift_blocking=False).run(one_kind)
    assert len(warned.kept) == len(one_kind) and warned.counts["quality_warnings"] >= 1


def test_candidate_rows_carry_every_column_the_suites_read():
    frame = candidate_rows(_candidates(10, seed=4))
    assert list(frame.columns) == ["question_id", "question", "context", "program", "answer",
                                   "source", "kind", "difficulty", "exec_status"]
    assert set(frame["exec_status"]) == {"ok"} and frame["kind"].notna().all()
    assert candidate_rows([]).empty and isinstance(candidate_rows([]), pd.DataFrame)
