"""How many requests to keep in flight: an AIMD limit in the style of TCP congestion control
and Netflix's concurrency-limits, for endpoints whose latency grows with load.

A local engine (llama.cpp, vLLM, Ollama) serves a fixed number of sequences at a time and
queues the rest; a queued request's latency grows with the queue until it times out, and the
engine keeps generating for a request the client gave up on. Fixed concurrency plus timeout
retries then feeds the queue faster than it drains (a retry storm). So:

- timeouts, 429 and 503 are congestion: the limit is halved; after a timeout it is also
  held under what the engine finishes within half a timeout at the rate seen (Little's law);
- latency inflation is congestion too. When the engine says how long it served each request
  (llama.cpp's `timings`), Little's law gives how many it serves at a time (the sum of service
  times over the elapsed time of the last responses), and the limit is set to that plus a
  small queue allowance. Otherwise (TCP Vegas, Netflix's gradient limit) with `best` the
  lowest latency per unit of work seen, limit * (1 - best / latency) requests were queued in
  front of a response; more than a few (`queue_allowance`), with a latency over 3x the best
  (a client on a busy machine inflates its own latencies), sets the limit to
  limit * best / latency + allowance (never below half of it, once per window);
- a success under a full window with little queueing grows the limit by 1/limit (about +1
  per round trip);
- one cut per window: signals from requests that started before the last cut are ignored
  (they saw the old limit, not the new one);
- `ceiling` (max_concurrency) bounds it; the start is the engine's own slot count when it
  says, else the ceiling (a hosted API is elastic until it says 429).

This class is pure bookkeeping (no clock of its own, no I/O); the client feeds it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass

CONGESTION = frozenset({"timeout", "429", "503"})
# Latency per unit of work this many times the best seen is a queue, not a busy client's noise.
INFLATION = 3.0


@dataclass(frozen=True)
class Ticket:
    """One attempt's pass through the gate."""

    epoch: int     # the cut count when it started: older signals do not cut again
    seq: int       # its sequence number among all attempts
    ahead: int     # attempts in flight when it started (ghosts included)
    t: float       # time.monotonic() at the start


class AdaptiveLimit:
    """An asyncio gate whose width is `limit` (a float; floor(limit) requests pass)."""

    def __init__(self, ceiling: int, initial: float | None = None, *, floor: int = 1,
                 adaptive: bool = True) -> None:
        self.ceiling = float(ceiling)
        self.floor = float(max(1, min(floor, ceiling)))
        self.limit = self._clamp(initial if initial is not None else ceiling)
        self.adaptive = adaptive
        self.in_flight = 0
        self.epoch = 0               # bumped at every cut
        self.sent = 0                # attempts started (their sequence numbers)
        self.completed = 0           # attempts that came back with a response
        self.first_sent: float | None = None
        # (when, engine seconds) of the last responses whose engine said how long it served
        self._served: deque[tuple[float, float]] = deque(maxlen=8)
        self.best: float | None = None  # lowest latency per unit of work seen
        self.smooth: float | None = None  # its moving average (weight 0.1 per response)
        self.t0 = time.monotonic()
        self.history: list[tuple[float, float, int]] = [(0.0, self.limit, 0)]
        self._waiters: deque[asyncio.Future[None]] = deque()

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
    async def acquire(self) -> Ticket:
        """Wait for room; the ticket says when and behind how many the attempt started."""
        loop = asyncio.get_running_loop()
        while self.in_flight >= int(self.limit):
            # A plain FIFO of futures (asyncio.Semaphore's way): no lock round trip per
            # request, and a response wakes only as many waiters as may pass.
            fut = loop.create_future()
            self._waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self._wake()  # pass the wake-up on
                raise
        ahead = self.in_flight
        self.in_flight += 1
        self.sent += 1
        if self.first_sent is None:
            self.first_sent = time.monotonic()
        return Ticket(self.epoch, self.sent, ahead, time.monotonic())

    def _wake(self) -> None:
        room = int(self.limit) - self.in_flight
        while room > 0 and self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                room -= 1

    async def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    async def abandon(self, ticket: Ticket, fallback_s: float) -> None:
        """A timed-out attempt: the engine does not know we left and will still serve it, so
        its slot stays taken (and its request is not sent again) until the engine has
        plausibly finished it: the time it needs for everything that was ahead of it, at the
        rate we have seen (`fallback_s` when we have seen none)."""
        rate = self.rate()
        wait = (ticket.t + (ticket.ahead + 1) / rate - time.monotonic() if rate
                else fallback_s)
        await asyncio.sleep(min(max(wait, 0.0), 10 * fallback_s))
        await self.release()

    def rate(self) -> float:
        """Responses per second since the first attempt (0 before any)."""
        if not self.completed or self.first_sent is None:
            return 0.0
        return self.completed / max(1e-3, time.monotonic() - self.first_sent)

    # --- the signals --------------------------------------------------------------------------
    def queue_allowance(self) -> float:
        """Requests allowed to wait in the engine's queue (one ready when a slot frees), plus
        a tenth of the limit for the noise of latencies measured by a busy client: 1.1 at a
        limit of 1, 2.4 at 4, 10.4 at 64."""
        return 1.0 + 0.5 * math.log2(max(self.limit, 1.0)) + 0.1 * self.limit

    def on_success(self, epoch: int, latency_s: float, work: float = 1.0,
                   service_s: float | None = None) -> None:
        """`service_s`: the time the engine spent on it, when it says (llama.cpp's
        `timings`); the rest of the latency was waiting."""
        self.completed += 1
        if not self.adaptive:
            return
        if service_s is not None:
            self._served.append((time.monotonic(), service_s))
            if len(self._served) >= self._served.maxlen:  # type: ignore[operator]
                self._follow_engine()
                return
        per = latency_s / max(work, 1e-9)
        if self.best is None or per < self.best:
            self.best = per
        if epoch != self.epoch:
            return  # it waited behind the old limit: it says nothing about this one
        # Smoothed: one slow response is noise, a queue slows them all.
        self.smooth = per if self.smooth is None else 0.9 * self.smooth + 0.1 * per
        per = self.smooth
        allowance = self.queue_allowance()
        # Without the engine's word, the unqueued latency is the best per unit of work seen;
        # a busy client inflates latencies by itself, so only a clear inflation counts.
        queued = self.limit * (1.0 - self.best / per)
        if queued > allowance and per > INFLATION * self.best:
            target = self.limit * self.best / per + allowance
            self._cut(epoch, max(0.5, target / self.limit))
        else:
            self._grow(queued, allowance)

    def _follow_engine(self) -> None:
        """With service times (Little's law): the engine served, on average,
        sum(service) / elapsed requests at a time over the last responses; whatever else
        we keep in flight waits in its queue. Allow a little waiting, no more."""
        t_first, _ = self._served[0]
        t_last, _ = self._served[-1]
        services = [s for _, s in self._served]
        elapsed = t_last - t_first + sum(services) / len(services)
        serving = sum(services) / max(elapsed, 1e-6)
        allowance = 1.0 + 0.5 * math.log2(max(serving, 1.0))
        queued = self.in_flight - serving
        if queued > allowance and self.limit > serving + allowance:
            self.epoch += 1
            self.limit = self._clamp(serving + allowance)
            self._record()
        else:
            self._grow(queued, allowance)

    def _grow(self, queued: float, allowance: float) -> None:
        # Only a full window that did not wait says "more would fit".
        if self.in_flight >= int(self.limit) and queued < allowance / 2:
            self.limit = self._clamp(self.limit + 1.0 / self.limit)
            self._record()

    def on_congestion(self, epoch: int) -> None:
        if self.adaptive:
            self._cut(epoch, 0.5)

    def on_timeout(self, epoch: int, timeout_s: float) -> None:
        """Halve (once per window), and never keep more in flight than the engine finishes
        within half a timeout at the rate seen so far (Little's law: a longer queue means
        timeouts for whoever is at its end)."""
        if not self.adaptive:
            return
        self._cut(epoch, 0.5)
        rate = self.rate()
        if rate and self.limit > 1.05 * 0.5 * rate * timeout_s:  # not a row per timeout
            self.limit = self._clamp(0.5 * rate * timeout_s)
            self._record()

    def _cut(self, epoch: int, factor: float) -> None:
        if epoch != self.epoch:
            return
        self.epoch += 1
        self.limit = self._clamp(self.limit * factor)
        self.smooth = None  # latencies under the new limit start a new average
        self._record()  # a lower limit frees no room: nobody waiting needs waking
