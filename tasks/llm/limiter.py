"""How many requests to keep in flight: an AIMD limit in the style of TCP congestion control
and Netflix's concurrency-limits, for endpoints whose latency grows with load.

A local engine (llama.cpp, vLLM, Ollama) serves a fixed number of sequences at a time and
queues the rest; a queued request's latency grows with the queue until it times out, and the
engine keeps generating for a request the client gave up on. Fixed concurrency plus timeout
retries then feeds the queue faster than it drains (a retry storm). So:

- timeouts, 429 and 503 are congestion: the limit is halved;
- latency inflation is congestion too: a success whose latency per unit of work is more than
  `tolerance` times the best seen cuts the limit in proportion (never below half);
- a success under a full window grows the limit by 1/limit (about +1 per round trip);
- one cut per window: signals from requests that started before the last cut are ignored
  (they saw the old limit, not the new one);
- `ceiling` (max_concurrency) bounds it; the start is the engine's own slot count when it
  says, else the ceiling (a hosted API is elastic until it says 429).

This class is pure bookkeeping (no clock of its own, no I/O); the client feeds it.
"""

from __future__ import annotations

import asyncio
import time

CONGESTION = frozenset({"timeout", "429", "503"})


class AdaptiveLimit:
    """An asyncio gate whose width is `limit` (a float; floor(limit) requests pass)."""

    def __init__(self, ceiling: int, initial: float | None = None, *, floor: int = 1,
                 tolerance: float = 2.0, adaptive: bool = True) -> None:
        self.ceiling = float(ceiling)
        self.floor = float(max(1, min(floor, ceiling)))
        self.limit = self._clamp(initial if initial is not None else ceiling)
        self.tolerance = tolerance
        self.adaptive = adaptive
        self.in_flight = 0
        self.epoch = 0               # bumped at every cut
        self.best: float | None = None  # lowest latency per unit of work seen
        self.t0 = time.monotonic()
        self.history: list[tuple[float, float, int]] = [(0.0, self.limit, 0)]
        self._cond: asyncio.Condition | None = None

    def _clamp(self, value: float) -> float:
        return max(self.floor, min(self.ceiling, value))

    def _record(self) -> None:
        t = round(time.monotonic() - self.t0, 3)
        if self.history and self.history[-1][1] == self.limit:
            return
        self.history.append((t, round(self.limit, 3), self.in_flight))

    def start_at(self, value: float) -> None:
        """The engine told us what it serves: begin there (within floor and ceiling)."""
        self.limit = self._clamp(value)
        self._record()

    # --- the gate ---------------------------------------------------------------------------
    async def acquire(self) -> int:
        """Wait for room; returns the epoch the request starts in."""
        if self._cond is None:
            self._cond = asyncio.Condition()
        async with self._cond:
            await self._cond.wait_for(lambda: self.in_flight < int(self.limit))
            self.in_flight += 1
            return self.epoch

    async def release(self) -> None:
        assert self._cond is not None
        async with self._cond:
            self.in_flight -= 1
            self._cond.notify_all()

    # --- the signals --------------------------------------------------------------------------
    def on_success(self, epoch: int, latency_s: float, work: float = 1.0) -> None:
        if not self.adaptive:
            return
        per = latency_s / max(work, 1e-9)
        if self.best is None or per < self.best:
            self.best = per
        if per > self.tolerance * self.best:
            self._cut(epoch, max(0.5, self.tolerance * self.best / per))
        elif self.in_flight >= int(self.limit):  # only a full window says "more would fit"
            self.limit = self._clamp(self.limit + 1.0 / self.limit)
            self._record()

    def on_congestion(self, epoch: int) -> None:
        if self.adaptive:
            self._cut(epoch, 0.5)

    def _cut(self, epoch: int, factor: float) -> None:
        if epoch != self.epoch:
            return
        self.epoch += 1
        self.limit = self._clamp(self.limit * factor)
        self._record()  # a lower limit frees no room: nobody waiting needs waking
