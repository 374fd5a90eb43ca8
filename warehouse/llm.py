"""SQL of the LLM teacher: response cache, request log, selections, batch jobs, judgments.

Responses are written while requests are still running, by one writer thread that drains a
queue and commits whatever arrived since its last commit in one short transaction (group
commit). A SIGKILL therefore loses only the requests in flight and the few responses that
arrived during the last commit; everything committed is found by the rerun's cache lookup.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

from tasks.llm.client import LLMCall

from .connection import connect, resolve_path, write
from .rows import filtered, insert_arrow, to_json

_STOP = object()


class LLMStore:
    """The LLM tables of the warehouse at one path. Holds no connection."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = resolve_path(path)

    # ----------------------------------------------------------------- cache
    def get_cached(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Cached responses by key (failed requests are never cached)."""
        if not keys:
            return {}
        wanted = pa.table({"key": list(dict.fromkeys(keys))})
        with connect(self.path) as con:
            con.register("wanted", wanted)
            rows = con.execute(
                "SELECT c.key, c.response FROM llm_cache c JOIN wanted USING (key)"
            ).fetchall()
        return {k: json.loads(r) for k, r in rows}

    def put_calls(self, calls: Sequence[LLMCall]) -> None:
        """Responses into the cache and every call into the request log, one transaction."""
        if not calls:
            return
        with write(self.path) as con:
            _insert_calls(con, calls)

    @contextmanager
    def writer(self, *, hold_s: float = 2.0, idle_s: float = 0.5
               ) -> Iterator[Callable[[LLMCall], None]]:
        """`put(call)` from any thread or coroutine; a background thread commits. On exit
        everything put has been committed (or the writer's error is raised).

        Opening the file costs 50-300 ms on a busy machine (and a checkpoint on close), a
        commit on an open connection a few ms. So while responses stream in, the writer keeps
        one connection for at most `hold_s` and commits each group on it; it closes after
        `idle_s` without responses, and at least every `hold_s`, so another process waiting
        for the file (it retries for a minute) gets its turn. Two seconds bounds what a
        concurrent finetune or browser waits (DESIGN: "never hold it while waiting")."""
        q: queue.Queue[Any] = queue.Queue()
        failure: list[BaseException] = []

        def take_all(first: Any) -> tuple[list[LLMCall], bool]:
            batch = [first]
            while True:  # group commit: all that arrived while the last one ran
                try:
                    batch.append(q.get_nowait())
                except queue.Empty:
                    break
            return [c for c in batch if c is not _STOP], any(c is _STOP for c in batch)

        def drain() -> None:
            calls: list[LLMCall] = []
            stop = False
            while not stop or calls:  # never leave with responses not committed
                expired = False
                try:
                    # Opened before the first response arrives, so that one is not kept
                    # waiting (and exposed to a kill) for the slow open.
                    with connect(self.path) as con:
                        opened = time.monotonic()
                        while True:
                            _commit(con, calls)
                            calls = []
                            if stop:
                                break
                            if time.monotonic() - opened > hold_s:
                                expired = True
                                break
                            try:
                                calls, stop = take_all(q.get(timeout=idle_s))
                            except queue.Empty:
                                break
                except BaseException as exc:  # surfaced in the producer's thread on exit
                    failure.append(exc)
                    while q.get() is not _STOP:  # keep the producers unblocked until done
                        pass
                    return
                if stop:
                    return
                if expired:
                    # Leave the file closed longer than another process's longest retry
                    # back-off (0.5 s in connection.py), or under a steady stream of
                    # responses it could miss every gap and give up.
                    time.sleep(0.6)
                calls, stop = take_all(q.get())  # wait with the file closed

        thread = threading.Thread(target=drain, name="llm-cache-writer", daemon=True)
        thread.start()
        try:
            yield q.put
        finally:
            q.put(_STOP)
            thread.join()
        if failure:
            raise failure[0]

    # ---------------------------------------------------------------- limits
    def save_limits(self, run_id: str, purpose: str,
                    rows: Sequence[tuple[float, float, int]]) -> None:
        """The adaptive limit over one step of a run: (t_s, limit, in_flight) rows."""
        if not rows:
            return
        tbl = pa.table({"t_s": pa.array([r[0] for r in rows], type=pa.float64()),
                        "limit_now": pa.array([r[1] for r in rows], type=pa.float64()),
                        "in_flight": pa.array([r[2] for r in rows], type=pa.int32())})
        with write(self.path) as con:
            insert_arrow(con, "llm_limits", tbl, ignore=False, run_id=run_id, purpose=purpose)

    def limits(self, run_id: str) -> list[tuple[str, float, float, int]]:
        """(purpose, t_s, limit, in_flight) of a run, in time order."""
        with connect(self.path) as con:
            return con.execute("SELECT purpose, t_s, limit_now, in_flight FROM llm_limits "
                               "WHERE run_id = ? ORDER BY purpose, t_s", [run_id]).fetchall()

    # ------------------------------------------------------------------ cost
    def cost_by_run(self, run_id: str | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        sql = ("SELECT l.run_id, l.model, l.purpose, l.via, count(*) AS requests, "
               "sum(CASE WHEN l.status = 'failed' THEN 1 ELSE 0 END) AS failed, "
               "sum(l.attempts) AS attempts, sum(l.tokens_in) AS tokens_in, "
               "sum(l.tokens_out) AS tokens_out, round(sum(l.cost_usd), 6) AS cost_usd, "
               "min(r.started_at) AS started_at "
               "FROM llm_requests l LEFT JOIN runs r ON r.run_id = l.run_id")
        sql, params = filtered(sql, {"l.run_id": run_id},
                               "GROUP BY ALL ORDER BY started_at DESC NULLS LAST, cost_usd DESC")
        with connect(self.path) as con:
            cur = con.execute(sql, params)
            return [d[0] for d in cur.description], cur.fetchall()

    # --------------------------------------------------------------- batches
    def open_batches(self, keys: Sequence[str]) -> list[dict[str, Any]]:
        """Batch jobs not yet downloaded whose requests overlap `keys` (resume by batch id)."""
        with connect(self.path) as con:
            rows = con.execute(
                "SELECT batch_id, run_id, input_file, request_keys, status, output_file, "
                "error_file FROM llm_batches WHERE status NOT IN ('downloaded', 'abandoned') "
                "ORDER BY created_at").fetchall()
        wanted = set(keys)
        out = []
        for r in rows:
            req_keys = json.loads(r[3])
            if wanted.intersection(req_keys):
                out.append({"batch_id": r[0], "run_id": r[1], "input_file": r[2],
                            "request_keys": req_keys, "status": r[4], "output_file": r[5],
                            "error_file": r[6]})
        return out

    def save_batch(self, batch_id: str, run_id: str, input_file: str,
                   request_keys: Sequence[str], status: str) -> None:
        with write(self.path) as con:
            con.execute("INSERT OR IGNORE INTO llm_batches (batch_id, run_id, input_file, "
                        "request_keys, status) VALUES (?, ?, ?, ?, ?)",
                        [batch_id, run_id, input_file, to_json(list(request_keys)), status])

    def update_batch(self, batch_id: str, status: str, output_file: str | None = None,
                     error_file: str | None = None) -> None:
        with write(self.path) as con:
            con.execute("UPDATE llm_batches SET status = ?, output_file = coalesce(?, "
                        "output_file), error_file = coalesce(?, error_file), updated_at = "
                        "current_timestamp WHERE batch_id = ?",
                        [status, output_file, error_file, batch_id])


def insert_selections(con: Any, run_id: str, rows: Sequence[dict[str, Any]]) -> None:
    """Ranked choices among K samples per question (rank 0 is published)."""
    insert_arrow(con, "selections", pa.table({
        "question_id": [r["question_id"] for r in rows],
        "sample_id": [r["sample_id"] for r in rows],
        "rank": pa.array([r["rank"] for r in rows], type=pa.int32()),
        "method": [r["method"] for r in rows],
        "agreement": pa.array([r.get("agreement") for r in rows], type=pa.float64()),
        "votes": pa.array([r.get("votes") for r in rows], type=pa.int32()),
        "n_samples": pa.array([r.get("n_samples") for r in rows], type=pa.int32()),
    }), run_id=run_id)


def insert_judgments(con: Any, run_id: str, model: str,
                     rows: Sequence[tuple[str, bool | None, str]]) -> None:
    insert_arrow(con, "judgments", pa.table({
        "item_id": [r[0] for r in rows],
        "solvable": pa.array([r[1] for r in rows], type=pa.bool_()),
        "reason": [r[2][:2000] for r in rows]}), model=model, run_id=run_id)


def _insert_calls(con: Any, calls: Sequence[LLMCall]) -> None:
    ok = [c for c in calls if c.response is not None]
    log = pa.table({
        "key": [c.key for c in calls],
        "run_id": [c.run_id for c in calls],
        "model": [c.model for c in calls],
        "purpose": [c.purpose for c in calls],
        "via": [c.via for c in calls],
        "status": [c.status for c in calls],
        "error": [c.error[:2000] or None for c in calls],
        "attempts": pa.array([c.attempts for c in calls], type=pa.int32()),
        "tokens_in": pa.array([c.tokens_in for c in calls], type=pa.int32()),
        "tokens_out": pa.array([c.tokens_out for c in calls], type=pa.int32()),
        "cost_usd": pa.array([c.cost_usd for c in calls], type=pa.float64()),
        "latency_ms": pa.array([c.latency_ms for c in calls], type=pa.float64()),
    })
    insert_arrow(con, "llm_cache", pa.table({
        "key": [c.key for c in ok],
        "request": pa.array([to_json(c.request) for c in ok], type=pa.string()),
        "response": pa.array([to_json(c.response) for c in ok], type=pa.string())}))
    insert_arrow(con, "llm_requests", log, ignore=False)


def _commit(con: Any, calls: Sequence[LLMCall]) -> None:
    """One transaction on an open connection: all of the group lands, or none of it."""
    if not calls:
        return
    con.execute("BEGIN TRANSACTION")
    try:
        _insert_calls(con, calls)
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
