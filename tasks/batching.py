"""Consecutive batches of a sequence, kept in one place: the runner's stage chunks and the
student's generation batches are both cut by it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def pack(items: Sequence[T], limit: int, *, weight: Callable[[T], int] | None = None,
         group: Callable[[T], Any] | None = None) -> list[list[T]]:
    """Consecutive batches of at most `limit` (items, or the sum of `weight`); an item heavier
    than the limit is a batch of its own. With `group`, a batch ends only where the group key
    changes, so a group (the samples of one question) stays whole and a batch may run over
    the limit by the rest of its last group."""
    out: list[list[T]] = []
    current: list[T] = []
    load = 0
    for item in items:
        w = 1 if weight is None else weight(item)
        if current and load + w > limit and (group is None or group(item) != group(current[-1])):
            out.append(current)
            current, load = [], 0
        current.append(item)
        load += w
    if current:
        out.append(current)
    return out
