"""The stage contract: what every step of a pipeline returns and declares.

A stage is an object with a `name` (one spelling for its Prefect task, its timer key, its
counters and `rejections.stage`), a `batch_size` (None: it needs the whole batch at once, as
dedup, GE validation and publishing do; an int: the runner may split its input into chunks of
that size and send them to threads or Dask workers, as for embedding, the reference teacher
and execution) and `run(items) -> StageResult`, plus two hooks with defaults (a stage class
gets them by subclassing `Stage`): `todo(items)`, the part of its input that needs work (None:
all of it), and `group(item)`, a key whose items must stay in one chunk (None: any split).

A stage decides; it does not keep books. Timing, counts per reason, the rejected total,
progress, chunking and persistence are the runner's (flows/pipeline.py). The decision and its
reason string sit together inside the stage, as in datatrove's `filter(doc) -> (False,
"reason")`.

Stages never import warehouse/: what a stage produced besides its kept items (new questions,
embeddings, dedup rows, unparsed samples, judgments, a validation result) travels in
`records`, a dict of named batches that the warehouse writes in the same transaction as the
stage's rejections (`Store.save_stage`). Each kind is declared once, with its writer, in
warehouse/records.py; a kind that is not declared there is refused before anything is
written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from tasks.types import Rejection

T = TypeVar("T")
T_in = TypeVar("T_in", contravariant=True)
T_out = TypeVar("T_out", covariant=True)


@dataclass
class StageResult(Generic[T]):
    """What one stage returns for one batch (or one chunk of it).

    kept: the items that go on to the next stage.
    rejections: items that leave the path here, each with the reason decided here.
    counts: numbers worth a line in the run summary (`<stage>.<key>` there), beside the
        per-reason rejection counts that the runner adds itself.
    records: named batches for the warehouse (see module docstring); keys are the record
        kinds of warehouse/records.py, e.g. "questions", "embeddings", "dedup", "samples",
        "selections", "judgments", "validation".
    """

    kept: list[T] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    records: dict[str, Any] = field(default_factory=dict)

    def merge(self, other: StageResult[T]) -> StageResult[T]:
        """Concatenate the result of another chunk of the same stage (kept order kept)."""
        self.kept.extend(other.kept)
        self.rejections.extend(other.rejections)
        self.counts.update(other.counts)
        for kind, batch in other.records.items():
            # Copied once, then extended in place: a copy per merge made n chunks O(n^2).
            if kind not in self.records:
                self.records[kind] = dict(batch) if isinstance(batch, dict) else list(batch)
            elif isinstance(batch, dict):
                self.records[kind].update(batch)
            else:
                self.records[kind].extend(batch)
        return self


@runtime_checkable
class Stage(Protocol[T_in, T_out]):
    """One step of a pipeline. Implementations are small classes holding their config; they
    subclass `Stage` to inherit the hooks' defaults."""

    name: str
    batch_size: int | None

    def run(self, items: list[T_in]) -> StageResult[T_out]: ...

    def todo(self, items: list[T_in]) -> list[T_in] | None:
        """The part of `items` that needs `run` (the rest is already done, e.g. texts with
        a stored vector); None: all of them. A stage that answers a list passes all of
        `items` on, whatever `run` keeps."""
        return None

    def group(self, item: T_in) -> Hashable | None:
        """Items with equal keys stay in one chunk (the samples of one question, for a
        decision per question inside a chunk); None everywhere: any split will do."""
        return None


def reject(item_id: str, stage: str, reason: str, detail: str = "") -> Rejection:
    """A rejection, spelled at the line that decides it."""
    return Rejection(item_id=item_id, stage=stage, reason=reason, detail=detail)
