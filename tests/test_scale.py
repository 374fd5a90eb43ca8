"""Scale-out properties of the refresh runner (issue 22): bounded work in flight."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from prefect import flow

from flows.pipeline import PipelineRun
from tasks.execute import ExecConfig, Execute
from tasks.types import Sample
from warehouse import Store

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _sandbox_tree() -> tuple[int, int]:
    """(sandbox workers of this process, all sandbox processes: workers and their
    per-program children)."""
    me = os.getpid()
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if b"sandbox_worker.py" not in Path(f"/proc/{entry}/cmdline").read_bytes():
                continue
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    workers = {pid for pid, ppid in parents.items() if ppid == me}
    children = {pid for pid, ppid in parents.items() if ppid in workers}
    return len(workers), len(workers) + len(children)


def test_sandbox_processes_stay_bounded_during_a_chunked_stage(tmp_path):
    # 40 chunks of 25 samples, 4 chunks in flight, 2 sandbox workers configured. Programs
    # import a module, so they all go to the sandbox. Before the shared pool every chunk
    # started workers of its own (here up to 4 x 2).
    samples = [Sample(f"q{i:04d}", "t", "m", "v", 0, f"import math\nans = math.floor({i}.5)")
               for i in range(1000)]
    stage = Execute(ExecConfig(exec_workers=2), batch_size=25)
    peak = [0, 0]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            workers, total = _sandbox_tree()
            peak[0], peak[1] = max(peak[0], workers), max(peak[1], total)
            time.sleep(0.005)

    @flow
    def execute_only() -> list[Sample]:
        run = PipelineRun(Store(tmp_path / "wh.duckdb"), "r", in_flight=4)
        return run.stage(stage, samples)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        out = execute_only()
    finally:
        stop.set()
        watcher.join()
    assert [s.exec_value for s in out] == list(range(1000))
    assert 1 <= peak[0] <= 2, peak   # workers: never more than configured
    assert peak[1] <= 4, peak        # each runs at most one program child at a time
