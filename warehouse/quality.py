"""SQL for the quality stage: the rows a candidate batch is compared with (the `curated` view,
i.e. the latest snapshot, migration 002), and the validations of a run (migration 001).

Functions take a `Store` or a path (None: $DISTILLERY_WAREHOUSE, else the default file)."""

from __future__ import annotations

import json
import os
from typing import Any

import pandas as pd

from .store import Store

StoreLike = Store | str | os.PathLike[str] | None

# The columns validate_candidates reads, in the curated view's names.
REFERENCE_COLUMNS = ("question_id", "question", "context", "program", "answer", "gold_answer",
                     "kind", "difficulty", "source")


def _store(store: StoreLike) -> Store:
    return store if isinstance(store, Store) else Store(store)


def curated_reference(store: StoreLike = None) -> pd.DataFrame | None:
    """The current snapshot's examples (the drift suite's reference), or None when nothing
    has been published yet."""
    with _store(store).connect() as con:
        frame = con.execute(f"SELECT {', '.join(REFERENCE_COLUMNS)} FROM curated").df()
    if frame.empty:
        return None
    # A nullable INTEGER column comes back as float with NaN; the suites read ints or None.
    frame["difficulty"] = frame["difficulty"].astype("Int64").astype(object).where(
        frame["difficulty"].notna(), None)
    return frame


def run_validations(run_id: str, store: StoreLike = None) -> list[dict[str, Any]]:
    """The `validations` rows of one run: suite, success, statistics."""
    with _store(store).connect() as con:
        rows = con.execute("SELECT suite, success, statistics FROM validations "
                           "WHERE run_id = ? ORDER BY suite", [run_id]).fetchall()
    return [{"suite": s, "success": bool(ok), "statistics": json.loads(st) if st else {}}
            for s, ok, st in rows]
