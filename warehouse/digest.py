"""Content digests of the tables a refresh writes, for comparing two warehouses (code before
and after a change, one shard against sixteen, threads against Dask): equal digests, equal
rows. Run-specific columns (run ids, timestamps) are left out; so are columns an older
schema lacks (questions.context_key)."""

from __future__ import annotations

import os

import duckdb

# table -> the columns compared (each row as JSON; the digest is order-independent).
DIGEST_COLUMNS: dict[str, tuple[str, ...]] = {
    "questions": ("question_id", "text", "context", "source", "source_id", "gold_answer",
                  "gold_program", "difficulty", "meta", "text_key"),
    "dedup": ("item_id", "representative_id", "similarity", "method"),
    "rejections": ("item_id", "stage", "reason", "detail"),
    "samples": ("sample_id", "question_id", "teacher", "model", "prompt_version",
                "sample_idx", "gen_params", "raw", "program", "exec_status", "exec_error",
                "predicted", "correct", "tokens_in", "tokens_out", "cost_usd", "meta"),
    "snapshot_items": ("snapshot_id", "question_id", "sample_id"),
    "snapshots": ("snapshot_id", "n_items", "content_hash"),
    "embeddings": ("item_id", "model", "vector"),
    "validations": ("suite", "success", "statistics", "results"),
}


def table_digests(path: str | os.PathLike[str],
                  tables: tuple[str, ...] = tuple(DIGEST_COLUMNS)) -> dict[str, str]:
    """{table: "rows:md5-sum"}: a row count and the sums of each row's 128-bit MD5 (of its
    JSON), so neither row order nor storage order matters and a repeated row counts."""
    out = {}
    # Read-only and unmigrated: a warehouse of older code is compared as it is.
    with duckdb.connect(str(path), read_only=True) as con:
        for table in tables:
            cols = ", ".join(f"'{c}': {c}" for c in DIGEST_COLUMNS[table])
            n, upper, lower = con.execute(
                f"SELECT count(*), sum(md5_number_upper(j)), sum(md5_number_lower(j)) "
                f"FROM (SELECT CAST(to_json({{{cols}}}) AS VARCHAR) AS j FROM {table})"
            ).fetchone()
            out[table] = f"{n}:{(upper or 0):x}{(lower or 0):x}"
    return out
