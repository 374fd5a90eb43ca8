"""Temporary adapters of the LLM teacher, judge and synthesis to the stage contract (replaced
by the tasks/llm/ step classes)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tasks.stage import StageResult
from tasks.teachers.base import STAGE, Selection
from tasks.teachers.llm import GenerationStats, LLMTeacherConfig, ResponseCache, llm_samples
from tasks.types import Question, Sample


class LLMTeacher:
    name = STAGE
    kind = "openai"
    batch_size = None

    def __init__(self, cfg: LLMTeacherConfig, cache: Any, run_id: str,
                 progress: bool = False) -> None:
        self.cfg, self.cache, self.run_id, self.progress = cfg, cache, run_id, progress
        self.selection = Selection(multi=True, keep_per_question=cfg.keep_per_question,
                                   min_agreement=cfg.min_agreement)

    def run(self, items: list[Question]) -> StageResult[Sample]:
        send = None
        if self.cfg.batch:
            from tasks.teachers.batch import batch_sender

            send = batch_sender(self.cfg, self.cache, run_id=self.run_id,
                                progress=self.progress)
        out = llm_samples(items, self.cfg, self.cache, run_id=self.run_id,
                          progress=self.progress, send=send)
        return StageResult(kept=out.samples, rejections=out.rejections,
                           counts=Counter(out.stats.as_counts()),
                           records={"unparsed": out.unparsed})


def make_llm_teacher(cfg: LLMTeacherConfig, cache: ResponseCache, run_id: str,
                     progress: bool = False) -> LLMTeacher:
    return LLMTeacher(cfg, cache, run_id, progress)


class Judge:
    name = "judge"
    batch_size = None

    def __init__(self, cfg: LLMTeacherConfig, cache: Any, run_id: str,
                 progress: bool = False) -> None:
        self.cfg, self.cache, self.run_id, self.progress = cfg, cache, run_id, progress

    def run(self, items: list[Question]) -> StageResult[Question]:
        from tasks.sources.synth import judge_questions

        stats = GenerationStats()
        kept, rejections, verdicts = judge_questions(items, self.cfg, self.cache,
                                                     run_id=self.run_id, stats=stats,
                                                     progress=self.progress)
        return StageResult(kept=kept, rejections=rejections,
                           counts=Counter(stats.as_counts("judge_")),
                           records={"judgments": [(q, s, r, self.cfg.model)
                                                  for q, s, r in verdicts]})


class Synthesize:
    """Source stage: n LLM-written questions; what the filters drop leaves as `synth`."""

    name = "synth"
    batch_size = None

    def __init__(self, cfg: LLMTeacherConfig, cache: Any, run_id: str, spec: str, n: int | None,
                 seed: int, progress: bool = False) -> None:
        self.cfg, self.cache, self.run_id = cfg, cache, run_id
        self.spec, self.n, self.seed, self.progress = spec, n, seed, progress

    def run(self, items: list[Any]) -> StageResult[Question]:
        from tasks.sources import load_questions
        from tasks.sources.synth import SynthContext

        ctx = SynthContext(self.cfg, self.cache, self.run_id, self.cfg.seed_source,
                           self.progress)
        questions = load_questions(self.spec, n=self.n, seed=self.seed, synth=ctx)
        return StageResult(kept=questions, rejections=ctx.rejections,
                           counts=Counter(ctx.stats.as_counts("synth_")))
