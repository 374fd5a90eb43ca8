"""The quality step as a Stage (tasks/stage.py): candidate (question, chosen sample) pairs in,
the pairs that may be published out.

Row-level failures are rejections of stage `quality` named after the expectation. When a
blocking expectation refuses the batch, nothing is kept and every remaining pair gets a
`quality_gate` / `batch_gate_failed` rejection whose detail is the one-line reason: left
undecided, those rows would come back alone on the next run and pass the gate they failed.
The validation itself travels in `records["validation"]` (one `validations` row per suite)
and `records["quality_report"]` (the ValidationOutcome: reason, warnings, drift, Data Docs).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pandas as pd

from tasks.stage import StageResult
from tasks.types import Question, Rejection, Sample

from .validate import validate_candidates

Candidate = tuple[Question, Sample]


def candidate_rows(candidates: list[Candidate]) -> pd.DataFrame:
    """The frame validate_candidates reads, one row per (question, chosen sample)."""
    return pd.DataFrame([{
        "question_id": s.question_id, "question": q.text, "context": q.context,
        "program": s.program, "answer": s.predicted, "source": q.source,
        "kind": q.meta.get("kind"), "difficulty": q.difficulty, "exec_status": s.exec_status}
        for q, s in candidates], columns=["question_id", "question", "context", "program",
                                          "answer", "source", "kind", "difficulty",
                                          "exec_status"])


@dataclass
class QualityStage:
    """Validate a whole candidate batch (batch_size None: the batch suites need all of it).

    reference: the current snapshot's curated rows (warehouse.quality.curated_reference),
    None on a first run. docs_dir: quality.context.docs_dir_for(warehouse path)."""

    run_id: str
    docs_dir: str | os.PathLike[str] | None
    reference: pd.DataFrame | None = None
    max_rejected_fraction: float = 0.2
    drift_blocking: bool = False
    name: str = "quality"
    batch_size: int | None = None

    def run(self, items: list[Candidate]) -> StageResult[Candidate]:
        if not items:
            return StageResult()
        outcome = validate_candidates(
            candidate_rows(items), max_rejected_fraction=self.max_rejected_fraction,
            reference=self.reference, drift_blocking=self.drift_blocking, run_id=self.run_id,
            docs_dir=self.docs_dir)
        kept_ids = set(outcome.kept_ids)
        kept = [(q, s) for q, s in items if s.question_id in kept_ids]
        rejections = list(outcome.rejections)
        counts: Counter[str] = Counter(quality_rejected=len(outcome.rejections),
                                       quality_warnings=len(outcome.warnings))
        if not outcome.success:
            rejections += [Rejection(s.question_id, "quality_gate", "batch_gate_failed",
                                     f"run {self.run_id}: {outcome.reason}") for _, s in kept]
            counts["gate_held"] = len(kept)
            kept = []
        records: dict[str, Any] = {"validation": outcome.suite_rows(),
                                   "quality_report": outcome}
        return StageResult(kept=kept, rejections=rejections, counts=counts, records=records)
