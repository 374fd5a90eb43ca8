"""Connection discipline for the DuckDB warehouse.

DuckDB lets one process write a file at a time, and a second process cannot even open it
while the first holds it. So every connection here is short: open, do one thing, close.
Opening retries while another process holds the lock, so concurrent flows wait a little
instead of failing.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

DEFAULT_PATH = Path("data/warehouse.duckdb")
ENV_VAR = "DISTILLERY_WAREHOUSE"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# Files written with this setting open in the PyPI duckdb-cli 1.5.x (storage 64-68),
# so users can browse with the `duckdb` command next to python duckdb 2.x.
DUCKDB_CONFIG = {"storage_compatibility_version": "v1.5.0"}

_migrated: set[str] = set()
_migrate_lock = threading.Lock()
_log = logging.getLogger(__name__)
# Seconds each open of this process spent waiting for another process's lock: how long
# concurrent flows really wait (the concurrency test reads it; nobody else needs to).
_lock_waits: list[float] = []


def lock_waits() -> list[float]:
    """Waits (seconds) of the opens in this process that found the file locked."""
    return list(_lock_waits)


class WarehouseBusy(RuntimeError):
    """The file stayed locked by another process for longer than the retry budget."""


WAREHOUSE_HELP = "DuckDB file; empty: $DISTILLERY_WAREHOUSE or data/warehouse.duckdb"


def resolve_path(path: str | os.PathLike[str] | None = None) -> Path:
    """Explicit path, else $DISTILLERY_WAREHOUSE, else data/warehouse.duckdb ("" and None
    both mean "not set")."""
    if path is None or str(path) == "":
        path = os.environ.get(ENV_VAR) or DEFAULT_PATH
    return Path(path).expanduser().resolve()


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


def _open(path: Path, timeout_s: float) -> duckdb.DuckDBPyConnection:
    started = time.monotonic()
    deadline = started + timeout_s
    delay = 0.02
    retried = False
    while True:
        try:
            con = duckdb.connect(str(path), config=DUCKDB_CONFIG)
        except duckdb.IOException as exc:
            if not _is_lock_error(exc) or time.monotonic() > deadline:
                if _is_lock_error(exc):
                    raise WarehouseBusy(
                        f"{path}: still locked by another process after {timeout_s:.0f}s"
                    ) from None
                raise
            # Jitter so two waiting processes do not retry in lockstep.
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.5)
            retried = True
            continue
        if retried:
            waited = time.monotonic() - started
            _lock_waits.append(waited)
            if waited > 1.0:
                _log.info("%s: waited %.1fs for another process's write", path, waited)
        return con


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply migrations/NNN_*.sql in order, each once, recorded in schema_migrations."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version VARCHAR PRIMARY KEY, applied_at TIMESTAMP DEFAULT current_timestamp)"
    )
    done = {r[0] for r in con.execute("SELECT version FROM schema_migrations").fetchall()}
    applied = []
    for sql_file in sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9]_*.sql")):
        if sql_file.stem in done:
            continue
        con.execute("BEGIN")
        try:
            con.execute(sql_file.read_text())
            con.execute("INSERT INTO schema_migrations (version) VALUES (?)", [sql_file.stem])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        applied.append(sql_file.stem)
    return applied


@contextmanager
def connect(path: str | os.PathLike[str] | None = None, *,
            timeout_s: float = 60.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection with the schema up to date. Close it soon."""
    resolved = resolve_path(path)
    resolved.parent.mkdir(parents=True, exist_ok=True)
    con = _open(resolved, timeout_s)
    try:
        key = str(resolved)
        if key not in _migrated:
            with _migrate_lock:
                if key not in _migrated:
                    migrate(con)
                    _migrated.add(key)
        yield con
    finally:
        con.close()


@contextmanager
def write(path: str | os.PathLike[str] | None = None, *,
          timeout_s: float = 60.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """One short write transaction: all of it lands, or none of it."""
    with connect(path, timeout_s=timeout_s) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
