"""SQL for the quality stage: the rows a candidate batch is compared with (the `curated` view,
i.e. the latest snapshot, migration 002), and the validations of a run (migration 001).
A facet of `Store`: `store.quality`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from quality.suites import ReferenceStats, answer_magnitudes

from .rows import Facet

if TYPE_CHECKING:
    import pandas as pd


# The columns validate_candidates reads, in the curated view's names.
REFERENCE_COLUMNS = ("question_id", "question", "context", "program", "answer", "gold_answer",
                     "kind", "difficulty", "source")


class Quality(Facet):
    """What the quality stage reads back (`store.quality`)."""

    def curated_reference(self) -> pd.DataFrame | None:
        """The current snapshot's examples (the drift suite's reference), or None when
        nothing has been published yet."""
        with self.store.connect() as con:
            frame = con.execute(f"SELECT {', '.join(REFERENCE_COLUMNS)} FROM curated").df()
        if frame.empty:
            return None
        # A nullable INTEGER column comes back as float with NaN; the suites read ints/None.
        frame["difficulty"] = frame["difficulty"].astype("Int64").astype(object).where(
            frame["difficulty"].notna(), None)
        return frame

    def drift_reference(self) -> ReferenceStats | None:
        """What the drift suite needs of the current snapshot, by SQL aggregates: category
        counts of kind, source and difficulty, program lengths, and the answers (for their
        magnitudes). No question text or context is read; None before the first snapshot.
        Equal to `ReferenceStats.of(curated_reference())`."""
        import numpy as np

        label = "coalesce(CAST({c} AS VARCHAR), '(none)')"
        with self.store.connect() as con:
            rows = con.execute("SELECT count(*) FROM curated").fetchone()[0]
            if not rows:
                return None
            counts = {c: dict(con.execute(f"SELECT {label.format(c=c)}, count(*) FROM curated "
                                          "GROUP BY 1").fetchall())
                      for c in ("kind", "source", "difficulty")}
            tbl = con.sql("SELECT CAST(length(program) AS DOUBLE) AS program_chars, answer "
                          "FROM curated").to_arrow_table()
        chars = tbl.column("program_chars").drop_null().to_numpy()
        magnitudes = answer_magnitudes(tbl.column("answer").to_pandas()).to_numpy(dtype=float)
        return ReferenceStats(rows=int(rows), counts={c: {k: int(v) for k, v in d.items()}
                                                      for c, d in counts.items()},
                              values={"program_chars": chars.astype(float),
                                      "answer_magnitude": magnitudes[~np.isnan(magnitudes)]})

    def run_validations(self, run_id: str) -> list[dict[str, Any]]:
        """The `validations` rows of one run: suite, success, statistics."""
        with self.store.connect() as con:
            rows = con.execute("SELECT suite, success, statistics FROM validations "
                               "WHERE run_id = ? ORDER BY suite", [run_id]).fetchall()
        return [{"suite": s, "success": bool(ok), "statistics": json.loads(st) if st else {}}
                for s, ok, st in rows]
