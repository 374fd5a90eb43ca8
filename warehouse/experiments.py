"""Every SQL statement about fine-tuning experiments: `finetune_runs` and `evaluations`
(migration 004). Each call is one short transaction: a training run never holds the file."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from tasks.types import stable_hash

from .rows import Facet, insert_arrow, now, to_json


class Experiments(Facet):
    """Fine-tuning runs and evaluations (`store.experiments`)."""

    def start_finetune_run(self, run_id: str, *, subset_id: str | None,
                           snapshot_id: int | None, base_model: str, params: dict[str, Any],
                           output_dir: str) -> None:
        with self.store.write() as con:
            con.execute(
                "INSERT OR REPLACE INTO finetune_runs (run_id, subset_id, snapshot_id, "
                "base_model, params, output_dir, status, started_at) "
                "VALUES (?, ?, ?, ?, ?, ?, 'running', ?)",
                [run_id, subset_id, snapshot_id, base_model, to_json(params), output_dir, now()],
            )

    def finish_finetune_run(self, run_id: str, *, status: str,
                            loss_curve: list[dict[str, Any]] | None = None,
                            metrics: dict[str, Any] | None = None,
                            train_seconds: float | None = None, train_tokens: int | None = None,
                            tokens_per_s: float | None = None, device: str | None = None) -> None:
        with self.store.write() as con:
            con.execute(
                "UPDATE finetune_runs SET status = ?, loss_curve = coalesce(?, loss_curve), "
                "metrics = coalesce(?, metrics), train_seconds = coalesce(?, train_seconds), "
                "train_tokens = coalesce(?, train_tokens), "
                "tokens_per_s = coalesce(?, tokens_per_s), "
                "device = coalesce(?, device), finished_at = ? WHERE run_id = ?",
                [status, None if loss_curve is None else to_json(loss_curve),
                 None if metrics is None else to_json(metrics), train_seconds, train_tokens,
                 tokens_per_s, device, now(), run_id],
            )

    def update_finetune_metrics(self, run_id: str, metrics: dict[str, Any]) -> None:
        """Merge `metrics` into the run's metrics JSON (the evaluation summary lands later)."""
        st = self.store
        with st.write() as con:
            row = con.execute("SELECT metrics FROM finetune_runs WHERE run_id = ?",
                              [run_id]).fetchone()
            if row is None:
                raise KeyError(f"finetune run {run_id!r} not found")
            merged = {**json.loads(row[0] or "{}"), **metrics}
            con.execute("UPDATE finetune_runs SET metrics = ? WHERE run_id = ?",
                        [to_json(merged), run_id])

    def get_finetune_run(self, run_id: str) -> dict[str, Any] | None:
        with self.store.connect() as con:
            cur = con.execute("SELECT * FROM finetune_runs WHERE run_id = ?", [run_id])
            row = cur.fetchone()
            if row is None:
                return None
            out = dict(zip([d[0] for d in cur.description], row, strict=True))
        for key in ("params", "loss_curve", "metrics"):
            out[key] = json.loads(out[key]) if out[key] else None
        return out

    def finetune_run_for_output(self, output_dir: str) -> str | None:
        """The run that wrote a model directory, so `evaluate --model DIR` links its row."""
        with self.store.connect() as con:
            row = con.execute(
                "SELECT run_id FROM finetune_runs WHERE output_dir = ? "
                "ORDER BY started_at DESC LIMIT 1", [output_dir]).fetchone()
        return row[0] if row else None

    def save_evaluation(self, result: Any, *, model_ref: str, params: dict[str, Any],
                        finetune_run_id: str | None = None) -> str:
        """Insert one evaluation (a tasks.experiments.evaluate.EvalResult); returns its id."""
        created = now()
        eval_id = stable_hash("eval", model_ref, result.eval_set, result.n, params,
                              created.isoformat())
        with self.store.write() as con:
            con.execute(
                "INSERT INTO evaluations (eval_id, finetune_run_id, model_ref, eval_set, n, "
                "accuracy, exec_error_rate, no_program_rate, failures, params, seconds, "
                "created_at, abstention_score, abstained, unanswerable, abstention_precision, "
                "abstention_recall) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [eval_id, finetune_run_id, model_ref, result.eval_set, result.n,
                 result.accuracy, result.exec_error_rate, result.no_program_rate,
                 to_json(result.failures), to_json(params), result.seconds, created,
                 result.abstention_score, result.abstained, result.unanswerable,
                 result.abstention_precision, result.abstention_recall],
            )
            if result.right:
                insert_arrow(con, "evaluation_items", pa.table({
                    "position": pa.array(range(len(result.right)), pa.int32()),
                    "question_id": result.question_ids, "correct": result.right,
                    "status": result.statuses}), eval_id=eval_id)
        return eval_id

    def results(self, experiment_id: str) -> list[dict[str, Any]]:
        """Every evaluation of an experiment (its runs' and its base model's), one row each
        with the run's curve, group, seed and size: what its tables are built from."""
        with self.store.connect() as con:
            cur = con.execute("""
                SELECT e.eval_id, e.eval_set, e.n, e.accuracy, e.exec_error_rate,
                       e.no_program_rate, e.abstained, e.unanswerable,
                       e.abstention_precision, e.abstention_recall, e.seconds,
                       CAST(e.params ->> 'questions_per_s' AS DOUBLE) AS questions_per_s,
                       f.run_id, coalesce(f.params ->> 'curve', 'base') AS curve,
                       coalesce(f.params ->> 'group', 'base@0') AS group_id,
                       CAST(f.params ->> 'train_seed' AS INTEGER) AS seed,
                       f.params ->> 'arm' AS arm,
                       coalesce(CAST(f.params ->> 'size' AS INTEGER),
                                CAST(e.params ->> 'size' AS INTEGER), 0) AS examples,
                       f.train_seconds, f.output_dir
                FROM evaluations e LEFT JOIN finetune_runs f ON f.run_id = e.finetune_run_id
                WHERE coalesce(f.params ->> 'experiment_id', e.params ->> 'experiment_id') = ?
                ORDER BY e.created_at""", [experiment_id])
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    def outcomes(self, eval_ids: list[str]) -> dict[str, list[bool]]:
        """Per-question outcomes (in eval-set order) of each evaluation: what an interval
        or a paired difference is computed from."""
        with self.store.connect() as con:
            rows = con.execute(
                "SELECT eval_id, list(correct ORDER BY position) FROM evaluation_items "
                "WHERE list_contains(?, eval_id) GROUP BY eval_id", [eval_ids]).fetchall()
        return {eval_id: list(correct) for eval_id, correct in rows}

    def evaluations_for_run(self, run_id: str) -> list[dict[str, Any]]:
        with self.store.connect() as con:
            cur = con.execute(
                "SELECT eval_id, model_ref, eval_set, n, accuracy, exec_error_rate, "
                "no_program_rate, seconds, created_at FROM evaluations "
                "WHERE finetune_run_id = ? ORDER BY created_at", [run_id])
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
