"""Teachers by kind: a registry, so that a flow builds any of them the same way, and the LLM
steps that ride on an LLM teacher's endpoint (the solvability judge, question synthesis)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field

from tasks.errors import InputError
from tasks.llm.config import LLMConfig
from tasks.teachers.base import Selection, Teacher
from tasks.teachers.llm import LLMTeacherConfig, make_llm_teacher
from tasks.teachers.noisy import NoisyTeacher, NoisyTeacherConfig
from tasks.teachers.reference import ReferenceTeacher, ReferenceTeacherConfig

TeacherConfig = Annotated[ReferenceTeacherConfig | NoisyTeacherConfig | LLMTeacherConfig,
                          Field(discriminator="kind")]

_FACTORIES: dict[str, Callable[..., Teacher]] = {
    "reference": lambda cfg, cache, run_id, batch_size, progress: ReferenceTeacher(batch_size),
    "noisy": lambda cfg, cache, run_id, batch_size, progress: NoisyTeacher(
        cfg.error_rate, cfg.error_seed, cfg.error_kinds, batch_size, noise=cfg.noise,
        mistakes=cfg.mistakes, wrong_types=cfg.wrong_types),
    "openai": lambda cfg, cache, run_id, batch_size, progress: make_llm_teacher(
        cfg, cache, run_id, progress),
}


def make_teacher(cfg: Any, *, cache: Any, run_id: str, batch_size: int = 512,
                 progress: bool = False) -> Teacher:
    """The teacher stage for a teacher config. `cache` is the LLM response cache (any
    ResponseCache); teachers that call no LLM ignore it."""
    return _FACTORIES[cfg.kind](cfg, cache, run_id, batch_size, progress)


def make_judge(cfg: Any, *, cache: Any, run_id: str, progress: bool = False) -> Any | None:
    """The judge stage when the teacher config asks for one (LLM teachers), else None."""
    if not getattr(cfg, "judge", False):
        return None
    from tasks.judge import Judge

    return Judge(cfg, cache, run_id, progress)


def make_synthesizer(cfg: Any, *, cache: Any, run_id: str, source: str,
                     seed_source: str | None = None, progress: bool = False) -> Any:
    """The synthesis stage for `synth:` sources: it writes questions with the teacher's
    endpoint and model, so it needs an LLM teacher."""
    if not isinstance(cfg, LLMConfig):
        raise InputError(f"--source {source}: synthesis needs an LLM (--teacher openai)")
    from tasks.sources.synth import Synthesizer

    return Synthesizer(cfg, cache, run_id, progress, seed_source=seed_source)


__all__ = ["Selection", "Teacher", "TeacherConfig", "make_judge", "make_synthesizer",
           "make_teacher"]
