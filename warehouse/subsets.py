"""Every SQL statement about subsets: the examples of a pinned snapshot, their stored
embeddings, and the subsets drawn from them (tables `subsets`, `subset_items`, migration 003).

A facet of `Store`: `store.subsets`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from tasks.errors import InputError
from tasks.experiments.subsets import Example

from .rows import Facet, filtered, insert_arrow, vectors_by

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class SubsetInfo:
    """One row of `subsets`."""

    subset_id: str
    snapshot_id: int
    strategy: str
    size: int
    seed: int
    params: dict[str, Any]
    parent_subset_id: str | None
    created_at: datetime | None = None


_EXAMPLE_COLUMNS = (
    "q.question_id, s.sample_id, q.text, q.context, s.program, s.predicted, q.source, "
    "q.meta ->> 'kind', q.difficulty"
)


def _examples(rows: Sequence[tuple[Any, ...]]) -> list[Example]:
    return [Example(question_id=r[0], sample_id=r[1], text=r[2], context=r[3] or "",
                    program=r[4] or "", answer=r[5], source=r[6], kind=r[7],
                    difficulty=r[8]) for r in rows]


_INFO_COLUMNS = ("subset_id, snapshot_id, strategy, size, seed, params, parent_subset_id, "
                 "created_at")


def _info(row: tuple[Any, ...]) -> SubsetInfo:
    return SubsetInfo(subset_id=row[0], snapshot_id=int(row[1]), strategy=row[2],
                      size=int(row[3]), seed=int(row[4]), params=json.loads(row[5] or "{}"),
                      parent_subset_id=row[6], created_at=row[7])


class Subsets(Facet):
    """Snapshots' examples and the subsets drawn from them (`store.subsets`)."""

    def latest_snapshot_id(self) -> int | None:
        with self.store.connect() as con:
            row = con.execute("SELECT max(snapshot_id) FROM snapshots").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def resolve_snapshot_id(self, snapshot_id: int | None = None) -> int:
        """`snapshot_id` if it exists, else the latest one; InputError when there is none."""
        st = self.store
        if snapshot_id is None:
            latest = self.latest_snapshot_id()
            if latest is None:
                raise InputError(f"{st.path}: no snapshot yet (run `distillery refresh` first)")
            return latest
        with st.connect() as con:
            found = con.execute("SELECT 1 FROM snapshots WHERE snapshot_id = ?",
                                [snapshot_id]).fetchone()
        if not found:
            raise InputError(f"snapshot {snapshot_id} not found in {st.path}")
        return int(snapshot_id)

    def snapshot_size(self, snapshot_id: int) -> int:
        with self.store.connect() as con:
            row = con.execute("SELECT count(*) FROM snapshot_items WHERE snapshot_id = ?",
                              [snapshot_id]).fetchone()
        return int(row[0])

    def snapshot_examples(self, snapshot_id: int) -> list[Example]:
        """Every example of one snapshot (question + its published sample), by question_id."""
        with self.store.connect() as con:
            rows = con.execute(
                f"SELECT {_EXAMPLE_COLUMNS} FROM snapshot_items si "
                "JOIN questions q ON q.question_id = si.question_id "
                "JOIN samples s ON s.sample_id = si.sample_id "
                "WHERE si.snapshot_id = ? ORDER BY q.question_id",
                [snapshot_id],
            ).fetchall()
        return _examples(rows)

    def question_embeddings(self, question_ids: Sequence[str],
                            model: str) -> dict[str, np.ndarray]:
        """Stored vectors of these questions' texts for `model`: {question_id: vector}.
        Questions without a stored vector are absent."""
        if not question_ids:
            return {}
        ids = pa.table({"question_id": list(dict.fromkeys(question_ids))})
        with self.store.connect() as con:
            con.register("wanted_q", ids)
            tbl = con.sql(
                "SELECT q.question_id, e.vector FROM wanted_q w "
                "JOIN questions q ON q.question_id = w.question_id "
                "JOIN embeddings e ON e.item_id = q.text_key AND e.model = ? "
                "ORDER BY q.question_id",
                params=[model],
            ).to_arrow_table()
        return vectors_by(tbl, "question_id")

    def save_subset(self, info: SubsetInfo, items: Sequence[tuple[str, str]]) -> bool:
        """Store a subset and its items ((question_id, sample_id) in rank order).

        Insert-or-ignore: a subset id that exists already adds no rows and returns False. The
        one exception is a missing parent link, filled in when the same subset is later made as
        part of a ladder (the parent does not change the rows, so it is not part of the id)."""
        if len(items) != info.size:
            raise ValueError(f"subset {info.subset_id}: {len(items)} items for size {info.size}")
        tbl = pa.table({
            "question_id": [q for q, _ in items],
            "sample_id": [s for _, s in items],
            "rank": pa.array(range(len(items)), type=pa.int32()),
        })
        with self.store.write() as con:
            exists = con.execute("SELECT parent_subset_id FROM subsets WHERE subset_id = ?",
                                 [info.subset_id]).fetchone()
            if exists:
                if exists[0] is None and info.parent_subset_id:
                    con.execute("UPDATE subsets SET parent_subset_id = ? WHERE subset_id = ?",
                                [info.parent_subset_id, info.subset_id])
                return False
            con.execute(
                "INSERT INTO subsets (subset_id, snapshot_id, strategy, size, seed, params, "
                "parent_subset_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [info.subset_id, info.snapshot_id, info.strategy, info.size, info.seed,
                 json.dumps(info.params, sort_keys=True), info.parent_subset_id],
            )
            insert_arrow(con, "subset_items", tbl, ignore=False, subset_id=info.subset_id)
        return True

    def load_subset(self, subset_id: str) -> SubsetInfo:
        """The subset's row; InputError naming the id when there is none."""
        st = self.store
        with st.connect() as con:
            row = con.execute(f"SELECT {_INFO_COLUMNS} FROM subsets WHERE subset_id = ?",
                              [subset_id]).fetchone()
        if row is None:
            raise InputError(f"subset {subset_id!r} not found in {st.path}")
        return _info(row)

    def subset_examples(self, subset_id: str) -> list[Example]:
        """The subset's examples in rank order (the order they were selected in)."""
        self.load_subset(subset_id)
        with self.store.connect() as con:
            rows = con.execute(
                f"SELECT {_EXAMPLE_COLUMNS} FROM subset_items si "
                "JOIN questions q ON q.question_id = si.question_id "
                "JOIN samples s ON s.sample_id = si.sample_id "
                "WHERE si.subset_id = ? ORDER BY si.rank",
                [subset_id],
            ).fetchall()
        return _examples(rows)

    def list_subsets(self, snapshot_id: int | None = None) -> list[SubsetInfo]:
        sql, params = filtered(f"SELECT {_INFO_COLUMNS} FROM subsets",
                               {"snapshot_id": snapshot_id},
                               "ORDER BY snapshot_id, strategy, seed, size, subset_id")
        with self.store.connect() as con:
            rows = con.execute(sql, params).fetchall()
        return [_info(r) for r in rows]
