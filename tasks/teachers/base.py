"""What every teacher is: a stage from questions to samples, plus how to choose among them.

The reference teacher, the noisy teacher (labelled errors, for ablations) and the LLM
teachers all implement `Teacher`, so the refresh flow has no branch per teacher kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from tasks.stage import Stage, StageResult
from tasks.types import Question, Sample

STAGE = "teacher"


@dataclass(frozen=True)
class Selection:
    """How the select stage picks the examples of one question among its samples.

    multi=False: one sample per question, a correct one (else an unverified one when there is
    no gold answer), lowest sample_idx first. multi=True (K samples per question): with a gold
    answer up to `keep_per_question` correct ones, distinct programs first; without one, a
    majority vote that needs `min_agreement` of the samples."""

    multi: bool = False
    keep_per_question: int = 1
    min_agreement: float = 0.5


@runtime_checkable
class Teacher(Stage[Question, Sample], Protocol):
    """name is always "teacher" (the stage name); `kind` tells teachers apart in samples.

    `run` returns the samples that carry a program in `kept`, the questions none of whose
    samples has one in `rejections`, and samples to store without executing (a response
    with no program, raw text kept) in `records["unparsed"]`."""

    name: str
    kind: str
    batch_size: int | None
    selection: Selection

    def run(self, items: list[Question]) -> StageResult[Sample]: ...
