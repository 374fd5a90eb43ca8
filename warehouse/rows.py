"""Helpers shared by the warehouse modules: JSON columns, timestamps, Arrow tables."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa


def to_json(value: Any) -> str:
    """JSON for a JSON column: sorted keys (stable bytes), non-ASCII kept, str() fallback."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def now() -> datetime:
    """UTC now as a naive timestamp (DuckDB TIMESTAMP columns hold naive UTC)."""
    return datetime.now(UTC).replace(tzinfo=None)


def arrow_rows(records: Sequence[Any], columns: dict[str, tuple[Callable[[Any], Any],
                                                                 pa.DataType | None]]
               ) -> pa.Table:
    """An Arrow table with one row per record: {column: (getter, type or None)}."""
    return pa.table({name: pa.array([get(r) for r in records], type=typ)
                     for name, (get, typ) in columns.items()})


def attr_columns(*names: str, **types: pa.DataType) -> dict[str, tuple[Callable[[Any], Any],
                                                                      pa.DataType | None]]:
    """Columns read straight off record attributes, for `arrow_rows`: names in order, an
    Arrow type where one is needed (nullable or narrow columns)."""
    from operator import attrgetter

    return {name: (attrgetter(name), types.get(name)) for name in names}


def vectors_of(column: pa.ChunkedArray) -> np.ndarray:
    """A list<float> column as an (n, d) float32 matrix."""
    if len(column) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    arr = column.combine_chunks()
    flat = arr.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return flat.reshape(len(arr), -1)


def insert_rejections(con: Any, run_id: str, rejections: Iterable[Any]) -> None:
    rows = list(rejections)
    if not rows:
        return
    tbl = pa.table({
        "item_id": [r.item_id for r in rows],
        "stage": [r.stage for r in rows],
        "reason": [r.reason for r in rows],
        "detail": [r.detail[:2000] for r in rows],
    })
    con.register("rej_new", tbl)
    con.execute(
        "INSERT OR IGNORE INTO rejections (item_id, stage, reason, detail, run_id) "
        "SELECT item_id, stage, reason, detail, ? FROM rej_new",
        [run_id],
    )


def insert_validation(con: Any, run_id: str, suite: str, success: bool,
                       statistics: dict[str, Any], results: list[dict[str, Any]]) -> None:
    con.execute("INSERT INTO validations (run_id, suite, success, statistics, results) "
                "VALUES (?, ?, ?, ?, ?)",
                [run_id, suite, success, to_json(statistics), to_json(results)])
