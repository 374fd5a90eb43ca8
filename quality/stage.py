"""The quality stage: the candidate batch through the GE suites (quality/validate.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tasks.stage import StageResult, reject
from tasks.types import Question, Sample

from .validate import validate_candidates

GATE_STAGE = "quality_gate"


class QualityConfig(BaseModel):
    """Great Expectations validation of the batch about to be published."""

    model_config = ConfigDict(extra="forbid")

    max_rejected_fraction: float = Field(0.2, ge=0, le=1, description="quality gate: at "
                                         "most this share of a batch may fail row-level "
                                         "expectations")


def candidate_rows(samples: list[Sample], questions: Mapping[str, Question]) -> Any:
    """One row per chosen sample, the columns the suites read."""
    import pandas as pd

    return pd.DataFrame([{
        "question_id": s.question_id, "question": questions[s.question_id].text,
        "context": questions[s.question_id].context, "program": s.program,
        "answer": s.predicted} for s in samples])


class Validate:
    """Stage: rows that fail a row-level expectation leave under its name; if the gate
    suite refuses the batch, every remaining row is held back as a whole
    (`quality_gate`/`batch_gate_failed`): left undecided, its good rows would come back
    alone on the next run and pass the gate they failed."""

    name = "quality"
    batch_size = None

    def __init__(self, config: QualityConfig, questions: Mapping[str, Question],
                 run_id: str) -> None:
        self.config, self.questions, self.run_id = config, questions, run_id

    def run(self, items: list[Sample]) -> StageResult[Sample]:
        if not items:
            return StageResult()
        outcome = validate_candidates(candidate_rows(items, self.questions),
                                      max_rejected_fraction=self.config.max_rejected_fraction)
        kept_ids = set(outcome.kept_ids)
        kept = [s for s in items if s.question_id in kept_ids]
        counts: Counter[str] = Counter()
        rejections = list(outcome.rejections)
        if not outcome.success:
            stats = outcome.statistics
            rejections += [reject(s.question_id, GATE_STAGE, "batch_gate_failed",
                                  f"{stats['rejected']} of {stats['rows']} rows of run "
                                  f"{self.run_id} failed row-level expectations")
                           for s in kept]
            counts.update(gate_held=len(kept), gate_failed=1)
            kept = []
        validation = ("curated_batch", outcome.success, outcome.statistics, outcome.results)
        return StageResult(kept=kept, rejections=rejections, counts=counts,
                           records={"validation": [validation]})
