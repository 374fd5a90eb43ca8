"""One refresh per warehouse at a time.

DuckDB's own file lock only serialises single transactions. Two refreshes interleaving their
many short transactions would each decide dedup against a warehouse the other is changing, and
both would publish snapshots built from half of the other's writes. So a refresh holds an
advisory lock on `<warehouse>.refresh.lock` for its whole duration, and a second refresh on the
same file is refused at once with a message that names the holder (decision documented in the
README: refuse, not wait; a nightly refresh that overlaps a manual one has nothing to add).

The lock is `flock(2)`: the kernel drops it when the holding process dies, so a killed refresh
never leaves a stale lock behind. Readers and other flows (finetune, evaluate) do not take it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .connection import resolve_path


class RefreshAlreadyRunning(RuntimeError):
    """Another refresh holds the warehouse."""


def lock_path(warehouse: str | os.PathLike[str] | None = None) -> Path:
    """The lock file that sits next to the warehouse file."""
    db = resolve_path(warehouse)
    return db.with_name(db.name + ".refresh.lock")


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "another process"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("since", 0)))
    return (f"run {info.get('run_id', '?')} (pid {info.get('pid', '?')} on "
            f"{info.get('host', '?')}, since {started})")


def _refused(warehouse: str | os.PathLike[str] | None, path: Path) -> RefreshAlreadyRunning:
    return RefreshAlreadyRunning(
        f"{resolve_path(warehouse)}: another refresh is running on this warehouse: "
        f"{_holder(path)}. Refusing to start a second one; run it again when that one has "
        f"finished."
    )


def ensure_no_refresh(warehouse: str | os.PathLike[str] | None) -> None:
    """Raise RefreshAlreadyRunning if a refresh holds `warehouse` right now."""
    path = lock_path(warehouse)
    if not path.exists():
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except BlockingIOError:
        raise _refused(warehouse, path) from None
    finally:
        os.close(fd)


@contextmanager
def refresh_lock(warehouse: str | os.PathLike[str] | None, run_id: str) -> Iterator[Path]:
    """Hold the refresh lock of `warehouse` for the body, or raise RefreshAlreadyRunning."""
    path = lock_path(warehouse)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Open without truncating: the holder's description must survive a refused attempt.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _refused(warehouse, path) from None
        info = {"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname(),
                "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
