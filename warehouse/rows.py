"""Helpers shared by the warehouse modules: JSON columns, timestamps, Arrow tables."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
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


def vectors_of(column: pa.ChunkedArray) -> np.ndarray:
    """A list<float> column as an (n, d) float32 matrix."""
    if len(column) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    arr = column.combine_chunks()
    flat = arr.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return flat.reshape(len(arr), -1)
