"""Verdicts on executed samples and the choice of one example per question."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tasks.answers import answers_match, format_answer
from tasks.types import ExecResult, Question, Rejection, Sample


def check_samples(samples: Sequence[Sample], results: Sequence[ExecResult],
                  questions: Mapping[str, Question]) -> list[Rejection]:
    """Fill each sample's execution fields and verdict; return a rejection for every
    question none of whose samples survived (execution failure or wrong answer)."""
    if len(samples) != len(results):
        raise ValueError(f"{len(samples)} samples but {len(results)} execution results")
    failures: dict[str, Rejection] = {}
    good: set[str] = set()
    for sample, result in zip(samples, results, strict=True):
        q = questions[sample.question_id]
        sample.exec_status = result.status
        sample.exec_error = result.error
        if result.status != "ok":
            failures.setdefault(q.question_id, Rejection(
                q.question_id, "execute", result.status,
                f"{sample.sample_id}: {result.error}".strip()))
            continue
        sample.predicted = format_answer(result.value)
        if q.gold_answer is None:
            sample.correct = None  # nothing to check against: kept as unverified
            good.add(q.question_id)
            continue
        sample.correct = answers_match(result.value, q.gold_answer, scale=q.meta.get("scale"))
        if sample.correct:
            good.add(q.question_id)
        else:
            failures.setdefault(q.question_id, Rejection(
                q.question_id, "check", "wrong_answer",
                f"predicted={sample.predicted} gold={q.gold_answer}"
                + (f" scale={q.meta['scale']}" if q.meta.get("scale") else "")))
    return [r for qid, r in failures.items() if qid not in good]


def select_samples(samples: Sequence[Sample]) -> list[Sample]:
    """One sample per question: a correct one (else an unverified one when the question has
    no gold answer), the lowest sample_idx first so the choice is stable across reruns."""
    chosen: dict[str, Sample] = {}
    for s in sorted(samples, key=lambda s: (s.question_id, s.sample_idx, s.sample_id)):
        if s.exec_status != "ok" or s.correct is False:
            continue
        chosen.setdefault(s.question_id, s)
    return list(chosen.values())
