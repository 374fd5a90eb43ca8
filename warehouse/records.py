"""The record kinds a stage may hand the warehouse (`StageResult.records`), each declared
once with its writer. `Store.save_stage` writes the kinds present in this order, in one
transaction with the stage's rejections; a kind not declared here is refused before
anything is written, so a misspelt kind fails loudly instead of vanishing."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from tasks.types import Question, Sample

from .llm import insert_judgments, insert_selections
from .preferences import insert_pairs, replace_solution_sets
from .rows import arrow_rows, attr_columns, insert_arrow, insert_validation, to_json

#: (connection inside the stage's transaction, run_id, the batch of one kind)
Writer = Callable[[Any, str, Any], None]


class UnknownRecordKind(ValueError):
    """A stage returned records of a kind no writer is declared for."""


_SAMPLE_COLUMNS = {
    **attr_columns("sample_id", "question_id", "teacher", "model", "prompt_version"),
    "sample_idx": (lambda s: s.sample_idx, pa.int32()),
    "gen_params": (lambda s: to_json(s.gen_params), None),
    **attr_columns("raw", "program", "exec_status", "exec_error", "predicted", "correct",
                   "tokens_in", "tokens_out", "cost_usd", "latency_ms",
                   raw=pa.string(), program=pa.string(), exec_status=pa.string(),
                   exec_error=pa.string(), predicted=pa.string(), correct=pa.bool_(),
                   tokens_in=pa.int32(), tokens_out=pa.int32(), cost_usd=pa.float64(),
                   latency_ms=pa.float64()),
    "meta": (lambda s: to_json(s.meta) if s.meta else None, pa.string()),
}

_QUESTION_COLUMNS = {
    **attr_columns("question_id", "text"),
    "context": (lambda q: q.context or "", None),
    **attr_columns("source", "source_id", "gold_answer", "gold_program", "difficulty",
                   source_id=pa.string(), gold_answer=pa.string(), gold_program=pa.string(),
                   difficulty=pa.int32()),
    "meta": (lambda q: to_json(q.meta), None),
    "text_key": (lambda q: q.text_key, None),
    "context_key": (lambda q: q.context_key, None),
}


def insert_questions(con: Any, run_id: str, questions: Sequence[Question]) -> None:
    insert_arrow(con, "questions", arrow_rows(questions, _QUESTION_COLUMNS), run_id=run_id)


def insert_samples(con: Any, run_id: str, samples: Sequence[Sample]) -> None:
    insert_arrow(con, "samples", arrow_rows(samples, _SAMPLE_COLUMNS), run_id=run_id)


def insert_dedup(con: Any, run_id: str, rows: Sequence[tuple[str, str, float, str]]) -> None:
    """Dedup records are (item_id, representative_id, similarity, method)."""
    insert_arrow(con, "dedup", pa.table({
        "item_id": [r[0] for r in rows],
        "representative_id": [r[1] for r in rows],
        "similarity": pa.array([float(r[2]) for r in rows], type=pa.float64()),
        "method": [r[3] for r in rows],
    }), run_id=run_id)


def insert_embeddings(con: Any, vectors: Mapping[str, np.ndarray], model: str) -> None:
    keys = list(vectors)
    insert_arrow(con, "embeddings", pa.table({
        "item_id": keys,
        "vector": pa.array([np.asarray(vectors[k], dtype=np.float32) for k in keys],
                           type=pa.list_(pa.float32())),
    }), model=model)


def _embedding_records(con: Any, run_id: str, rows: Iterable[tuple[str, str, Any]]) -> None:
    """Embedding records are (text_key, model, vector)."""
    by_model: dict[str, dict[str, np.ndarray]] = {}
    for key, model, vector in rows:
        by_model.setdefault(model, {})[key] = vector
    for model, vectors in by_model.items():
        insert_embeddings(con, vectors, model)


def _judgment_records(con: Any, run_id: str, rows: Iterable[tuple[Any, ...]]) -> None:
    """Judgment records are (question_id, solvable, reason, model)."""
    by_model: dict[str, list[tuple[str, bool | None, str]]] = {}
    for qid, solvable, reason, model in rows:
        by_model.setdefault(model, []).append((qid, solvable, reason))
    for model, verdicts in by_model.items():
        insert_judgments(con, run_id, model, verdicts)


def _validation_records(con: Any, run_id: str, rows: Iterable[tuple[Any, ...]]) -> None:
    """Validation records are (suite, success, statistics, results)."""
    for suite, success, statistics, results in rows:
        insert_validation(con, run_id, suite, success, statistics, results)


#: kind -> writer, in the order `save_stage` writes them. "solution_set_questions" (the
#: questions whose solution sets are replaced) comes before "solution_sets" (the new rows).
RECORD_WRITERS: dict[str, Writer] = {
    "questions": insert_questions,
    "embeddings": _embedding_records,
    "dedup": insert_dedup,
    "unparsed": insert_samples,   # LLM answers without a program, stored with their raw text
    "samples": insert_samples,
    "selections": insert_selections,
    "judgments": _judgment_records,
    "validation": _validation_records,
    "solution_set_questions": lambda con, run_id, ids: replace_solution_sets(
        con, run_id, ids, ()),
    "solution_sets": lambda con, run_id, rows: replace_solution_sets(con, run_id, (), rows),
    "preference_pairs": insert_pairs,
}


def check_kinds(records: Mapping[str, Any]) -> None:
    """Raise UnknownRecordKind, naming the kind, for a kind without a writer."""
    unknown = sorted(set(records) - set(RECORD_WRITERS))
    if unknown:
        raise UnknownRecordKind(
            f"unknown record kind {', '.join(map(repr, unknown))} in a StageResult; known "
            f"kinds: {', '.join(RECORD_WRITERS)} (declare a new one with its writer in "
            "warehouse/records.py)")


def write_records(con: Any, run_id: str, records: Mapping[str, Any]) -> None:
    """Every batch of `records` through its kind's writer (kinds checked first)."""
    check_kinds(records)
    for kind, writer in RECORD_WRITERS.items():
        if kind in records:
            writer(con, run_id, records[kind])
