"""The refresh flow: source -> dedup -> teacher -> execute + check -> select -> validate ->
publish. Only the order of stages, batching and reporting live here; the work is in tasks/,
the SQL in warehouse/, the suites in quality/."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

from prefect import flow, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from prefect.tasks import Task
from prefect.utilities.annotations import quote
from prefect.utilities.callables import get_call_parameters
from pydantic import BaseModel, ConfigDict, Field

from quality.validate import validate_candidates
from tasks import dedup as dedup_mod
from tasks.checks import check_samples, select_multi, select_samples
from tasks.decontaminate import Benchmark, contamination_rejections
from tasks.embed import DEFAULT_MODEL, embed_texts, embed_with_cache
from tasks.errors import InputError
from tasks.execute import execute_programs
from tasks.sources import load_questions
from tasks.sources.synth import SynthContext, judge_questions
from tasks.teachers.llm import GenerationStats, LLMTeacherConfig, TeacherOutput, llm_samples
from tasks.teachers.reference import reference_samples
from tasks.types import Question, Rejection, Sample, text_key
from warehouse import Store
from warehouse.llm import LLMStore
from warehouse.refresh_lock import refresh_lock


class RefreshConfig(BaseModel):
    """Parameters of one refresh. The Prefect UI renders this as the run form."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field("procedural", description="procedural | gsm8k:PATH | tatqa:PATH | "
                        "jsonl:PATH | hf:NAME[:SPLIT]")
    n: int | None = Field(None, ge=1, description="items to draw; empty: all of a file "
                          "source, 1000 from the procedural generator")
    seed: int = Field(0, description="seed of the procedural generator")
    teacher: Literal["reference", "openai"] = "reference"
    # LLM teacher (teacher="openai"). The API key is never a parameter: parameters are
    # stored with the run; only the name of the env var or Prefect Secret block is.
    model: str = Field("gpt-4o-mini", description="LLM teacher model")
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint; default "
                                 "$OPENAI_BASE_URL, else api.openai.com")
    api_key_env: str = Field("OPENAI_API_KEY", description="env var that holds the API key")
    api_key_secret: str | None = Field(None, description="Prefect Secret block holding the "
                                       "API key (wins over api_key_env)")
    samples: int = Field(1, ge=1, le=64, description="LLM samples per question")
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=16, le=65_536, description="generation bound "
                                   "per sample; empty: 512 for pot, 1024 for cot")
    format: Literal["pot", "cot"] = Field("pot", description="pot: a program; cot: worked "
                                          "text ending in a final answer")
    prompt_version: str | None = Field(None, description="tasks/prompts/<version>.txt; "
                                       "default <format>_v1")
    max_concurrency: int = Field(64, ge=1, le=4096, description="LLM requests in flight")
    rpm: int | None = Field(None, ge=1, description="client-side requests/minute cap")
    tpm: int | None = Field(None, ge=1, description="client-side tokens/minute cap")
    request_timeout_s: float = Field(120.0, gt=0, le=3600)
    max_retries: int = Field(6, ge=0, le=100)
    backoff_base_s: float = Field(0.5, ge=0, le=60, description="first retry waits about "
                                  "this long, doubling each time (with jitter)")
    backoff_max_s: float = Field(30.0, ge=0, le=600)
    batch: bool = Field(False, description="OpenAI Batch API (half price, hours)")
    batch_poll_s: float = Field(30.0, gt=0, le=3600, description="Batch API status poll")
    keep_per_question: int = Field(1, ge=1, le=64, description="correct samples kept")
    min_agreement: float = Field(0.5, ge=0, le=1, description="majority share needed "
                                 "when there is no gold answer")
    judge: bool = Field(False, description="LLM solvability judge on synthesized questions")
    seed_source: str | None = Field(None, description="seed questions of synth:fewshot / "
                                    "synth:evolve")
    price_in_per_mtok: float | None = Field(None, ge=0, description="USD per 1M input "
                                            "tokens (overrides the price table)")
    price_out_per_mtok: float | None = Field(None, ge=0)
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
    decontaminate: list[str] = Field(
        default_factory=list, description="benchmark test sets (source specs, e.g. "
        "gsm8k:../shared/data/gsm8k/test.jsonl) whose questions must not be trained on")
    decontam_ngram: int = Field(13, ge=3, le=50, description="word n-gram length of the "
                                "overlap check")
    decontam_threshold: float = Field(0.9, ge=0.5, le=1.0, description="cosine at which a "
                                      "question over the same context is a benchmark "
                                      "paraphrase")
    task_runner: Literal["threads", "dask"] = Field(
        "threads", description="threads: batches run in this process; dask: embedding and "
        "execution batches run on Dask workers (the flow process alone writes the warehouse)")
    dask_address: str | None = Field(None, description="scheduler of an existing Dask "
                                     "cluster, e.g. tcp://scheduler:8786; empty: a "
                                     "LocalCluster started for this run")
    dask_workers: int = Field(2, ge=1, le=256, description="LocalCluster worker processes")


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


@task(cache_policy=NO_CACHE, name="decontaminate")
def decontaminate_task(questions: list[Question], config: RefreshConfig, warehouse: str
                       ) -> tuple[list[Question], list[Rejection]]:
    store = Store(warehouse)
    model = config.embedding_model
    q_vectors = embed_with_cache(store, [q.text for q in questions], model)
    benchmarks = []
    for spec in config.decontaminate:
        bench_qs = load_questions(spec)
        benchmarks.append((Benchmark(spec, bench_qs),
                           embed_with_cache(store, [q.text for q in bench_qs], model)))
    rejections = contamination_rejections(questions, q_vectors, benchmarks,
                                          n=config.decontam_ngram,
                                          threshold=config.decontam_threshold)
    flagged = {r.item_id for r in rejections}
    return [q for q in questions if q.question_id not in flagged], rejections


@task(cache_policy=NO_CACHE, name="reference-teacher")
def teacher_task(questions: list[Question]) -> tuple[list[Sample], list[Rejection]]:
    return reference_samples(questions)


def llm_config(config: RefreshConfig) -> LLMTeacherConfig:
    """The LLM teacher's part of the run parameters."""
    fields = set(LLMTeacherConfig.model_fields) & set(RefreshConfig.model_fields)
    return LLMTeacherConfig(**{k: getattr(config, k) for k in fields})


@task(cache_policy=NO_CACHE, name="llm-teacher")
def llm_teacher_task(questions: list[Question], cfg: LLMTeacherConfig, warehouse: str,
                     run_id: str, progress: bool) -> TeacherOutput:
    send = None
    if cfg.batch:
        from tasks.llm.batch import batch_sender

        send = batch_sender(cfg, LLMStore(warehouse), run_id=run_id, progress=progress)
    return llm_samples(questions, cfg, LLMStore(warehouse), run_id=run_id, progress=progress,
                       send=send)


@task(cache_policy=NO_CACHE, name="synthesize")
def synth_task(config: RefreshConfig, warehouse: str, run_id: str
               ) -> tuple[list[Question], list[Rejection], GenerationStats]:
    if config.teacher != "openai":
        raise InputError(f"--source {config.source}: synthesis needs --teacher openai")
    ctx = SynthContext(llm_config(config), LLMStore(warehouse), run_id, config.seed_source,
                       config.progress)
    questions = load_questions(config.source, n=config.n, seed=config.seed, synth=ctx)
    return questions, ctx.rejections, ctx.stats


@task(cache_policy=NO_CACHE, name="solvability-judge")
def judge_task(questions: list[Question], cfg: LLMTeacherConfig, warehouse: str, run_id: str,
               progress: bool) -> tuple[list[Question], list[Rejection], GenerationStats]:
    stats = GenerationStats()
    kept, rejections, verdicts = judge_questions(questions, cfg, LLMStore(warehouse),
                                                 run_id=run_id, stats=stats,
                                                 progress=progress)
    LLMStore(warehouse).save_judgments(run_id, cfg.model, verdicts)
    return kept, rejections, stats


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


# Large batches go to tasks wrapped in `quote`: Prefect otherwise walks every element of a
# parameter looking for futures, which cost seconds per 10k questions.
Submit = Callable[..., PrefectFuture[Any]]


@contextmanager
def _batch_runner(config: RefreshConfig) -> Iterator[Submit]:
    """Where the batch tasks run, chosen per run so that a deployment parameter (not only a
    CLI flag) can move a scheduled refresh onto Dask. Everything submitted is plain data
    (lists of str, numbers): it pickles to any worker."""
    if config.task_runner == "threads":
        yield lambda task, *args: task.submit(*args)
        return
    from prefect_dask import DaskTaskRunner

    if config.dask_address:
        runner = DaskTaskRunner(address=config.dask_address)
    else:
        # Processes, one thread each: torch and the sandbox pool already use a core per worker,
        # and a random dashboard port lets two local refreshes coexist.
        runner = DaskTaskRunner(cluster_kwargs={
            "n_workers": config.dask_workers, "processes": True, "threads_per_worker": 1,
            "dashboard_address": ":0"})
    with _shared_api_url(), runner:
        def submit(task: Task[..., Any], *args: Any) -> PrefectFuture[Any]:
            # Parameters travel to the workers as they are: unwrap `quote` here, the Dask
            # path does not introspect them anyway.
            plain = [a.unwrap() if isinstance(a, quote) else a for a in args]
            return runner.submit(task, parameters=get_call_parameters(task.fn, plain, {}))

        yield submit


@contextmanager
def _shared_api_url() -> Iterator[None]:
    """Workers inherit this process's settings. Without a server (ephemeral mode) those name
    no API, so each worker would start a Prefect server of its own; pin them to ours."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value():
        yield
        return
    with get_client(sync_client=True) as client:
        url = str(client.api_url).rstrip("/")
    with temporary_settings({PREFECT_API_URL: url}):
        yield


class _StageProgress:
    """A progress artifact for one long stage, so the UI shows how far a run is."""

    def __init__(self, stage: str, total: int) -> None:
        self.stage, self.total, self.done = stage, max(total, 1), 0
        self.artifact_id = create_progress_artifact(
            0.0, key=f"refresh-{stage}", description=f"{stage}: batches finished")

    def advance(self, batches: int = 1) -> None:
        self.done += batches
        update_progress_artifact(self.artifact_id, round(100.0 * self.done / self.total, 1))


def _run_name() -> str:
    """`refresh-procedural-n1000` tells runs apart in the UI; a random name does not."""
    raw = flow_run.parameters.get("config") or {}
    cfg = raw.model_dump() if isinstance(raw, BaseModel) else dict(raw)
    kind, _, path = str(cfg.get("source") or "procedural").partition(":")
    name = f"refresh-{kind}" + (f"-{path.rstrip('/').rsplit('/', 1)[-1]}" if path else "")
    n = cfg.get("n")
    return name + (f"-n{n}" if n else "")


@flow(name="refresh", log_prints=True, flow_run_name=_run_name)
def refresh(config: RefreshConfig | None = None) -> dict[str, Any]:
    """Bring new questions from a source into the warehouse as verified, deduplicated,
    validated examples, and publish them as a new snapshot."""
    config = config or RefreshConfig()
    store = Store(config.warehouse)
    timer = _Timer()
    counts: Counter[str] = Counter()

    # Load first: malformed input fails here, before anything is written.
    synth = config.source.startswith("synth:")
    with timer.stage("load"):
        loaded = [] if synth else load_task(config.source, config.n, config.seed)
    run_id = str(flow_run.id or uuid.uuid4())
    # One refresh per warehouse: a second one is refused here, before it writes anything.
    with refresh_lock(store.path, run_id), _batch_runner(config) as submit:
        # Holding the lock proves no other refresh runs: any still 'running' was killed.
        store.mark_interrupted("refresh")
        store.start_run(run_id, "refresh", config.model_dump())
        try:
            if synth:  # LLM-written questions: the run exists first, their cost is its cost
                with timer.stage("synthesize"):
                    loaded, synth_rejections, synth_stats = synth_task(
                        config, str(store.path), run_id)
                store.save_samples(run_id, [], synth_rejections)
                counts.update(synth_stats.as_counts("synth_"))
                counts["synth_rejected"] = len(synth_rejections)
            counts["input"] = len(loaded)
            result = _refresh_body(config, store, run_id, loaded, timer, counts, submit)
        except BaseException:
            store.finish_run(run_id, "failed", dict(counts), timer.seconds)
            raise
    return result


def _refresh_body(config: RefreshConfig, store: Store, run_id: str, loaded: list[Question],
                  timer: _Timer, counts: Counter[str], submit: Submit | None = None
                  ) -> dict[str, Any]:
    submit = submit or (lambda task, *args: task.submit(*args))
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
            # Bars from worker processes would only garble the terminal.
            bars = config.progress and config.task_runner == "threads"
            # In one process a single encode call is fastest (one length-sorted pass, one
            # progress bar); on Dask, batches spread over the workers.
            size = config.batch_size if config.task_runner == "dask" else len(miss_keys)
            chunks = _batches(miss_keys, max(size, 1))
            futures = [submit(embed_task, quote([missing[k] for k in chunk]), model, bars)
                       for chunk in chunks]
            fresh: dict = {}
            progress = _StageProgress("embed", len(chunks)) if chunks else None
            for chunk, fut in zip(chunks, futures, strict=True):
                fresh.update(zip(chunk, fut.result(), strict=True))
                if progress:
                    progress.advance()
        counts["embedded"] = len(fresh)
        vectors_by_key = {**cached, **fresh}
        import numpy as np

        vectors = (np.stack([vectors_by_key[k] for k in keys]) if new
                   else np.zeros((0, 0), dtype=np.float32))
        dedup_rows = semantic_dedup_task(
            quote(new), quote(vectors), store, model, config.semantic_threshold,
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
    if config.decontaminate and to_solve:
        # Before the judge and the teacher: nobody pays for a question we may not train on.
        with timer.stage("decontaminate"):
            to_solve, contaminated = decontaminate_task(quote(to_solve), config, str(store.path))
            store.save_samples(run_id, [], contaminated)
        counts["contaminated"] = len(contaminated)
    judge_rejections: list[Rejection] = []
    if config.judge and config.teacher == "openai" and to_solve:
        with timer.stage("judge"):  # after dedup: nobody pays to judge a duplicate
            to_solve, judge_rejections, judge_stats = judge_task(
                quote(to_solve), llm_config(config), str(store.path), run_id, config.progress)
        counts.update(judge_stats.as_counts("judge_"))
        counts["judge_rejected"] = len(judge_rejections)
    with timer.stage("teacher"):
        unparsed: list[Sample] = []
        if config.teacher == "openai" and to_solve:
            taught = llm_teacher_task(quote(to_solve), llm_config(config), str(store.path), run_id,
                                      config.progress)
            samples, teacher_rejections, unparsed = (taught.samples, taught.rejections,
                                                     taught.unparsed)
            counts.update(taught.stats.as_counts())
        else:
            # Batches, so that on Dask the conversion runs on the workers like execution.
            samples, teacher_rejections = [], []
            for fut in [submit(teacher_task, quote(chunk))
                        for chunk in _batches(to_solve, config.batch_size)]:
                got_samples, got_rejections = fut.result()
                samples += got_samples
                teacher_rejections += got_rejections
    teacher_rejections = judge_rejections + teacher_rejections
    counts["teacher_rejected"] = len(teacher_rejections)

    with timer.stage("execute"):
        programs = [s.program or "" for s in samples]
        chunks = _batches(programs, max(config.batch_size, 1000))
        futures = [submit(execute_task, quote(chunk), config.exec_timeout_s, config.exec_memory_mb,
                          config.exec_workers)
                   for chunk in chunks]
        progress = _StageProgress("execute", len(chunks)) if chunks else None
        results = []
        for fut in futures:
            results.extend(fut.result())
            if progress:
                progress.advance()
    with timer.stage("check"):
        by_id = {q.question_id: q for q in to_solve}
        check_rejections = check_samples(samples, results, by_id)
        selections: list[dict[str, Any]] = []
        if config.teacher == "openai":
            # K samples: gold -> correct ones, distinct programs first; else majority vote.
            selections, vote_rejections = select_multi(
                samples + unparsed, by_id, cap=config.keep_per_question,
                min_agreement=config.min_agreement)
            check_rejections += vote_rejections
        for r in check_rejections:
            counts[r.reason] += 1
        store.save_samples(run_id, samples + unparsed, teacher_rejections + check_rejections)
        if config.teacher == "openai":
            LLMStore(store.path).save_selections(run_id, selections)
            first = {r["sample_id"] for r in selections if r["rank"] == 0}
            chosen = [s for s in samples if s.sample_id in first]
        else:
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
            outcome = validate_task(quote(rows), config.max_rejected_fraction)
            store.save_validation(run_id, "curated_batch", outcome.success, outcome.statistics,
                                  outcome.results, outcome.rejections)
            counts["quality_rejected"] = len(outcome.rejections)
            gate_ok = outcome.success
            kept_ids = set(outcome.kept_ids)
            chosen = [s for s in chosen if s.question_id in kept_ids]
            if not gate_ok:
                # The whole batch is held back, and says so: left undecided, its good rows
                # would come back alone on the next run and pass the gate they failed.
                stats = outcome.statistics
                held = [Rejection(s.question_id, "quality_gate", "batch_gate_failed",
                                  f"{stats['rejected']} of {stats['rows']} rows of run {run_id} "
                                  "failed row-level expectations")
                        for s in chosen]
                store.save_samples(run_id, [], held)
                counts["gate_held"] = len(held)
    with timer.stage("publish"):
        if chosen and gate_ok:
            snapshot_id = store.publish_snapshot(run_id, {s.question_id: s.sample_id
                                                          for s in chosen})
    counts["kept"] = len(chosen) if gate_ok else 0
    counts["rejected"] = (counts["semantic_duplicate"] + counts["contaminated"]
                          + counts["teacher_rejected"]
                          + len(check_rejections) + counts["quality_rejected"]
                          + counts["gate_held"])
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
    llm = {k: v for k, v in c.items() if k.startswith("llm_")}
    if llm:
        create_table_artifact(table=[{"metric": k.removeprefix("llm_"), "value": v}
                                     for k, v in llm.items()],
                              key="refresh-llm-cost",
                              description="LLM teacher: requests, cache hits, failures, "
                                          "tokens and dollars of this run")
    if summary["rejection_reasons"]:
        create_table_artifact(table=summary["rejection_reasons"], key="refresh-rejections",
                              description="Rejections of this run by stage and reason")
