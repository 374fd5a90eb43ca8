"""Which models an experiment trains, decided before anything trains: a pure function of the
experiment's settings and the subsets it drew.

A `Rung` is one model to train: its data (a stored subset, the unverified arm's noisy
programs for a subset's questions, or the warehouse's preference pairs), the curve it is a
point of, and its training seed. A finetune is a plan of one rung, a DPO run a plan of one,
a ladder a plan of many; the flows run every plan with the same train -> record -> evaluate
-> record sequence (flows/experiments.py).

Repeats: a rung repeated K times keeps its data and changes only its seed (data order and
adapter initialisation), so the spread of the K scores is the training noise at that point.
Rungs that differ only by their seed share a `group`, the key tables and intervals are
computed over.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel

Arm = Literal["verified", "unverified", "dpo"]


class Rung(BaseModel):
    """One model to train."""

    name: str            # folder name and run-id suffix, unique within the experiment
    curve: str           # the line (or lone point) of the learning curve it belongs to
    arm: Arm
    size: int            # training examples (0: not known before training, e.g. DPO pairs)
    subset_id: str | None = None
    error_rate: float = 0.0  # the unverified arm: share of its training programs made wrong
    noise: str = "independent"  # ... each question its own mistake, or one per question type
    repeat: int = 0
    train_seed: int = 0
    group: str           # rungs equal but for their seed share it (tables, intervals)


def _repeats(name: str, curve: str, arm: Arm, size: int, subset_id: str | None,
             train_seed: int, repeats: int, error_rate: float = 0.0,
             noise: str = "independent") -> list[Rung]:
    """K copies of a rung, seeds train_seed, train_seed + 1, ...; one copy keeps its plain
    name (the layout of runs made before repeats existed)."""
    return [Rung(name=name if repeats == 1 else f"{name}-s{r}", curve=curve, arm=arm, size=size,
                 subset_id=subset_id, error_rate=error_rate, noise=noise, repeat=r,
                 train_seed=train_seed + r, group=f"{curve}@{size}")
            for r in range(repeats)]


def plan_finetune(subset_id: str, size: int, curve: str, train_seed: int,
                  unverified_rate: float = 0.0, noise: str = "independent") -> list[Rung]:
    """One model on one subset (or on the unverified arm's programs for its questions)."""
    if unverified_rate > 0:
        return _repeats("model", _unverified(unverified_rate, noise), "unverified", size,
                        subset_id, train_seed, 1, unverified_rate, noise)
    return _repeats("model", curve, "verified", size, subset_id, train_seed, 1)


def plan_dpo(curve: str, train_seed: int) -> list[Rung]:
    """One model trained on the stored preference pairs."""
    return _repeats("model", curve, "dpo", 0, None, train_seed, 1)


def plan_ladder(subsets: Mapping[str, Mapping[int, str]], *, sizes: Sequence[int],
                arm_sizes: Sequence[int], unverified_rate: float, train_seed: int,
                repeats: int = 1, mix: str = "", noise: str = "independent") -> list[Rung]:
    """The ladder's rungs. `subsets`: strategy -> size -> subset id, the first strategy
    first. The first strategy trains at every size; the other strategies and the unverified
    arm (on the first strategy's subsets) at `arm_sizes` (empty: every size). A mixed
    ladder's curves carry the mix in their name."""
    strategies = list(subsets)
    at_arm = set(arm_sizes or sizes)
    rungs: list[Rung] = []
    for strategy in strategies:
        for size in sizes:
            if strategy != strategies[0] and size not in at_arm:
                continue
            rungs += _repeats(f"{strategy}-n{size}", f"{strategy} {mix}" if mix else strategy,
                              "verified", size, subsets[strategy][size], train_seed, repeats)
    if unverified_rate > 0:
        for size in sizes:
            if size in at_arm:
                rungs += _repeats(f"unverified-n{size}", _unverified(unverified_rate, noise),
                                  "unverified", size, subsets[strategies[0]][size],
                                  train_seed, repeats, unverified_rate, noise)
    return rungs


def _unverified(rate: float, noise: str = "independent") -> str:
    if noise == "repeating":  # a share of the question types, each always wrong the same way
        return f"unverified ({rate:.0%} of types wrong)"
    return f"unverified ({rate:.0%} wrong)"
