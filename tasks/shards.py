"""Shards: the loaded batch cut by context and staged as Parquet files, so that a refresh
holds one shard of questions at a time, never all of them.

The shard of a question is a hash of its normalized context (`Question.context_key`)
modulo the shard count. Exact duplicates share their context (question_id hashes text and
context) and a semantic-dedup block is (context, numbers), so every group dedup compares
lies inside one shard; a shard keeps its items in input order. A shard therefore sees the
same groups, in the same order, as the whole batch would, and every per-question stage
after dedup decides one question at a time: the output does not depend on the shard count
(tests/test_shards.py).

Ids are computed once, here, and travel in the files (`question_id`, `text_key`,
`context_key` columns) into the records read back.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.types import Question

SHARD_SIZE = 50_000  # questions per shard when the count is not set
LOAD_BATCH = 10_000  # questions per batch while staging: a Question holds its table

_SCHEMA = pa.schema([
    ("question_id", pa.string()), ("text_key", pa.string()), ("context_key", pa.string()),
    ("text", pa.string()), ("source", pa.string()), ("context", pa.string()),
    ("gold_answer", pa.string()), ("gold_program", pa.string()), ("difficulty", pa.int32()),
    ("source_id", pa.string()), ("meta", pa.string()),
])
_KEYS = ("question_id", "text_key", "context_key")


def shard_count(n: int, shards: int | None = None) -> int:
    """`shards` if set, else one per SHARD_SIZE questions (at least one)."""
    return shards or max(1, -(-n // SHARD_SIZE))


def shard_of(context_key: str, shards: int) -> int:
    return int(context_key[:8], 16) % shards


@dataclass(frozen=True)
class Shard:
    """One staged shard: where its questions are and how many."""

    index: int
    path: str
    count: int

    def read(self) -> list[Question]:
        """The shard's questions in input order, their ids already set."""
        cols = pq.read_table(self.path).to_pydict()
        out = []
        for row in zip(*(cols[name] for name in _SCHEMA.names), strict=True):
            rec = dict(zip(_SCHEMA.names, row, strict=True))
            q = Question(text=rec["text"], source=rec["source"], context=rec["context"],
                         gold_answer=rec["gold_answer"], gold_program=rec["gold_program"],
                         difficulty=rec["difficulty"], source_id=rec["source_id"],
                         meta=orjson.loads(rec["meta"]))
            q.__dict__.update({k: rec[k] for k in _KEYS})  # the cached ids, not recomputed
            out.append(q)
        return out


@dataclass
class Staged:
    """A loaded batch, staged: its shards, how many questions it had, and one question per
    distinct text (what the embed stage works on)."""

    shards: list[Shard]
    count: int = 0
    texts: list[Question] = field(default_factory=list)


def _meta_json(meta: dict) -> str:
    # orjson: a procedural question's meta carries its table, and json.dumps of a million
    # of them is minutes of CPU. Floats round-trip exactly either way.
    # orjson writes NaN as null and refuses ints beyond 64 bits: whatever does not read back
    # equal (also tuples, which read back as lists) takes the json path, as before.
    try:
        out = orjson.dumps(meta, default=str)
        if orjson.loads(out) == meta:
            return out.decode()
    except TypeError:
        pass
    return json.dumps(meta, ensure_ascii=False, default=str)


def _rows(questions: list[Question]) -> pa.Table:
    columns: dict[str, list] = {name: [getattr(q, name) for q in questions]
                                for name in _SCHEMA.names if name != "meta"}
    # Key order kept (no sort_keys): a stage reading meta sees it as the source made it
    # (the noisy teacher draws from the table's rows in their order).
    columns["meta"] = [_meta_json(q.meta) for q in questions]
    return pa.table(columns, schema=_SCHEMA)


def stage_questions(batches: Iterable[list[Question]], directory: str | Path,
                    shards: int) -> Staged:
    """Write the batches' questions to `shards` Parquet files in `directory`, in input
    order within each shard. The distinct texts are kept in order of first occurrence,
    each with the text of its last occurrence: the list the embed stage of a whole batch
    saw (same batches for the encoder, hence the same vectors)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"shard-{k:05d}.parquet" for k in range(shards)]
    writers: dict[int, pq.ParquetWriter] = {}
    counts = [0] * shards
    texts: dict[str, str] = {}
    total = 0
    try:
        for batch in batches:
            total += len(batch)
            parts: dict[int, list[Question]] = {}
            for q in batch:
                texts[q.text_key] = q.text
                parts.setdefault(shard_of(q.context_key, shards), []).append(q)
            for k, part in parts.items():
                if k not in writers:
                    writers[k] = pq.ParquetWriter(paths[k], _SCHEMA)
                writers[k].write_table(_rows(part))
                counts[k] += len(part)
    finally:
        for writer in writers.values():
            writer.close()
    staged = Staged([Shard(k, str(paths[k]), counts[k]) for k in range(shards) if counts[k]],
                    count=total)
    for key, text in texts.items():
        q = Question(text=text, source="")
        q.__dict__["text_key"] = key
        staged.texts.append(q)
    return staged


@contextmanager
def staging_area(root: str | Path, run_id: str) -> Iterator[Path]:
    """A run's staging folder (`root/<run_id>`), removed when the run ends however it
    ends: staged shards are a working copy of the input, never a record."""
    path = Path(root).expanduser().resolve() / run_id
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
