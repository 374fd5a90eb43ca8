"""The quality stage: the candidate batch through the GE checkpoints (quality/validate.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tasks.stage import Stage, StageResult, reject
from tasks.types import Question, Sample

from .suites import CANDIDATE_COLUMNS
from .validate import ValidationOutcome, validate_candidates

GATE_STAGE = "quality_gate"


class QualityConfig(BaseModel):
    """Great Expectations validation of the batch about to be published."""

    model_config = ConfigDict(extra="forbid")

    max_rejected_fraction: float = Field(0.2, ge=0, le=1, description="quality gate: at "
                                         "most this share of a batch may fail row-level "
                                         "expectations")
    max_duplicate_fraction: float = Field(0.05, ge=0, le=1, description="quality gate: at "
                                          "most this share of a batch may repeat a question")
    drift_blocking: bool = Field(False, description="a drift from the current snapshot (kind, "
                                 "source, difficulty, program length, answer magnitude) "
                                 "refuses the batch; default: it only warns")


def candidate_rows(samples: list[Sample], questions: Mapping[str, Question]) -> Any:
    """One row per chosen sample, the columns the suites read."""
    import pandas as pd

    rows = []
    for s in samples:
        q = questions[s.question_id]
        rows.append([s.question_id, q.text, q.context, s.program, s.predicted, q.source,
                     q.meta.get("kind"), q.difficulty, s.exec_status, q.gold_answer,
                     q.meta.get("abstain_reason")])
    return pd.DataFrame(rows, columns=list(CANDIDATE_COLUMNS))


class Validate(Stage[Sample, Sample]):
    """Stage: rows that fail a row-level expectation leave under its name; if a blocking
    batch expectation fails, every remaining row is held back as a whole
    (`quality_gate`/`batch_gate_failed`): left undecided, its good rows would come back
    alone on the next run and pass the gate they failed. The last outcome stays on the
    stage (`outcome`) for the run's report; the suites' results go to `validations`."""

    name = "quality"
    batch_size = None

    def __init__(self, config: QualityConfig, questions: Mapping[str, Question], run_id: str,
                 reference: Any = None, docs_dir: str | Path | None = None) -> None:
        self.config, self.questions, self.run_id = config, questions, run_id
        self.reference, self.docs_dir = reference, docs_dir
        self.outcome: ValidationOutcome | None = None

    def run(self, items: list[Sample]) -> StageResult[Sample]:
        if not items:
            return StageResult()
        cfg = self.config
        outcome = validate_candidates(
            candidate_rows(items, self.questions), max_rejected_fraction=cfg.max_rejected_fraction,
            max_duplicate_fraction=cfg.max_duplicate_fraction, reference=self.reference,
            drift_blocking=cfg.drift_blocking, run_id=self.run_id, docs_dir=self.docs_dir)
        self.outcome = outcome
        kept_ids = set(outcome.kept_ids)
        kept = [s for s in items if s.question_id in kept_ids]
        counts: Counter[str] = Counter(quality_warnings=len(outcome.warnings))
        rejections = list(outcome.rejections)
        if not outcome.success:
            rejections += [reject(s.question_id, GATE_STAGE, "batch_gate_failed",
                                  f"run {self.run_id}: {outcome.reason}") for s in kept]
            counts.update(gate_held=len(kept), gate_failed=1)
            kept = []
        return StageResult(kept=kept, rejections=rejections, counts=counts,
                           records={"validation": outcome.suite_rows()})
