"""The quality stage (quality/stage.py: Validate) under the stage contract, on candidates made
the real way: procedural questions -> reference teacher -> sandbox -> answer check."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from quality.stage import QualityConfig, Validate, candidate_rows
from tasks.checks import check_samples, select_samples
from tasks.execute import execute_programs
from tasks.stage import Stage
from tasks.teachers.reference import reference_samples
from tasks.types import Question, Sample


def _candidates(n: int, seed: int, source: str = "procedural"
                ) -> tuple[dict[str, Question], list[Sample]]:
    from tasks.sources import load_questions

    questions = {q.question_id: q for q in load_questions(source, n=n, seed=seed)}
    samples, _ = reference_samples(list(questions.values()))
    check_samples(samples, execute_programs([s.program for s in samples]), questions)
    return questions, select_samples(samples)


@pytest.mark.usefixtures("data_docs")
def test_stage_keeps_good_samples_and_names_row_rejections(tmp_path):
    questions, items = _candidates(40, seed=1)
    broken = items[0]
    items[0] = dataclasses.replace(broken, predicted="nan")
    stage = Validate(QualityConfig(max_rejected_fraction=0.5), questions, "r1",
                     docs_dir=tmp_path / "docs")
    assert isinstance(stage, Stage) and stage.batch_size is None
    out = stage.run(items)
    assert [r.item_id for r in out.rejections] == [broken.question_id]
    assert out.rejections[0].reason == "expect_column_values_to_be_finite_numbers(answer)"
    assert out.rejections[0].stage == stage.name == "quality"
    assert len(out.kept) == len(items) - 1 and out.counts["gate_held"] == 0
    suites = {suite for suite, *_ in out.records["validation"]}
    assert suites == {"questions", "samples", "abstentions", "curated_batch"}
    assert stage.outcome is not None and stage.outcome.docs_index.is_file()


def test_a_refused_batch_keeps_nothing_and_holds_the_rest_with_the_reason(tmp_path):
    questions, items = _candidates(40, seed=2)
    ref_questions, ref_items = _candidates(120, seed=3)
    reference = candidate_rows(ref_items, ref_questions)
    kind = questions[items[0].question_id].meta["kind"]
    one_kind = [s for s in items if questions[s.question_id].meta["kind"] == kind]
    stage = Validate(QualityConfig(drift_blocking=True), questions, "r2", reference,
                     tmp_path / "docs")
    out = stage.run(one_kind)
    assert out.kept == []
    assert {r.stage for r in out.rejections} == {"quality_gate"}
    assert len(out.rejections) == out.counts["gate_held"] == len(one_kind)
    detail = out.rejections[0].detail
    assert detail.startswith("run r2: batch refused by")
    assert "expect_column_kl_divergence_from_reference_to_be_less_than(kind)" in detail
    # Without drift_blocking the same batch passes, with the drift as a warning.
    warned = Validate(QualityConfig(), questions, "r2", reference, tmp_path / "docs")
    out = warned.run(one_kind)
    assert len(out.kept) == len(one_kind) and out.counts["quality_warnings"] >= 1


def test_candidate_rows_carry_every_column_the_suites_read():
    questions, items = _candidates(10, seed=4)
    frame = candidate_rows(items, questions)
    assert list(frame.columns) == ["question_id", "question", "context", "program", "answer",
                                   "source", "kind", "difficulty", "exec_status",
                                   "gold_answer", "abstain_reason", "sample_id"]
    assert set(frame["exec_status"]) == {"ok"} and frame["kind"].notna().all()
    assert candidate_rows([], {}).empty and isinstance(candidate_rows([], {}), pd.DataFrame)


def test_the_abstentions_suite_checks_target_reason_and_answerable_rows(tmp_path):
    """Unanswerable variants made the real way pass; an unanswerable row answered with a
    number, one without its reason, and an answerable row answered "I don't know" each
    leave under the abstentions suite's expectation."""
    from tasks.experiments.abstention import ABSTAIN

    questions, items = _candidates(60, seed=6, source="procedural:train:unanswerable=0.3")
    unans = [s for s in items if questions[s.question_id].gold_answer == ABSTAIN]
    answerable = [s for s in items if questions[s.question_id].gold_answer != ABSTAIN]
    assert len(unans) >= 6 and all(s.predicted == ABSTAIN for s in unans)
    stage = Validate(QualityConfig(max_rejected_fraction=0.5), questions, "r3",
                     docs_dir=tmp_path / "docs")
    assert stage.run(items).rejections == []
    numbered, reasonless = unans[0], unans[1]
    q = questions[reasonless.question_id]
    questions[q.question_id] = dataclasses.replace(
        q, meta={k: v for k, v in q.meta.items() if k != "abstain_reason"})
    bad = [dataclasses.replace(numbered, predicted="42.0"), reasonless,
           dataclasses.replace(answerable[0], predicted=ABSTAIN, program=f"ans = {ABSTAIN!r}")]
    out = Validate(QualityConfig(max_rejected_fraction=0.5), questions, "r4",
                   docs_dir=tmp_path / "docs").run([*bad, *answerable[1:]])
    reasons = {r.item_id: r.reason for r in out.rejections}
    assert reasons == {
        numbered.question_id: "expect_column_values_to_be_in_set(answer)",
        reasonless.question_id: "expect_column_values_to_not_be_null(abstain_reason)",
        answerable[0].question_id: "expect_column_values_to_not_be_in_set(answer)"}
