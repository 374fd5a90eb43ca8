"""The `preference_pairs` suite (quality/gx/expectations/preference_pairs.json), run by its
checkpoint over a batch of pairs: a pair that fails a critical expectation is rejected under
that expectation's name, the others are stored. Same project, results store and Data Docs as
the refresh's suites (quality/validate.py)."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .context import data_docs_enabled, gx_lock, quality_context
from .validate import _results, _run, _suite_stats, row_failures

SUITE = CHECKPOINT = "preference_pairs"
# The columns the suite reads (tasks/preferences/stages.py builds them).
PAIR_COLUMNS = ("pair_id", "pair_type", "question_id", "prompt", "chosen", "rejected",
                "chosen_question_id", "rejected_question_id", "chosen_correct",
                "rejected_correct")


@dataclass
class PairValidation:
    failed: dict[str, str]  # pair_id -> the first critical expectation it failed
    success: bool
    statistics: dict[str, Any]
    results: list[dict[str, Any]] = field(default_factory=list)

    def suite_rows(self) -> list[tuple[str, bool, dict[str, Any], list[dict[str, Any]]]]:
        """One `validations` row: (suite, success, statistics, results)."""
        return [(SUITE, self.success, self.statistics, self.results)]


def validate_pairs(rows: pd.DataFrame, *, run_id: str | None = None,
                   docs_dir: str | os.PathLike[str] | None = None) -> PairValidation:
    """Run the preference_pairs checkpoint over `rows` (PAIR_COLUMNS)."""
    df = rows.reset_index(drop=True).copy()
    for column in PAIR_COLUMNS:
        if column not in df.columns:
            df[column] = None
    tmp = None if docs_dir is not None else tempfile.TemporaryDirectory(prefix="gx-docs-")
    docs = Path(docs_dir if docs_dir is not None else Path(tmp.name) / "docs")
    try:
        with gx_lock:
            ctx = quality_context(docs, data_docs=data_docs_enabled())
            runs = _run(ctx, CHECKPOINT, df, {}, run_id or "adhoc", dt.datetime.now(dt.UTC))
    finally:
        if tmp is not None:
            tmp.cleanup()
    _, res = runs[SUITE]
    failed = row_failures(res, "pair_id")
    stats = {**_suite_stats(res), "rows": len(df), "rejected": len(failed)}
    return PairValidation(failed=failed, success=not failed, statistics=stats,
                          results=_results(SUITE, res, blocking=False))
