"""Helpers shared by the warehouse modules: JSON columns, timestamps, Arrow tables."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    from .store import Store


class Facet:
    """One concern of the warehouse (subsets, experiments, ...) over a Store's connections:
    `Store(path).subsets.save_subset(...)`."""

    def __init__(self, store: Store) -> None:
        self.store = store


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


def vectors_by(tbl: pa.Table, key: str) -> dict[str, np.ndarray]:
    """{key: vector} from an Arrow table with a `key` column and a `vector` column."""
    vecs = vectors_of(tbl.column("vector"))
    return dict(zip(tbl.column(key).to_pylist(), vecs, strict=True))


def insert_arrow(con: Any, table: str, rows: pa.Table, *, ignore: bool = True,
                 **fixed: Any) -> None:
    """The one INSERT path of the warehouse: every row of an Arrow table into `table`, its
    columns by name, plus `fixed` values shared by all rows (run_id, model, ...).
    Insert-or-ignore by default: rows are content-addressed, so a rerun adds nothing."""
    if rows.num_rows == 0:
        return
    view = f"new_{table}"
    con.register(view, rows)
    cols = ", ".join([*rows.column_names, *fixed])
    values = ", ".join([*rows.column_names, *("?" * len(fixed))])
    con.execute(f"INSERT {'OR IGNORE ' if ignore else ''}INTO {table} ({cols}) "
                f"SELECT {values} FROM {view}", list(fixed.values()))
    con.unregister(view)


def filtered(sql: str, filters: dict[str, Any], tail: str = ""
             ) -> tuple[str, list[Any]]:
    """`sql` with a WHERE for each filter that is set ({column: value or None}), then
    `tail` (GROUP BY / ORDER BY): the query text and its parameters."""
    where = {col: v for col, v in filters.items() if v is not None and v != ""}
    if where:
        sql += " WHERE " + " AND ".join(f"{col} = ?" for col in where)
    return f"{sql} {tail}".rstrip(), list(where.values())


_REJECTION_COLUMNS = attr_columns("item_id", "stage", "reason")
_REJECTION_COLUMNS["detail"] = (lambda r: r.detail[:2000], None)


def insert_rejections(con: Any, run_id: str, rejections: Iterable[Any]) -> None:
    insert_arrow(con, "rejections", arrow_rows(list(rejections), _REJECTION_COLUMNS),
                 run_id=run_id)


def insert_validation(con: Any, run_id: str, suite: str, success: bool,
                       statistics: dict[str, Any], results: list[dict[str, Any]]) -> None:
    con.execute("INSERT INTO validations (run_id, suite, success, statistics, results) "
                "VALUES (?, ?, ?, ?, ?)",
                [run_id, suite, success, to_json(statistics), to_json(results)])
