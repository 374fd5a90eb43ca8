"""Teachers by kind: a registry, so that a flow builds any of them the same way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field

from tasks.teachers.base import Selection, Teacher
from tasks.teachers.llm import LLMTeacherConfig
from tasks.teachers.noisy import NoisyTeacher, NoisyTeacherConfig
from tasks.teachers.reference import ReferenceTeacher, ReferenceTeacherConfig

TeacherConfig = Annotated[ReferenceTeacherConfig | NoisyTeacherConfig | LLMTeacherConfig,
                          Field(discriminator="kind")]


def _llm(cfg: Any, cache: Any, run_id: str, batch_size: int, progress: bool) -> Teacher:
    from tasks.teachers.llm_stage import make_llm_teacher

    return make_llm_teacher(cfg, cache, run_id, progress)


_FACTORIES: dict[str, Callable[..., Teacher]] = {
    "reference": lambda cfg, cache, run_id, batch_size, progress: ReferenceTeacher(batch_size),
    "noisy": lambda cfg, cache, run_id, batch_size, progress: NoisyTeacher(
        cfg.error_rate, cfg.error_seed, cfg.error_kinds, batch_size),
    "openai": _llm,
}


def make_teacher(cfg: Any, *, cache: Any, run_id: str, batch_size: int = 512,
                 progress: bool = False) -> Teacher:
    """The teacher stage for a teacher config. `cache` is the LLM response cache (any
    ResponseCache); teachers that call no LLM ignore it."""
    return _FACTORIES[cfg.kind](cfg, cache, run_id, batch_size, progress)


__all__ = ["Selection", "Teacher", "TeacherConfig", "make_teacher"]
