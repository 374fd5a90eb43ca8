"""Every SQL statement of the pipeline. Stages hand over batches of records; this module
turns them into rows, in short transactions (see connection.py)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from tasks.stage import StageResult
from tasks.types import Question, context_key, stable_hash

from .cards import Cards
from .connection import connect, resolve_path, write
from .experiments import Experiments
from .llm import LLMStore
from .preferences import Preferences
from .quality import Quality
from .records import check_kinds, insert_embeddings, write_records
from .rows import (
    filtered,
    insert_rejections,
    now,
    to_json,
    vectors_by,
    vectors_of,
)
from .subsets import Subsets


class Store:
    """The warehouse at one path. Holds no connection: each call opens and closes one."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = resolve_path(path)
        # Facets, one per concern, each over this store's connections (building one is free).
        #: The LLM tables: response cache, request log, batches, judgments, selections.
        self.llm = LLMStore(self.path)
        #: Snapshots' examples, stored embeddings by question, subsets.
        self.subsets = Subsets(self)
        #: Fine-tuning runs and evaluations.
        self.experiments = Experiments(self)
        #: The current snapshot as the drift reference; validations of a run.
        self.quality = Quality(self)
        #: Distinct-solution sets, preference pairs, verifier labels (flows/preferences.py).
        self.preferences = Preferences(self)
        #: What a dataset card reports about an export (subset, lineage, rejections).
        self.cards = Cards(self)

    def connect(self):  # noqa: ANN201 - context manager of a duckdb connection
        return connect(self.path)

    def write(self):  # noqa: ANN201
        return write(self.path)

    # ------------------------------------------------------------------ runs
    def start_run(self, run_id: str, flow: str, params: dict[str, Any]) -> None:
        with self.write() as con:
            con.execute(
                "INSERT OR REPLACE INTO runs (run_id, flow, params, started_at, status) "
                "VALUES (?, ?, ?, ?, 'running')",
                [run_id, flow, to_json(params), now()],
            )

    def mark_interrupted(self, flow: str) -> int:
        """Runs of `flow` left 'running' by a process that died become 'interrupted'."""
        with self.write() as con:
            n = con.execute("SELECT count(*) FROM runs WHERE flow = ? AND status = 'running'",
                            [flow]).fetchone()[0]
            con.execute("UPDATE runs SET status = 'interrupted' WHERE flow = ? "
                        "AND status = 'running'", [flow])
        return int(n)

    def finish_run(self, run_id: str, status: str, counts: dict[str, Any],
                   stage_seconds: dict[str, float], snapshot_id: int | None = None) -> None:
        with self.write() as con:
            con.execute(
                "UPDATE runs SET finished_at = ?, status = ?, counts = ?, stage_seconds = ?, "
                "snapshot_id = coalesce(?, snapshot_id) WHERE run_id = ?",
                [now(), status, to_json(counts),
                 to_json(stage_seconds), snapshot_id, run_id],
            )

    # ------------------------------------------------------------- questions
    def question_states(self, question_ids: Sequence[str]) -> dict[str, str]:
        """'done' (rejected, collapsed as duplicate, or in a snapshot) or 'pending'
        (stored by an earlier run that stopped before deciding it). Unknown ids are absent."""
        if not question_ids:
            return {}
        ids = pa.table({"question_id": list(question_ids)})
        with self.connect() as con:
            con.register("ids", ids)
            rows = con.execute(
                """
                SELECT i.question_id,
                       CASE WHEN EXISTS (SELECT 1 FROM rejections r
                                         WHERE r.item_id = i.question_id)
                              OR EXISTS (SELECT 1 FROM snapshot_items si
                                         WHERE si.question_id = i.question_id)
                            THEN 'done' ELSE 'pending' END
                FROM ids i JOIN questions q USING (question_id)
                """
            ).fetchall()
        return dict(rows)

    def load_questions(self, question_ids: Sequence[str]) -> list[Question]:
        """The stored questions of these ids, in the order asked (ids not stored are left
        out). The order matters: a training set built from it must not change between two
        runs of the same config, and a join returns storage order, which differs between
        two refreshes of the same config."""
        if not question_ids:
            return []
        ids = pa.table({"question_id": list(dict.fromkeys(question_ids))})
        with self.connect() as con:
            con.register("ids", ids)
            rows = con.execute(
                "SELECT question_id, text, source, context, gold_answer, gold_program, "
                "difficulty, source_id, meta FROM questions JOIN ids USING (question_id)"
            ).fetchall()
        by_id = {
            r[0]: Question(text=r[1], source=r[2], context=r[3], gold_answer=r[4],
                           gold_program=r[5], difficulty=r[6], source_id=r[7],
                           meta=json.loads(r[8] or "{}"))
            for r in rows
        }
        return [by_id[i] for i in question_ids if i in by_id]

    def representatives(self, model: str, context_keys: Iterable[str] | None = None
                        ) -> tuple[list[str], list[str], list[str], np.ndarray]:
        """Questions already kept by dedup, with their stored embeddings: the set that new
        questions are compared with. With `context_keys`, only those over these contexts
        (a new question is only ever compared with representatives of its own context),
        so a refresh reads what its new items need, not the whole warehouse. Returns (ids,
        texts, contexts, vectors), in question_id order."""
        keys = None if context_keys is None else sorted(set(context_keys))
        if keys is not None and not keys:
            return [], [], [], np.zeros((0, 0), dtype=np.float32)
        if keys is not None:
            self._backfill_context_keys()
        with self.connect() as con:
            if keys is not None:
                con.register("wanted_contexts", pa.table({"context_key": keys}))
            tbl = con.sql(
                f"""
                SELECT q.question_id, q.text, q.context, e.vector
                FROM dedup d
                JOIN questions q ON q.question_id = d.item_id
                {"JOIN wanted_contexts w ON w.context_key = q.context_key"
                 if keys is not None else ""}
                JOIN embeddings e ON e.item_id = q.text_key AND e.model = ?
                WHERE d.item_id = d.representative_id
                ORDER BY q.question_id
                """,
                params=[model],
            ).to_arrow_table()
        ids = tbl.column("question_id").to_pylist()
        return (ids, tbl.column("text").to_pylist(), tbl.column("context").to_pylist(),
                vectors_of(tbl.column("vector")))

    def _backfill_context_keys(self) -> None:
        """Questions stored before migration 030 have no context_key: compute theirs once
        (the key is NFKC normalization, which SQL does not have)."""
        if getattr(self, "_context_keys_done", False):
            return
        with self.connect() as con:
            missing = con.execute("SELECT count(*) FROM questions WHERE context_key IS NULL"
                                  ).fetchall()[0][0]
        if missing:
            with self.write() as con:
                rows = con.execute("SELECT question_id, context FROM questions "
                                   "WHERE context_key IS NULL").fetchall()
                con.register("backfill", pa.table({
                    "question_id": [r[0] for r in rows],
                    "context_key": [context_key(r[1]) for r in rows]}))
                con.execute("UPDATE questions SET context_key = b.context_key FROM backfill b "
                            "WHERE questions.question_id = b.question_id")
        self._context_keys_done = True

    # ------------------------------------------------------------ embeddings
    def load_embeddings(self, keys: Sequence[str], model: str) -> dict[str, np.ndarray]:
        if not keys:
            return {}
        wanted = pa.table({"item_id": list(dict.fromkeys(keys))})
        with self.connect() as con:
            con.register("wanted", wanted)
            tbl = con.sql(
                "SELECT e.item_id, e.vector FROM embeddings e JOIN wanted USING (item_id) "
                "WHERE e.model = ?",
                params=[model],
            ).to_arrow_table()
        return vectors_by(tbl, "item_id")

    def embedded_keys(self, keys: Sequence[str], model: str) -> set[str]:
        """The keys among `keys` that have a stored vector for `model` (no vector is read)."""
        if not keys:
            return set()
        wanted = pa.table({"item_id": list(dict.fromkeys(keys))})
        with self.connect() as con:
            con.register("wanted", wanted)
            rows = con.execute("SELECT e.item_id FROM embeddings e JOIN wanted USING (item_id) "
                               "WHERE e.model = ?", [model]).fetchall()
        return {r[0] for r in rows}

    def save_embeddings(self, vectors: dict[str, np.ndarray], model: str) -> int:
        """Insert-or-ignore vectors keyed by text_key; returns how many were offered."""
        if vectors:
            with self.write() as con:
                insert_embeddings(con, vectors, model)
        return len(vectors)

    # ------------------------------------------------------- stage writes
    def save_stage(self, run_id: str, result: StageResult[Any]) -> None:
        """Everything one stage decided, in one transaction: its records (each kind through
        its writer, warehouse/records.py) and its rejections. A question therefore never
        lands without its dedup verdict, nor a sample without the rejection its verdict
        implies. A record kind without a writer raises UnknownRecordKind before anything
        is written."""
        rec = result.records
        check_kinds(rec)
        if not rec and not result.rejections:
            return
        with self.write() as con:
            write_records(con, run_id, rec)
            insert_rejections(con, run_id, result.rejections)

    def publish_snapshot(self, run_id: str,
                         kept: Mapping[str, str] | Iterable[tuple[str, str]]) -> int | None:
        """New snapshot = latest snapshot's items plus `kept` (question_id -> sample_id, or
        such pairs: the last pair of a question counts). Returns the new id, or None when
        the content equals the latest snapshot's (a rerun publishes nothing new). One
        transaction: readers see the old or the new snapshot.

        All in SQL: the snapshot's items never pass through Python, and the content hash
        is DuckDB's sha256 over the very bytes `stable_hash(sorted(items))` hashed."""
        new = dict(kept.items() if isinstance(kept, Mapping) else kept)
        with self.write() as con:
            # fetchall: a half-read result blocks register() on this connection.
            latest = next(iter(con.execute(
                "SELECT snapshot_id, content_hash FROM snapshots "
                "ORDER BY snapshot_id DESC LIMIT 1"
            ).fetchall()), None)
            con.register("kept_items", pa.table({"question_id": list(new),
                                                 "sample_id": list(new.values())}))
            # An example already published keeps its sample.
            con.execute(
                "CREATE OR REPLACE TEMP TABLE next_items AS "
                "SELECT question_id, sample_id FROM snapshot_items WHERE snapshot_id = $1 "
                "UNION ALL SELECT k.question_id, k.sample_id FROM kept_items k "
                "WHERE NOT EXISTS (SELECT 1 FROM snapshot_items s WHERE s.snapshot_id = $1 "
                "AND s.question_id = k.question_id)", [latest[0] if latest else -1])
            try:
                n_items, content = self._content_hash(con)
                if not n_items or (latest and latest[1] == content):
                    return None
                snapshot_id = con.execute("SELECT nextval('snapshot_seq')").fetchone()[0]
                con.execute(
                    "INSERT INTO snapshots (snapshot_id, run_id, parent_id, n_items, "
                    "content_hash) VALUES (?, ?, ?, ?, ?)",
                    [snapshot_id, run_id, latest[0] if latest else None, n_items, content])
                con.execute("INSERT INTO snapshot_items (snapshot_id, question_id, sample_id) "
                            "SELECT ?, question_id, sample_id FROM next_items", [snapshot_id])
                return int(snapshot_id)
            finally:
                con.execute("DROP TABLE IF EXISTS next_items")

    @staticmethod
    def _content_hash(con: Any) -> tuple[int, str]:
        """(items, content hash) of `next_items`: sha256 of the JSON text of the sorted
        (question_id, sample_id) pairs, as tasks.types.stable_hash writes it. Ids are hex
        digests, which JSON writes as they are; any other id (a quote, a backslash, a
        control character) is hashed in Python instead."""
        n, plain = con.execute(
            "SELECT count(*), coalesce(bool_and(NOT regexp_matches(question_id || sample_id, "
            "'[\"\\\\\\x00-\\x1f]')), true) FROM next_items").fetchall()[0]
        if not plain:
            pairs = con.execute("SELECT question_id, sample_id FROM next_items "
                                "ORDER BY question_id, sample_id").fetchall()
            return int(n), stable_hash([tuple(p) for p in pairs], length=32)
        digest = con.execute(
            "SELECT sha256('[[' || coalesce(string_agg('[\"' || question_id || '\", \"' "
            "|| sample_id || '\"]', ', ' ORDER BY question_id, sample_id), '') || ']]') "
            "FROM next_items").fetchall()[0][0]
        return int(n), digest[:32]

    # ------------------------------------------------------------ browsing
    def query(self, sql: str, params: Sequence[Any] | None = None
              ) -> tuple[list[str], list[tuple[Any, ...]]]:
        with self.connect() as con:
            cur = con.execute(sql, params or [])
            if cur.description is None:
                return [], []
            return [d[0] for d in cur.description], cur.fetchall()

    def unexplained_questions(self) -> int:
        """Questions neither in the latest snapshot nor rejected: zero after every finished
        run (DESIGN: nothing leaves the path silently)."""
        return self.query(
            "SELECT count(*) FROM questions q WHERE q.question_id NOT IN "
            "(SELECT question_id FROM curated) AND q.question_id NOT IN "
            "(SELECT item_id FROM rejections)")[1][0][0]

    def counts(self) -> dict[str, int]:
        tables = ["runs", "questions", "samples", "embeddings", "dedup", "rejections",
                  "validations", "snapshots", "curated"]
        with self.connect() as con:
            return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}

    def rejection_reasons(self, run_id: str | None = None) -> list[tuple[str, str, int]]:
        return self.query(*filtered("SELECT stage, reason, count(*) AS n FROM rejections",
                                    {"run_id": run_id}, "GROUP BY 1, 2 ORDER BY n DESC, 1, 2"))[1]

    def first_rejection_detail(self, run_id: str, stage: str, reason: str) -> str | None:
        """The detail of one rejection of a run (the first by item id), e.g. the error a
        failed request ended with."""
        rows = self.query("SELECT detail FROM rejections WHERE run_id = ? AND stage = ? "
                          "AND reason = ? ORDER BY item_id LIMIT 1", [run_id, stage, reason])[1]
        return rows[0][0] if rows else None

    def recent_runs(self, limit: int = 5) -> tuple[list[str], list[tuple[Any, ...]]]:
        return self.query(
            "SELECT run_id, flow, status, started_at, seconds, input, new, kept, rejected, "
            "snapshot_id FROM run_summary ORDER BY started_at DESC LIMIT ?",
            [limit],
        )
