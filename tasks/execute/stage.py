"""The execute stage: straight-line arithmetic in-process (fast.py), every other teacher
program in the sandbox (sandbox.py)."""

from __future__ import annotations

from collections import Counter

from pydantic import Field

from tasks.checks import execution_rejections
from tasks.execute.fast import split_tiers
from tasks.execute.sandbox import execute_programs, shared_pool
from tasks.settings import Settings
from tasks.stage import Stage, StageResult
from tasks.types import Sample


class ExecConfig(Settings):
    """Limits of one untrusted program."""

    exec_timeout_s: float = Field(2.0, gt=0, le=60, description="wall-clock limit per program")
    exec_memory_mb: int = Field(512, ge=64, le=16_384, description="address-space limit "
                                "per program")
    exec_workers: int | None = Field(None, ge=1, le=256, description="sandbox worker "
                                     "processes; empty: one per core")
    exec_fast_tier: bool = Field(True, description="evaluate straight-line arithmetic "
                                 "in-process with the strict interpreter (same results as "
                                 "the sandbox); off: every program runs in the sandbox")


class Execute(Stage[Sample, Sample]):
    """Stage: run each sample's program (straight-line arithmetic in-process by the strict
    interpreter of fast.py, anything else in the sandbox), fill its execution fields. A
    question none of whose samples ran leaves here with the first failure's status as the
    reason; the others go on to the check stage with every sample (failed ones are stored
    too).

    Chunks keep the samples of one question together (`group`), so that decision can be made
    inside a chunk on a Dask worker."""

    name = "execute"

    def __init__(self, config: ExecConfig, batch_size: int = 1000) -> None:
        self.config, self.batch_size = config, batch_size

    def group(self, sample: Sample) -> str:
        return sample.question_id

    def run(self, items: list[Sample]) -> StageResult[Sample]:
        cfg = self.config
        programs = [s.program or "" for s in items]
        if cfg.exec_fast_tier:
            results, slow = split_tiers(programs)
        else:
            results, slow = [None] * len(programs), list(range(len(programs)))
        if slow:
            # The process's shared pool: chunks running at once share its workers.
            pool = shared_pool(cfg.exec_timeout_s, cfg.exec_memory_mb, cfg.exec_workers)
            ran = execute_programs([programs[i] for i in slow], timeout_s=cfg.exec_timeout_s,
                                   memory_mb=cfg.exec_memory_mb, pool=pool)
            for i, result in zip(slow, ran, strict=True):
                results[i] = result
        for sample, result in zip(items, results, strict=True):
            if result is None:  # unreachable: every program has a result from one tier
                raise RuntimeError(f"no execution result for {sample.sample_id}")
            sample.exec_status, sample.exec_error = result.status, result.error
            sample.exec_value = result.value
        rejections = execution_rejections(items, self.name)
        counts = Counter(f"exec_{s.exec_status}" for s in items)
        counts.update(exec_fast=len(items) - len(slow), exec_sandbox=len(slow))
        return StageResult(kept=items, rejections=rejections, counts=counts)
