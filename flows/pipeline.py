"""The stage runner: the bookkeeping around every stage, written once.

For each stage (tasks/stage.py) it runs the stage as a Prefect task named after it, splits
chunked stages over threads or Dask workers (with a progress artifact), times it, counts
its rejections per reason and per stage, keeps the rejected total, and persists the result
in one call (`Store.save_stage`, one transaction). A flow is then a list of stages.
"""

from __future__ import annotations

import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from prefect import task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.tasks import Task
from prefect.utilities.annotations import quote
from prefect.utilities.callables import get_call_parameters
from pydantic import Field, model_validator

from tasks.batching import pack
from tasks.settings import Settings
from tasks.stage import Stage, StageResult


class RunnerConfig(Settings):
    """Where batches run, and how big they are."""

    task_runner: Literal["threads", "dask"] = Field(
        "threads", description="threads: batches run in this process; dask: embedding, "
        "reference-teacher and execution batches run on Dask workers (the flow process alone "
        "writes the warehouse)")
    dask_address: str | None = Field(None, description="scheduler of an existing Dask "
                                     "cluster, e.g. tcp://scheduler:8786; empty: a "
                                     "LocalCluster started for this run")
    dask_workers: int = Field(2, ge=1, le=256, description="LocalCluster worker processes")
    batch_size: int = Field(512, ge=1, le=100_000, description="items per batch sent to a "
                            "worker, at least (a stage's input is cut into at most "
                            "in_flight batches)")
    in_flight: int | None = Field(None, ge=1, le=1024, description="batches of one stage "
                                  "running at once; empty: one per core (threads) or per "
                                  "Dask worker thread")
    shards: int | None = Field(None, ge=1, le=100_000, description="shards the loaded "
                               "questions are cut into (by context: the output does not "
                               "depend on it); empty: one per 50,000 questions")
    staging_dir: str | None = Field(None, description="where shards are staged as Parquet "
                                    "during a run (removed after it); empty: staging/ beside "
                                    "the warehouse file")
    progress: bool = Field(False, description="progress bars on the terminal")

    @model_validator(mode="after")
    def _address_means_dask(self) -> RunnerConfig:
        # A scheduler address with the threads runner would be silently ignored: in a
        # deployment's parameters as on the command line, an address means Dask.
        if self.dask_address and self.task_runner != "dask":
            self.task_runner = "dask"
        return self


class StageSink(Protocol):
    """Where results go (warehouse.Store implements it)."""

    def save_stage(self, run_id: str, result: StageResult[Any]) -> None: ...


Submit = Callable[..., PrefectFuture[Any]]


@dataclass(frozen=True)
class Batches:
    """Where a run's batches go (`submit`) and how many may be out at once (`in_flight`)."""

    submit: Submit
    in_flight: int


def cores() -> int:
    """The CPUs this process may run on (cgroup cpusets, taskset), not all the host has."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class Sealed:
    """A chunk's argument on its way to a Dask worker, unopened until the stage runs.

    prefect-dask walks every parameter with visit_collection(return_data=True) to swap
    futures, and walks into `quote` too: each of a chunk's 50,000 items (dataclasses,
    walked field by field) was rebuilt, and a 1M refresh took 3.6 min per shard on Dask
    against 23 s on threads.
    Prefect's annotations (`quote`, `opaque`) are named tuples, which Dask's graph turns
    into plain tuples on the way. A plain object is neither walked nor rebuilt."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    # A one-tuple, never a false value: pickle skips __setstate__ for a false state (an
    # empty chunk would arrive without its value).
    def __getstate__(self) -> tuple[Any]:
        return (self.value,)

    def __setstate__(self, state: tuple[Any]) -> None:
        (self.value,) = state


def _open(x: Any) -> Any:
    return x.value if isinstance(x, Sealed) else x


_tasks: dict[str, Task[..., Any]] = {}


def stage_task(name: str) -> Task[..., Any]:
    """One Prefect task per stage name: the UI shows `dedup`, `teacher`, `execute`..., and
    a Dask dashboard `<name>_stage` (Dask names work after the function)."""
    if name not in _tasks:
        def run(stage: Stage[Any, Any], items: list[Any]) -> StageResult[Any]:
            return _open(stage).run(_open(items))

        run.__name__ = run.__qualname__ = f"{name}_stage"
        _tasks[name] = task(run, name=name, cache_policy=NO_CACHE)
    return _tasks[name]


def chunks(items: Sequence[Any], size: int, group: Callable[[Any], Any] | None = None
           ) -> list[list[Any]]:
    """Consecutive chunks of `size` items; with `group`, a chunk ends only where the group key
    changes, so the items of one group (the samples of one question) stay together."""
    return pack(items, size, group=group)


class _Progress:
    """A progress artifact for one chunked stage, so the UI shows how far a run is."""

    def __init__(self, key: str, stage: str) -> None:
        self.artifact_id = create_progress_artifact(
            0.0, key=f"{key}-{stage}", description=f"{stage}: batches finished")

    def update(self, done: int, total: int) -> None:
        update_progress_artifact(self.artifact_id, round(100.0 * done / max(total, 1), 1))


class PipelineRun:
    """The stages of one flow run over one sink. Holds the run's counts and seconds."""

    def __init__(self, sink: StageSink, run_id: str, submit: Submit | None = None,
                 artifact_key: str = "run", in_flight: int | None = None) -> None:
        self.sink, self.run_id = sink, run_id
        self.submit: Submit = submit or (lambda t, *args: t.submit(*args))
        # Bounded: submitting every chunk at once let Prefect's unbounded thread pool run
        # them all together (88 execute chunks, 323 processes on 2 cores at 100k).
        self.in_flight = in_flight or cores()
        self.artifact_key = artifact_key
        self.counts: Counter[str] = Counter()
        self.seconds: dict[str, float] = {}
        # CPU seconds of this process per stage (all its threads; not the sandbox or Dask
        # workers): on a shared machine, wall time alone says little about a stage's cost.
        self.cpu_seconds: dict[str, float] = {}

    def stages(self, items: list[Any], stages: Sequence[Stage[Any, Any]]) -> list[Any]:
        for stage in stages:
            items = self.stage(stage, items)
        return items

    def stage(self, stage: Stage[Any, Any], items: list[Any], *,
              counts_as_input: bool = True) -> list[Any]:
        """Run one stage and keep its books; returns what goes on. `counts_as_input=False`
        for a source stage: what it rejects never was input, so it is not in `rejected`."""
        with self.timed(stage.name):
            todo = stage.todo(items) if _has_hooks(stage) else None
            result = self._execute(stage, items if todo is None else todo)
            if todo is not None:  # a stage that works on part of its input passes all on
                result.kept = items
            self.sink.save_stage(self.run_id, result)
        self._account(result, counts_as_input)
        return result.kept

    def _execute(self, stage: Stage[Any, Any], work: list[Any]) -> StageResult[Any]:
        t = stage_task(stage.name)
        if not stage.batch_size or not work:  # empty input still reports its counts
            return t(quote(stage), quote(work))
        # Never more chunks than can run at once: a chunk is a Prefect task run, and tens
        # of milliseconds of bookkeeping each add up over a million items.
        size = max(stage.batch_size, -(-len(work) // self.in_flight))
        parts = iter(chunks(work, size, stage.group if _has_hooks(stage) else None))
        total = -(-len(work) // size)  # about: groups may merge chunks
        progress = _Progress(self.artifact_key, stage.name)
        result: StageResult[Any] = StageResult()
        out: deque[PrefectFuture[Any]] = deque()
        done = 0
        # At most `in_flight` chunks out; results are merged in input order as they come.
        for part in parts:
            out.append(self.submit(t, quote(stage), quote(part)))
            if len(out) >= self.in_flight:
                result.merge(out.popleft().result())
                done += 1
                progress.update(done, total)
        while out:
            result.merge(out.popleft().result())
            done += 1
            progress.update(done, total)
        return result

    def _account(self, result: StageResult[Any], counts_as_input: bool) -> None:
        self.counts.update(result.counts)
        for r in result.rejections:
            self.counts[r.reason] += 1
            self.counts[f"{r.stage}_rejected"] += 1
        if counts_as_input:
            self.counts["rejected"] += len(result.rejections)

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0)
                                       + time.perf_counter() - t0, 3)
            self.cpu_seconds[name] = round(self.cpu_seconds.get(name, 0.0)
                                           + time.process_time() - c0, 3)


def _has_hooks(stage: Stage[Any, Any]) -> bool:
    """Stage classes subclass `Stage` and so have `todo` and `group`. The preference stages
    (tasks/preferences/, being rewritten) do not yet: they get the defaults (no todo, no
    group). Drop this once they subclass `Stage`."""
    return isinstance(stage, Stage)


@contextmanager
def batch_runner(config: RunnerConfig) -> Iterator[Batches]:
    """Where chunked stages run, chosen per run so that a deployment parameter (not only a
    CLI flag) can move a scheduled refresh onto Dask. Stages and their chunks are plain
    data: they pickle to any worker."""
    if config.task_runner == "threads":
        yield Batches(lambda t, *args: t.submit(*args), config.in_flight or cores())
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
        def submit(t: Task[..., Any], *args: Any) -> PrefectFuture[Any]:
            sealed = [Sealed(a.unwrap() if isinstance(a, quote) else a) for a in args]
            return runner.submit(t, parameters=get_call_parameters(t.fn, sealed, {}))

        slots = config.in_flight or sum(runner.client.nthreads().values()) or 1
        yield Batches(submit, slots)


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
