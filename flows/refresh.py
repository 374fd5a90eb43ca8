"""The refresh flow: source -> embed -> dedup -> decontaminate -> (judge) -> teacher ->
execute -> check (verdict + selection) -> quality -> publish.

The loaded questions are staged in shards cut by context (tasks/shards.py), and every
stage from dedup to the row-level quality suites runs one shard at a time: memory holds one
shard, whatever the source's size, and the output does not depend on the shard count. The
embedding of the distinct texts runs once before the shards, the batch-level quality suites
and the publication once after them.

Only the order of stages, the run's lifecycle and its report live here. Each stage is an
object from tasks/ or quality/ (the stage contract in tasks/stage.py); flows/pipeline.py keeps
the books around each one; warehouse/ writes what they return."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from pydantic import BaseModel, Field, model_validator

from flows.config_tools import WarehouseField, nest
from flows.pipeline import PipelineRun, RunnerConfig, batch_runner
from quality.context import docs_dir_for
from quality.stage import QualityConfig, ValidateBatch, ValidateRows
from tasks.checks import Check
from tasks.decontaminate import DecontamConfig, Decontaminate
from tasks.dedup import Dedup, DedupConfig
from tasks.embed import ONE_PASS, Embed
from tasks.execute import ExecConfig, Execute
from tasks.near_dup import NearDupConfig, NearDupContexts
from tasks.settings import Settings
from tasks.shards import LOAD_BATCH, Staged, shard_count, stage_questions, staging_area
from tasks.sources import SourceConfig, load_questions, question_batches
from tasks.teachers import TeacherConfig, make_judge, make_synthesizer, make_teacher
from tasks.teachers.reference import ReferenceTeacherConfig
from warehouse import Store
from warehouse.refresh_lock import refresh_lock


class RefreshConfig(Settings):
    """Parameters of one refresh, one part per stage. The Prefect UI renders this as the run
    form; flat names (`n=`, `teacher="openai"`, `semantic_threshold=`) are accepted too and
    go to the part that declares them (the CLI flags are those names)."""

    source: SourceConfig = Field(default_factory=SourceConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    near_dup: NearDupConfig = Field(default_factory=NearDupConfig)
    decontamination: DecontamConfig = Field(default_factory=DecontamConfig)
    teacher: TeacherConfig = Field(default_factory=ReferenceTeacherConfig)
    execution: ExecConfig = Field(default_factory=ExecConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    warehouse: WarehouseField = ""

    @model_validator(mode="before")
    @classmethod
    def _flat_names(cls, data: Any) -> Any:
        return nest(cls, data)


class QualityReport(BaseModel):
    """The quality stage's verdict on the batch, for the summary and its artifacts."""

    reason: str | None = None  # one line: why the batch was refused
    warnings: list[str] = []  # failed expectations that do not block (drift by default)
    checks: list[dict[str, Any]] = []  # batch and drift expectations, one row each
    markdown: str = ""
    data_docs: str | None = None  # the Data Docs index of this warehouse

    @classmethod
    def of(cls, outcome: Any) -> QualityReport:
        if outcome is None:
            return cls()
        return cls(reason=outcome.reason, warnings=outcome.warnings,
                   checks=outcome.check_table(), markdown=outcome.summary_markdown(),
                   data_docs=str(outcome.docs_index) if outcome.docs_index else None)


class RefreshSummary(BaseModel):
    """What a refresh did: the flow's return value and its artifact."""

    run_id: str
    status: str
    snapshot_id: int | None
    counts: dict[str, Any]
    stage_seconds: dict[str, float]
    stage_cpu_seconds: dict[str, float] = {}  # of the flow process, per stage
    rejection_reasons: list[dict[str, Any]]
    warehouse: str
    quality: QualityReport = QualityReport()
    failure: str | None = None  # one line, when the run failed (status "failed")

    def __getitem__(self, key: str) -> Any:  # summary["counts"] reads as before
        return getattr(self, key)


@task(cache_policy=NO_CACHE, name="load-questions")
def load_task(source: SourceConfig, staging: Path, shards: int | None) -> Staged:
    """The source's questions, streamed into shard files (paths and counts travel on,
    not the questions)."""
    n = shards or (shard_count(source.n) if source.n else None)
    batches = question_batches(source.source, n=source.n, seed=source.seed,
                               batch_size=LOAD_BATCH)
    if n is None:  # a whole file: count it first (file sources are loaded whole anyway)
        loaded = [q for batch in batches for q in batch]
        n, batches = shard_count(len(loaded)), iter([loaded])
    return stage_questions(batches, staging, n)


def _run_name() -> str:
    """`refresh-procedural-n1000` tells runs apart in the UI; a random name does not."""
    raw = flow_run.parameters.get("config") or {}
    src = RefreshConfig.model_validate(raw).source
    kind, _, path = src.source.partition(":")
    name = f"refresh-{kind}" + (f"-{path.rstrip('/').rsplit('/', 1)[-1]}" if path else "")
    return name + (f"-n{src.n}" if src.n else "")


@flow(name="refresh", log_prints=True, flow_run_name=_run_name)
def refresh(config: RefreshConfig | None = None) -> RefreshSummary:
    """Bring new questions from a source into the warehouse as verified, deduplicated,
    validated examples, and publish them as a new snapshot."""
    config = config or RefreshConfig()
    store = Store(config.warehouse)
    run_id = str(flow_run.id or uuid.uuid4())
    rc = config.runner
    with staging_area(rc.staging_dir or store.path.parent / "staging", run_id) as staging:
        # Load first: malformed input fails here, before anything is written.
        t0, c0 = time.perf_counter(), time.process_time()
        staged = (Staged([]) if config.source.synthesized
                  else load_task(config.source, staging, rc.shards))
        load_s = round(time.perf_counter() - t0, 3), round(time.process_time() - c0, 3)
        # One refresh per warehouse: a second one is refused here, before it writes.
        with refresh_lock(store.path, run_id), batch_runner(rc) as batches:
            run = PipelineRun(store, run_id, batches.submit, artifact_key="refresh",
                              in_flight=batches.in_flight)
            run.seconds["load"], run.cpu_seconds["load"] = load_s
            # Holding the lock proves no other refresh runs: any still 'running' was killed.
            store.mark_interrupted("refresh")
            store.start_run(run_id, "refresh", config.model_dump())
            try:
                summary = _stages(config, store, run, staged, staging)
            except BaseException:
                store.finish_run(run_id, "failed", dict(run.counts), run.seconds)
                raise
    _publish_artifacts(summary, store.llm.limits(run_id))
    return summary


def _stages(config: RefreshConfig, store: Store, run: PipelineRun, staged: Staged,
            staging: Path) -> RefreshSummary:
    """The pipeline diagram, as code."""
    rc, src, model = config.runner, config.source, config.dedup.embedding_model
    teacher = make_teacher(config.teacher, cache=store.llm, run_id=run.run_id,
                           batch_size=rc.batch_size, progress=rc.progress)
    if src.synthesized:  # LLM-written questions: the run's cost is theirs
        synth = make_synthesizer(config.teacher, cache=store.llm, run_id=run.run_id,
                                 source=src.source, seed_source=src.seed_source,
                                 progress=rc.progress)
        plan = synth.plan(src.source.partition(":")[2], src.n or 100, src.seed)
        loaded = run.stage(synth, plan, counts_as_input=False)
        staged = stage_questions([loaded], staging, shard_count(len(loaded), rc.shards))
    run.counts["input"] = staged.count
    judge = make_judge(config.teacher, cache=store.llm, run_id=run.run_id, progress=rc.progress)
    docs, reference = docs_dir_for(store.path), store.quality.drift_reference()
    # One encode of every distinct text: the same vectors whatever the shards.
    run.stage(Embed(model, store, ONE_PASS,
                    show_progress=rc.progress and rc.task_runner == "threads"), staged.texts)
    gone: set[str] = set()
    if config.near_dup.near_duplicate_contexts:  # opt-in, over the whole batch (MinHash)
        batch = [q for shard in staged.shards for q in shard.read()]
        kept = run.stage(NearDupContexts(config.near_dup), batch)
        gone = {q.question_id for q in batch} - {q.question_id for q in kept}
    candidates: list = []
    for shard in staged.shards:  # one at a time: memory holds one shard
        questions = run.stages([q for q in shard.read() if q.question_id not in gone], [
            Dedup(config.dedup, store),              # exact, then semantic; batch + warehouse
            Decontaminate(config.decontamination, store, model, load_questions),  # before pay
            *([judge] if judge else []),            # after dedup: nobody pays for a duplicate
        ])
        by_id = {q.question_id: q for q in questions}
        candidates += run.stages(run.stage(teacher, questions), [
            Execute(config.execution, batch_size=max(rc.batch_size, 1000)),
            Check(by_id, teacher.selection),         # verdict, then the examples to publish
            ValidateRows(by_id, run.run_id, docs),   # GE row suites
        ])
    if failure := _teacher_failure(run, store):      # nothing came back: nothing to publish
        return _finish(store, run, [], None, failure=failure)
    validate = ValidateBatch(config.quality, run.run_id, reference, docs)
    kept = run.stage(validate, candidates)          # GE batch suite, drift vs the snapshot
    return _finish(store, run, kept, validate.outcome)


def _teacher_failure(run: PipelineRun, store: Store) -> str | None:
    """Why the run failed, when every teacher request it sent failed and nothing came from
    the cache (a wrong key, a refused parameter, an endpoint down): such a run is not
    'completed' with nothing kept, it failed."""
    c = run.counts
    sent, failed = c["llm_requests"], c["llm_failed"]
    if not sent or failed < sent or c["llm_cache_hits"]:
        return None
    kinds = ", ".join(f"{k.removeprefix('llm_error_')} x{v}" for k, v in c.items()
                      if k.startswith("llm_error_"))
    detail = store.first_rejection_detail(run.run_id, "teacher", "llm_error") or ""
    return (f"every teacher request failed ({failed} of {sent}; {kinds}): "
            f"{detail.splitlines()[0] if detail else 'no response'}")[:500]


def _finish(store: Store, run: PipelineRun, kept: list[Any], outcome: Any,
            failure: str | None = None) -> RefreshSummary:
    """Publish what was kept, close the run's row, and say what happened."""
    with run.timed("publish"):
        snapshot_id = store.publish_snapshot(run.run_id, kept) if kept else None
    run.counts["kept"] = len(kept)
    status = "failed" if failure else "gate_failed" if run.counts["gate_failed"] else "completed"
    store.finish_run(run.run_id, status, dict(run.counts), run.seconds, snapshot_id)
    return RefreshSummary(
        run_id=run.run_id, status=status, snapshot_id=snapshot_id, counts=dict(run.counts),
        stage_seconds=run.seconds, stage_cpu_seconds=run.cpu_seconds,
        warehouse=str(store.path),
        rejection_reasons=[{"stage": s, "reason": r, "count": n}
                           for s, r, n in store.rejection_reasons(run.run_id)],
        quality=QualityReport.of(outcome), failure=failure)


def _publish_artifacts(summary: RefreshSummary,
                       limits: list[tuple[str, float, float, int]]) -> None:
    c = summary.counts
    lines = [
        f"# Refresh {summary.status}",
        "",
        *([f"**Failed**: {summary.failure}", ""] if summary.failure else []),
        f"Warehouse `{summary.warehouse}`, snapshot **{summary.snapshot_id}**.",
        "",
        summary.quality.markdown,
        "",
        "| stage | count |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in c.items()],
        "",
        "| stage | seconds |", "|---|---|",
        *[f"| {k} | {v:.2f} |" for k, v in summary.stage_seconds.items()],
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
    if limits:  # the adaptive concurrency limit over the run, per LLM step
        create_table_artifact(table=[{"step": p, "t_s": round(t, 2), "limit": round(lim, 2),
                                      "in_flight": n} for p, t, lim, n in limits],
                              key="refresh-llm-limit",
                              description="Requests the client allowed in flight over time")
    if summary.quality.checks:
        create_table_artifact(table=summary.quality.checks, key="refresh-quality",
                              description="Batch and drift expectations: refused, warning "
                                          "or passed")
    if summary.rejection_reasons:
        create_table_artifact(table=summary.rejection_reasons, key="refresh-rejections",
                              description="Rejections of this run by stage and reason")
