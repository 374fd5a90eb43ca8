"""The refresh flow: source -> dedup -> teacher -> execute + check -> select -> validate ->
publish. Only the order of stages, batching and reporting live here; the work is in tasks/,
the SQL in warehouse/, the suites in quality/."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from contextlib import contextmanager
from typing import Any, Literal

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from pydantic import BaseModel, ConfigDict, Field

from quality.validate import validate_candidates
from tasks import dedup as dedup_mod
from tasks.checks import check_samples, select_samples
from tasks.embed import DEFAULT_MODEL, embed_texts
from tasks.execute import execute_programs
from tasks.sources import load_questions
from tasks.teachers.reference import reference_samples
from tasks.types import Question, Rejection, Sample, text_key
from warehouse import Store


class RefreshConfig(BaseModel):
    """Parameters of one refresh. The Prefect UI renders this as the run form."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field("procedural", description="procedural | gsm8k:PATH | tatqa:PATH | "
                        "jsonl:PATH | hf:NAME[:SPLIT]")
    n: int | None = Field(1000, ge=1, description="items to draw (file sources: the first n)")
    seed: int = Field(0, description="seed of the procedural generator")
    teacher: Literal["reference"] = "reference"
    embedding_model: str = DEFAULT_MODEL
    semantic_threshold: float = Field(0.95, ge=0.5, le=1.0)
    numbers_must_match: bool = Field(True, description="semantic duplicates must mention "
                                     "the same numbers")
    batch_size: int = Field(512, ge=1, le=100_000)
    exec_timeout_s: float = Field(2.0, gt=0, le=60)
    exec_memory_mb: int = Field(512, ge=64, le=16_384)
    exec_workers: int | None = Field(None, ge=1, le=256)
    max_rejected_fraction: float = Field(0.2, ge=0, le=1,
                                         description="quality gate: at most this share "
                                         "of a batch may fail row-level expectations")
    warehouse: str | None = Field(None, description="DuckDB file; default "
                                  "$DISTILLERY_WAREHOUSE or data/warehouse.duckdb")
    progress: bool = Field(False, description="progress bars on the terminal")


def _batches(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


@task(cache_policy=NO_CACHE, name="load-questions")
def load_task(source: str, n: int | None, seed: int) -> list[Question]:
    return load_questions(source, n=n, seed=seed)


@task(cache_policy=NO_CACHE, name="embed-batch")
def embed_task(texts: list[str], model: str, progress: bool) -> Any:
    return embed_texts(texts, model, show_progress=progress)


@task(cache_policy=NO_CACHE, name="semantic-dedup")
def semantic_dedup_task(new: list[Question], vectors: Any, store: Store, model: str,
                        threshold: float, numbers_must_match: bool
                        ) -> list[tuple[str, str, float]]:
    ids, texts, contexts, known_vecs = store.representatives(model)
    known = [dedup_mod.DedupItem(i, t, c) for i, t, c in zip(ids, texts, contexts, strict=True)]
    items = [dedup_mod.DedupItem(q.question_id, q.text, q.context) for q in new]
    return dedup_mod.semantic_dedup(items, vectors, known, known_vecs, threshold=threshold,
                                    numbers_must_match=numbers_must_match)


@task(cache_policy=NO_CACHE, name="reference-teacher")
def teacher_task(questions: list[Question]) -> tuple[list[Sample], list[Rejection]]:
    return reference_samples(questions)


@task(cache_policy=NO_CACHE, name="execute-batch")
def execute_task(programs: list[str], timeout_s: float, memory_mb: int,
                 workers: int | None) -> list[Any]:
    return execute_programs(programs, timeout_s=timeout_s, memory_mb=memory_mb,
                            workers=workers)


@task(cache_policy=NO_CACHE, name="validate-candidates")
def validate_task(rows: Any, max_rejected_fraction: float) -> Any:
    return validate_candidates(rows, max_rejected_fraction=max_rejected_fraction)


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):  # noqa: ANN201
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - t0, 3)


@flow(name="refresh", log_prints=True)
def refresh(config: RefreshConfig | None = None) -> dict[str, Any]:
    """Bring new questions from a source into the warehouse as verified, deduplicated,
    validated examples, and publish them as a new snapshot."""
    config = config or RefreshConfig()
    store = Store(config.warehouse)
    timer = _Timer()
    counts: Counter[str] = Counter()

    # Load first: malformed input fails here, before anything is written.
    with timer.stage("load"):
        loaded = load_task(config.source, config.n, config.seed)
    run_id = str(flow_run.id or uuid.uuid4())
    store.start_run(run_id, "refresh", config.model_dump())
    counts["input"] = len(loaded)
    try:
        result = _refresh_body(config, store, run_id, loaded, timer, counts)
    except BaseException:
        store.finish_run(run_id, "failed", dict(counts), timer.seconds)
        raise
    return result


def _refresh_body(config: RefreshConfig, store: Store, run_id: str, loaded: list[Question],
                  timer: _Timer, counts: Counter[str]) -> dict[str, Any]:
    model = config.embedding_model
    with timer.stage("dedup"):
        unique, exact_rejections = dedup_mod.exact_dedup(loaded)
        counts["exact_duplicate"] = len(exact_rejections)
        states = store.question_states([q.question_id for q in unique])
        new = [q for q in unique if q.question_id not in states]
        pending_ids = [q.question_id for q in unique if states.get(q.question_id) == "pending"]
        counts["already_done"] = sum(1 for s in states.values() if s == "done")
        counts["resumed"] = len(pending_ids)
        counts["new"] = len(new)

        # Embeddings are keyed by normalized text and model: never computed twice.
        keys = [text_key(q.text) for q in new]
        cached = store.load_embeddings(keys, model)
        missing: dict[str, str] = {}
        for q, k in zip(new, keys, strict=True):
            if k not in cached:
                missing.setdefault(k, q.text)
        with timer.stage("embed"):
            miss_keys = list(missing)
            futures = [embed_task.submit([missing[k] for k in chunk], model, config.progress)
                       for chunk in _batches(miss_keys, config.batch_size)]
            fresh: dict = {}
            for chunk, fut in zip(_batches(miss_keys, config.batch_size), futures, strict=True):
                fresh.update(zip(chunk, fut.result(), strict=True))
        counts["embedded"] = len(fresh)
        vectors_by_key = {**cached, **fresh}
        import numpy as np

        vectors = (np.stack([vectors_by_key[k] for k in keys]) if new
                   else np.zeros((0, 0), dtype=np.float32))
        dedup_rows = semantic_dedup_task(new, vectors, store, model, config.semantic_threshold,
                                         config.numbers_must_match) if new else []
        sem_rejections = [
            Rejection(item_id=item, stage="dedup", reason="semantic_duplicate",
                      detail=f"cosine {sim:.4f} with {rep}")
            for item, rep, sim in dedup_rows if item != rep
        ]
        counts["semantic_duplicate"] = len(sem_rejections)
        store.save_dedup_stage(
            run_id, new, fresh, model,
            [(i, r, s, "semantic" if i != r else "representative") for i, r, s in dedup_rows],
            exact_rejections + sem_rejections)

    # Only representatives (and items an interrupted run left undecided) reach the teacher.
    dup_ids = {r.item_id for r in sem_rejections}
    to_solve = [q for q in new if q.question_id not in dup_ids]
    to_solve += store.load_questions(pending_ids)
    with timer.stage("teacher"):
        samples, teacher_rejections = teacher_task(to_solve) if to_solve else ([], [])
    counts["teacher_rejected"] = len(teacher_rejections)

    with timer.stage("execute"):
        programs = [s.program or "" for s in samples]
        futures = [execute_task.submit(chunk, config.exec_timeout_s, config.exec_memory_mb,
                                       config.exec_workers)
                   for chunk in _batches(programs, max(config.batch_size, 1000))]
        results = [r for fut in futures for r in fut.result()]
    with timer.stage("check"):
        by_id = {q.question_id: q for q in to_solve}
        check_rejections = check_samples(samples, results, by_id)
        for r in check_rejections:
            counts[r.reason] += 1
        store.save_samples(run_id, samples, teacher_rejections + check_rejections)
        chosen = select_samples(samples)

    snapshot_id = None
    gate_ok = True
    with timer.stage("quality"):
        if chosen:
            import pandas as pd

            rows = pd.DataFrame([{
                "question_id": s.question_id, "question": by_id[s.question_id].text,
                "context": by_id[s.question_id].context, "program": s.program,
                "answer": s.predicted} for s in chosen])
            outcome = validate_task(rows, config.max_rejected_fraction)
            store.save_validation(run_id, "curated_batch", outcome.success, outcome.statistics,
                                  outcome.results, outcome.rejections)
            counts["quality_rejected"] = len(outcome.rejections)
            gate_ok = outcome.success
            kept_ids = set(outcome.kept_ids)
            chosen = [s for s in chosen if s.question_id in kept_ids]
    with timer.stage("publish"):
        if chosen and gate_ok:
            snapshot_id = store.publish_snapshot(run_id, {s.question_id: s.sample_id
                                                          for s in chosen})
    counts["kept"] = len(chosen) if gate_ok else 0
    counts["rejected"] = (counts["semantic_duplicate"] + counts["teacher_rejected"]
                          + len(check_rejections) + counts["quality_rejected"])
    status = "completed" if gate_ok else "gate_failed"
    store.finish_run(run_id, status, dict(counts), timer.seconds, snapshot_id)

    reasons = store.rejection_reasons(run_id)
    summary = {"run_id": run_id, "status": status, "snapshot_id": snapshot_id,
               "counts": dict(counts), "stage_seconds": dict(timer.seconds),
               "rejection_reasons": [{"stage": s, "reason": r, "count": n}
                                     for s, r, n in reasons],
               "warehouse": str(store.path)}
    _publish_artifacts(summary)
    return summary


def _publish_artifacts(summary: dict[str, Any]) -> None:
    c = summary["counts"]
    lines = [
        f"# Refresh {summary['status']}",
        "",
        f"Warehouse `{summary['warehouse']}`, snapshot **{summary['snapshot_id']}**.",
        "",
        "| stage | count |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in c.items()],
        "",
        "| stage | seconds |", "|---|---|",
        *[f"| {k} | {v:.2f} |" for k, v in summary["stage_seconds"].items()],
    ]
    create_markdown_artifact(markdown="\n".join(lines), key="refresh-summary",
                             description="Counts by stage and seconds per stage")
    if summary["rejection_reasons"]:
        create_table_artifact(table=summary["rejection_reasons"], key="refresh-rejections",
                              description="Rejections of this run by stage and reason")
