"""The noisy teacher: each kind of error it makes runs in the real sandbox and is caught by
the real answer check with reason `wrong_answer`; which questions go wrong is seeded."""

from __future__ import annotations

import pytest

from tasks.checks import check_samples
from tasks.execute import execute_programs
from tasks.sources import load_questions
from tasks.teachers.base import Teacher
from tasks.teachers.noisy import ERROR_KINDS, NoisyTeacher
from tasks.teachers.reference import reference_program


@pytest.fixture(scope="module")
def questions():
    # One question per id (the generator may repeat a question; the pipeline dedups them).
    return list({q.question_id: q for q in load_questions("procedural", n=60, seed=13)
                 }.values())


@pytest.mark.parametrize("kind", ERROR_KINDS)
def test_each_error_kind_is_rejected_as_wrong_answer(questions, kind):
    teacher = NoisyTeacher(error_rate=1.0, seed=1, kinds=[kind])
    result = teacher.run(questions)
    wrong = [s for s in result.kept if s.meta.get("error_kind") == kind]
    assert len(wrong) >= 10, result.counts  # the kind applies to most table questions
    by_id = {q.question_id: q for q in questions}
    for s in wrong:
        assert s.program != reference_program(by_id[s.question_id])
        assert isinstance(s.meta["error_step"], int)
    execs = execute_programs([s.program for s in wrong])
    assert [r.status for r in execs] == ["ok"] * len(wrong)  # it runs: only the check can tell
    rejections = check_samples(wrong, execs, by_id)
    assert len(rejections) == len(wrong)
    assert {(r.stage, r.reason) for r in rejections} == {("check", "wrong_answer")}
    assert not any(s.correct for s in wrong)


def test_rate_and_determinism(questions):
    teacher = NoisyTeacher(error_rate=0.3, seed=7)
    assert isinstance(teacher, Teacher) and teacher.kind == "noisy"
    first = teacher.run(questions)
    # Chunking does not change which questions go wrong, nor how.
    again = NoisyTeacher(error_rate=0.3, seed=7).run(questions[30:])
    again.merge(NoisyTeacher(error_rate=0.3, seed=7).run(questions[:30]))
    key = {s.question_id: (s.program, s.meta.get("error_kind")) for s in first.kept}
    assert key == {s.question_id: (s.program, s.meta.get("error_kind")) for s in again.kept}
    wrong = [s for s in first.kept if s.meta.get("error_kind")]
    assert 0.1 <= len(wrong) / len(first.kept) <= 0.5
    # The right ones are the reference programs, with no error recorded.
    by_id = {q.question_id: q for q in questions}
    right = [s for s in first.kept if not s.meta.get("error_kind")]
    assert all(s.program == reference_program(by_id[s.question_id]) for s in right)
    # Execution and the check keep exactly the right ones.
    samples = first.kept
    rejected = {r.item_id for r in check_samples(samples, execute_programs(
        [s.program for s in samples]), by_id)}
    assert rejected == {s.question_id for s in wrong}
    other = NoisyTeacher(error_rate=0.3, seed=8).run(questions)
    assert {s.question_id for s in other.kept if s.meta.get("error_kind")} != \
        {s.question_id for s in wrong}
    with pytest.raises(ValueError, match="error kinds"):
        NoisyTeacher(kinds=["typo"])
