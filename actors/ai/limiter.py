"""How many AI requests one worker keeps in flight at its endpoint: a semaphore whose limit is
fixed (`ai.max_in_flight`, or the server's slot count) or adapted, AIMD-style, to the server.

Requests over the limit wait here, on our side, before they are sent: a server with one slot
then never holds a queue of ours, so no request's timeout (counted from when it is sent) runs
while it waits behind others, and a slow CPU server is not mistaken for a failing one.

Adaptive (the server does not say what it can take): start at 2 in flight; each request that
completes while the limit was in use raises it by 1/limit (one more per round trip); a sign of
overload -- the time per generated token more than OVERLOAD x the best seen recently, a 503 or
a timeout (not a 429: that is the rate, which the gate and Retry-After handle) -- cuts it by
30 % (once per round trip: requests sent before the last cut do not cut again). Never below 1,
never above the worker's cap (`ai.concurrency` and its share of `ai.max_concurrent_requests`).
"""
from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable

START = 2
OVERLOAD = 3.0         # time per token against the recent best
BEST_DRIFT = 1.05      # the best per-token time forgets (a server's speed, a machine's load change)
MIN_SAMPLES = 4


class Ticket:
    __slots__ = ("sent_at", "saturated")

    def __init__(self, sent_at: float, saturated: bool):
        self.sent_at = sent_at
        self.saturated = saturated


class Limiter:
    def __init__(self, cap: int, clock: Callable[[], float] = time.monotonic):
        self.cap = max(1, cap)
        self.limit = float(self.cap)
        self.adaptive = False
        self.in_flight = 0
        self.peak = 0
        self.waited = 0          # requests that waited here for a place
        self._clock = clock
        self._cond: asyncio.Condition | None = None
        self._best: float | None = None
        self._samples = 0
        self._cut_at = -1.0

    @property
    def mode(self) -> str:
        return "adaptive" if self.adaptive else "fixed"

    def fix(self, n: int) -> None:
        self.adaptive = False
        self._set(min(self.cap, max(1, n)))

    def adapt(self) -> None:
        if not self.adaptive:
            self.adaptive = True
            self._set(min(self.cap, START))

    def _set(self, limit: float) -> None:
        self.limit = limit
        if self._cond is not None:
            asyncio.ensure_future(self._wake())

    async def _wake(self) -> None:
        async with self._cond:
            self._cond.notify_all()

    def _room(self) -> bool:
        return self.in_flight < max(1, int(self.limit))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[Ticket]:
        if self._cond is None:
            self._cond = asyncio.Condition()
        async with self._cond:
            if not self._room():
                self.waited += 1
                await self._cond.wait_for(self._room)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            ticket = Ticket(self._clock(), self.in_flight >= int(self.limit))
        try:
            yield ticket
        finally:
            async with self._cond:
                self.in_flight -= 1
                self._cond.notify(1)

    def observe(self, ticket: Ticket, tokens: int | None, overloaded: bool = False) -> None:
        """A request sent under `ticket` ended: `tokens` generated (None: it failed);
        `overloaded`: the server said so (503) or did not answer in time."""
        if not self.adaptive:
            return
        now = self._clock()
        if tokens is not None and not overloaded:
            per_token = (now - ticket.sent_at) / (tokens + 1)
            self._samples += 1
            self._best = per_token if self._best is None else min(per_token, self._best * BEST_DRIFT)
            overloaded = self._samples > MIN_SAMPLES and per_token > OVERLOAD * self._best
        if overloaded:
            if ticket.sent_at >= self._cut_at:
                self._cut_at = now
                self._set(max(1.0, self.limit * 0.7))
        elif ticket.saturated and tokens is not None:
            self._set(min(float(self.cap), self.limit + 1.0 / self.limit))

    def stats(self) -> dict[str, float | int | str]:
        return {"mode": self.mode, "limit": round(self.limit, 2), "in_flight": self.in_flight,
                "peak": self.peak, "waited": self.waited}
