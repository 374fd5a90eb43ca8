"""What the suites in quality/gx/expectations/ check, and the values their parameters take.

The suites themselves are JSON files (edit them, review them in a diff); this module only
names them, derives the measured columns some expectations need, and turns a reference
snapshot into the `$PARAMETER` values of the drift suite.

Suites (one per record type the pipeline publishes, plus the batch-level ones):
- questions: row level, one row per candidate question.
- samples: row level, the chosen sample of each candidate (its program and answer).
- curated_batch: batch level, the whole candidate batch (size, rejected share, duplicates,
  one kind or source swamping the batch).
- curated_drift: distribution level, the rows that would be published against the current
  snapshot (kind, source, difficulty, program length, answer magnitude).

Severity (GE's own `severity` field of each expectation) says what a failure does: a
`critical` row-level failure rejects the row, a `critical` batch-level failure refuses the
batch; a `warning` is reported and does nothing else. The drift suite's expectations are
warnings, and `drift_blocking` turns them into refusals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tasks.answers import parse_number

ROW_SUITES = ("questions", "samples", "abstentions")
BATCH_SUITE = "curated_batch"
DRIFT_SUITE = "curated_drift"
CURATED_SUITE = BATCH_SUITE  # the suite name the `validations` table has always used

ROW_CHECKPOINT = "candidate_rows"
BATCH_CHECKPOINT = "candidate_batch"
DRIFT_CHECKPOINT = "candidate_drift"

# Columns of a candidate row (the contract of validate_candidates); missing optional ones are
# added as nulls so that a caller with fewer columns still validates what it has.
CANDIDATE_COLUMNS = ("question_id", "question", "context", "program", "answer", "source",
                     "kind", "difficulty", "exec_status", "gold_answer", "abstain_reason")
MISSING = "(none)"  # the category of a null kind/source/difficulty in distribution checks


def _answer_magnitude(answer: object) -> float:
    value = parse_number(answer) if isinstance(answer, str | int | float) else None
    if value is None or not math.isfinite(value):
        return math.nan
    # log10(1 + |x|): 0 for 0, ~n for 10^n; a change of 1 is a change of scale by ten.
    return math.log10(1.0 + abs(value))


def measured(rows: pd.DataFrame) -> pd.DataFrame:
    """Candidate (or snapshot) rows with the columns the batch and drift suites read:
    program_chars, answer_magnitude, and kind/source/difficulty as categories."""
    df = rows.copy()
    # A compact frame (quality/stage.py) arrives with both measures and without the
    # program and answer texts they come from.
    if "program_chars" not in df.columns:
        df["program_chars"] = program_chars(df["program"] if "program" in df.columns
                                            else pd.Series([None] * len(df), dtype=object))
    if "answer_magnitude" not in df.columns:
        df["answer_magnitude"] = answer_magnitudes(df["answer"] if "answer" in df.columns
                                                   else pd.Series([None] * len(df),
                                                                  dtype=object))
    for column in CANDIDATE_COLUMNS:
        if column not in df.columns:
            df[column] = None
    return df


def program_chars(programs: pd.Series) -> pd.Series:
    return programs.map(lambda p: float(len(p)) if isinstance(p, str) else math.nan)


def answer_magnitudes(answers: pd.Series) -> pd.Series:
    return answers.map(_answer_magnitude)


def categories(values: pd.Series) -> pd.Series:
    """A column as category labels (strings), nulls as their own category: a batch of
    unlabelled rows is a distribution too, and GE's KL divergence ignores nulls."""
    def label(v: object) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return MISSING
        if isinstance(v, float) and v.is_integer():
            v = int(v)  # difficulty read back from a nullable column
        return str(v)
    return values.map(label).astype(object)


def drift_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """What the drift suite validates: measured columns, categorical columns as labels."""
    df = measured(rows)
    for column in ("kind", "source", "difficulty"):
        df[column] = categories(df[column])
    return df


@dataclass
class ReferenceStats:
    """What the drift suite compares a batch with, measured on the current snapshot: the
    category counts of each categorical column and the values of each measured column.
    Small whatever the snapshot's size (the warehouse builds it with SQL aggregates,
    `Store.quality.drift_reference`)."""

    rows: int
    counts: dict[str, dict[str, int]]  # column -> category label -> rows
    values: dict[str, np.ndarray]      # column -> its non-null values

    @classmethod
    def of(cls, frame: pd.DataFrame) -> ReferenceStats:
        ref = measured(frame)
        return cls(rows=len(ref),
                   counts={c: {str(k): int(v) for k, v in
                               categories(ref[c]).value_counts().items()}
                           for c in ("kind", "source", "difficulty")},
                   values={c: ref[c].dropna().astype(float).to_numpy()
                           for c in ("program_chars", "answer_magnitude")})


def _partition(counts: dict[str, int]) -> dict[str, Any]:
    # Shares as pandas' value_counts(normalize=True) computes them (count / total, each a
    # float64 division), labels in sorted order.
    total = sum(counts.values())
    labels = sorted(counts)
    return {"values": labels, "weights": [counts[v] / total for v in labels]}


def _quantile_ranges(clean: np.ndarray, spec: dict[str, Any]) -> dict[str, Any]:
    quantiles = [float(q) for q in spec.get("quantiles", [0.1, 0.5, 0.9])]
    rel = float(spec.get("relative_tolerance", 0.0))
    absolute = float(spec.get("absolute_tolerance", 0.0))
    ranges: list[list[float | None]] = []
    for q in quantiles:
        if clean.size == 0:
            ranges.append([None, None])  # nothing to compare with: no bound
            continue
        ref = float(np.quantile(clean, q))
        slack = abs(ref) * rel + absolute
        ranges.append([ref - slack, ref + slack])
    return {"quantiles": quantiles, "value_ranges": ranges}


def drift_parameters(suite: Any, reference: pd.DataFrame | ReferenceStats
                     ) -> dict[str, Any]:
    """Values of the drift suite's `$PARAMETER`s measured on the reference rows.

    A KL-divergence expectation gets the reference's category shares of its column; a
    quantile expectation gets ranges around the reference's quantiles, widened by the
    tolerances in its `meta.reference` (so the JSON suite, not this code, says how much
    change is drift)."""
    ref = reference if isinstance(reference, ReferenceStats) else ReferenceStats.of(reference)
    params: dict[str, Any] = {}
    for exp in suite.expectations:
        config = exp.configuration
        for key, value in config.kwargs.items():
            if not (isinstance(value, dict) and "$PARAMETER" in value):
                continue
            name, column = value["$PARAMETER"], config.kwargs["column"]
            if key == "partition_object":
                params[name] = _partition(ref.counts[column])
            elif key == "quantile_ranges":
                spec = (config.meta or {}).get("reference", {})
                params[name] = _quantile_ranges(ref.values[column], spec)
            else:
                raise ValueError(f"quality/gx/expectations/{suite.name}.json: no reference "
                                 f"value is defined for parameter {name!r} ({key})")
    return params
