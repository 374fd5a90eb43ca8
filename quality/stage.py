"""The quality stage: the candidate batch through the GE checkpoints (quality/validate.py)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field

from tasks.settings import Settings
from tasks.stage import Stage, StageResult, reject
from tasks.types import Question, Sample

from .suites import CANDIDATE_COLUMNS, ReferenceStats
from .validate import (
    COMPACT_COLUMNS,
    RowOutcome,
    ValidationOutcome,
    check_batch,
    check_rows,
    validate_candidates,
)

GATE_STAGE = "quality_gate"


class QualityConfig(Settings):
    """Great Expectations validation of the batch about to be published."""

    max_rejected_fraction: float = Field(0.2, ge=0, le=1, description="quality gate: at "
                                         "most this share of a batch may fail row-level "
                                         "expectations")
    max_duplicate_fraction: float = Field(0.05, ge=0, le=1, description="quality gate: at "
                                          "most this share of a batch may repeat a question")
    drift_blocking: bool = Field(False, description="a drift from the current snapshot (kind, "
                                 "source, difficulty, program length, answer magnitude) "
                                 "refuses the batch; default: it only warns")


def candidate_rows(samples: list[Sample], questions: Mapping[str, Question]) -> Any:
    """One row per chosen sample, the columns the suites read (and the sample's id)."""
    import pandas as pd

    rows = []
    for s in samples:
        q = questions[s.question_id]
        rows.append([s.question_id, q.text, q.context, s.program, s.predicted, q.source,
                     q.meta.get("kind"), q.difficulty, s.exec_status, q.gold_answer,
                     q.meta.get("abstain_reason"), s.sample_id])
    return pd.DataFrame(rows, columns=[*CANDIDATE_COLUMNS, "sample_id"])


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


class ValidateRows(Stage[Sample, Any]):
    """Stage, per shard: the row-level suites (row-local; every copy of a question is in
    one shard). A failing row leaves under its expectation's name. What goes on is one
    compact frame per shard for `ValidateBatch` (question and sample ids, `row_rejected`,
    the columns of the batch and drift suites, never the texts), the failed rows flagged in
    it: the batch suite judges the batch with them. The suites' results travel with it and
    are recorded once per run, merged over the shards, by `ValidateBatch`."""

    name = "quality"
    batch_size = None

    def __init__(self, questions: Mapping[str, Question], run_id: str,
                 docs_dir: str | Path | None = None) -> None:
        self.questions, self.run_id, self.docs_dir = questions, run_id, docs_dir

    def run(self, items: list[Sample]) -> StageResult[Any]:
        if not items:
            return StageResult()
        part, compact = check_rows(candidate_rows(items, self.questions), run_id=self.run_id,
                                   docs_dir=self.docs_dir)
        return StageResult(kept=[Candidates(part, compact)], rejections=part.rejections())


class Candidates:
    """One shard's row outcome and compact candidate frame (ValidateRows -> ValidateBatch)."""

    def __init__(self, rows: RowOutcome, frame: Any) -> None:
        self.rows, self.frame = rows, frame

    def __len__(self) -> int:
        return len(self.frame)


class ValidateBatch(Stage[Candidates, tuple[str, str]]):
    """Stage, once per run: the batch-level suite over every shard's candidates, and drift
    against the current snapshot's `ReferenceStats`. A blocking failure holds back every
    row not already rejected (`quality_gate`/`batch_gate_failed`), as `Validate` does. What
    goes on: (question_id, sample_id) of each example to publish. The outcome stays on the
    stage for the run's report."""

    name = "quality"
    batch_size = None

    def __init__(self, config: QualityConfig, run_id: str,
                 reference: ReferenceStats | None = None,
                 docs_dir: str | Path | None = None) -> None:
        self.config, self.run_id = config, run_id
        self.reference, self.docs_dir = reference, docs_dir
        self.outcome: ValidationOutcome | None = None

    def run(self, items: list[Candidates]) -> StageResult[tuple[str, str]]:
        import pandas as pd

        parts = [c for c in items if len(c)]
        if not parts:
            return StageResult()
        cfg = self.config
        frame = pd.concat([c.frame for c in parts], ignore_index=True)
        outcome = check_batch(
            frame[list(COMPACT_COLUMNS)], [c.rows for c in parts],
            max_rejected_fraction=cfg.max_rejected_fraction,
            max_duplicate_fraction=cfg.max_duplicate_fraction, reference=self.reference,
            drift_blocking=cfg.drift_blocking, run_id=self.run_id, docs_dir=self.docs_dir)
        self.outcome = outcome
        good = frame[frame["row_rejected"] == 0]
        kept = list(zip(good["question_id"], good["sample_id"], strict=True))
        counts: Counter[str] = Counter(quality_warnings=len(outcome.warnings))
        rejections = []
        if not outcome.success:
            rejections = [reject(qid, GATE_STAGE, "batch_gate_failed",
                                 f"run {self.run_id}: {outcome.reason}") for qid, _ in kept]
            counts.update(gate_held=len(kept), gate_failed=1)
            kept = []
        return StageResult(kept=kept, rejections=rejections, counts=counts,
                           records={"validation": outcome.suite_rows()})
