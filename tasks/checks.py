"""Verdicts on executed samples and the choice of one example per question."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tasks.answers import answers_match, format_answer, parse_number
from tasks.stage import Stage, StageResult, reject
from tasks.teachers.base import Selection
from tasks.types import ExecResult, Question, Rejection, Sample


def execution_rejections(samples: Sequence[Sample], stage: str = "execute"
                         ) -> list[Rejection]:
    """A rejection for each question none of whose samples ran, with the first failure's
    status as the reason."""
    first_failure: dict[str, Sample] = {}
    ran: set[str] = set()
    for s in samples:
        if s.exec_status == "ok":
            ran.add(s.question_id)
        else:
            first_failure.setdefault(s.question_id, s)
    return [reject(qid, stage, s.exec_status or "error", f"{s.sample_id}: {s.exec_error}".strip())
            for qid, s in first_failure.items() if qid not in ran]


def check_samples(samples: Sequence[Sample], results: Sequence[ExecResult],
                  questions: Mapping[str, Question]) -> list[Rejection]:
    """The execute and check stages' decisions for samples executed elsewhere: fill each
    sample's execution fields and verdict; return a rejection for every question none of
    whose samples survived (execution failure or wrong answer)."""
    if len(samples) != len(results):
        raise ValueError(f"{len(samples)} samples but {len(results)} execution results")
    for sample, result in zip(samples, results, strict=True):
        sample.exec_status, sample.exec_error = result.status, result.error
        sample.exec_value = result.value
    return execution_rejections(samples) + Check(questions, Selection())._verdicts(samples)


def select_samples(samples: Sequence[Sample]) -> list[Sample]:
    """One sample per question: a correct one (else an unverified one when the question has
    no gold answer), the lowest sample_idx first so the choice is stable across reruns."""
    chosen: dict[str, Sample] = {}
    for s in sorted(samples, key=lambda s: (s.question_id, s.sample_idx, s.sample_id)):
        if s.exec_status != "ok" or s.correct is False:
            continue
        chosen.setdefault(s.question_id, s)
    return list(chosen.values())


def _program_key(program: str | None) -> str:
    # Programs that differ only in blank lines, comments or spacing are the same solution.
    lines = [line.split("#", 1)[0].strip() for line in (program or "").splitlines()]
    return "\n".join(" ".join(line.split()) for line in lines if line)


def _answer_key(predicted: str | None) -> str:
    number = parse_number(predicted) if predicted is not None else None
    return f"{number:.6g}" if number is not None else str(predicted)


def _distinct_first(samples: Sequence[Sample], cap: int) -> list[Sample]:
    """Up to `cap` samples, distinct programs before repeats, lowest sample_idx first."""
    ordered = sorted(samples, key=lambda s: (s.sample_idx, s.sample_id))
    seen: set[str] = set()
    first, repeats = [], []
    for s in ordered:
        key = _program_key(s.program)
        (repeats if key in seen else first).append(s)
        seen.add(key)
    return (first + repeats)[:cap]


def select_multi(samples: Sequence[Sample], questions: Mapping[str, Question], *,
                 cap: int = 1, min_agreement: float = 0.5
                 ) -> tuple[list[dict[str, Any]], list[Rejection]]:
    """Selection among K samples per question (run `check_samples` first).

    With a gold answer: the correct samples, up to `cap`, distinct programs first.
    Without: a majority vote over the executed answers of the samples that got a response;
    the winning answer needs `min_agreement` of them and a strict lead, and its samples are
    kept as above. Returns selection rows (rank 0 is the one to publish) and a rejection for
    each question without a gold answer that has no clear majority (questions with gold and
    no correct sample were already rejected by `check_samples`)."""
    by_q: dict[str, list[Sample]] = {}
    for s in samples:
        by_q.setdefault(s.question_id, []).append(s)
    rows: list[dict[str, Any]] = []
    rejections: list[Rejection] = []
    for qid in sorted(by_q):
        group = by_q[qid]
        q = questions[qid]
        ok = [s for s in group if s.exec_status == "ok"]
        if q.gold_answer is not None:
            kept = _distinct_first([s for s in ok if s.correct], cap)
            rows += [{"question_id": qid, "sample_id": s.sample_id, "rank": i, "method": "gold",
                      "agreement": None, "votes": None, "n_samples": len(group)}
                     for i, s in enumerate(kept)]
            continue
        votes: dict[str, list[Sample]] = {}
        for s in ok:
            votes.setdefault(_answer_key(s.predicted), []).append(s)
        ranked = sorted(votes.values(), key=lambda v: -len(v))
        if not ranked:
            continue  # nothing executed: check_samples already rejected the question
        top = ranked[0]
        agreement = len(top) / len(group)
        tie = len(ranked) > 1 and len(ranked[1]) == len(top)
        if tie or agreement < min_agreement:
            rejections.append(Rejection(
                qid, "check", "no_majority" if tie else "low_agreement",
                f"answer {top[0].predicted} from {len(top)}/{len(group)} samples "
                f"(agreement {agreement:.2f} < {min_agreement:.2f})" if not tie else
                f"{len(top)}/{len(group)} samples each for {len(ranked)} answers"))
            continue
        rows += [{"question_id": qid, "sample_id": s.sample_id, "rank": i,
                  "method": "majority", "agreement": round(agreement, 4), "votes": len(top),
                  "n_samples": len(group)}
                 for i, s in enumerate(_distinct_first(top, cap))]
    return rows, rejections


class Check(Stage[Sample, Sample]):
    """Stage: verdict on every executed sample (its answer against the gold), then the
    choice of the examples to publish per the teacher's `Selection`.

    kept: the chosen samples (rank 0 of each question). records: every sample with its
    verdict ("samples"), and for K-sample teachers the ranked selection rows
    ("selections")."""

    name = "check"
    batch_size = None

    def __init__(self, questions: Mapping[str, Question], selection: Selection) -> None:
        self.questions, self.selection = questions, selection

    def run(self, items: list[Sample]) -> StageResult[Sample]:
        rejections = self._verdicts(items)
        records: dict[str, Any] = {"samples": items}
        if self.selection.multi:
            rows, votes = select_multi(items, self.questions,
                                       cap=self.selection.keep_per_question,
                                       min_agreement=self.selection.min_agreement)
            rejections += votes
            records["selections"] = rows
            first = {r["sample_id"] for r in rows if r["rank"] == 0}
            chosen = [s for s in items if s.sample_id in first]
        else:
            chosen = select_samples(items)
        return StageResult(kept=chosen, rejections=rejections, records=records)

    def _verdicts(self, samples: Sequence[Sample]) -> list[Rejection]:
        """Fill predicted/correct; a question with executed samples but no correct one
        leaves with `wrong_answer` (a question none of whose samples ran already left at
        the execute stage)."""
        wrong: dict[str, Rejection] = {}
        good: set[str] = set()
        for sample in samples:
            if sample.exec_status != "ok":
                continue
            q = self.questions[sample.question_id]
            sample.predicted = format_answer(sample.exec_value)
            if q.gold_answer is None:
                sample.correct = None  # nothing to check against: kept as unverified
                good.add(q.question_id)
                continue
            sample.correct = answers_match(sample.exec_value, q.gold_answer,
                                           scale=q.meta.get("scale"))
            if sample.correct:
                good.add(q.question_id)
            else:
                wrong.setdefault(q.question_id, reject(
                    q.question_id, self.name, "wrong_answer",
                    f"predicted={sample.predicted} gold={q.gold_answer}"
                    + (f" scale={q.meta['scale']}" if q.meta.get("scale") else "")))
        return [r for qid, r in wrong.items() if qid not in good]
