"""Small helpers shared by the tests."""
from __future__ import annotations

import asyncio
import math

from standins.stack import wait_for

__all__ = ["FakeClock", "wait_for"]


class FakeClock:
    """A monotonic clock that moves only when told: `clock()` reads it (inject it where code takes
    a `clock`), `await clock.sleep(s)` records the wait and moves the clock on by `s` (inject it
    where code takes a `sleep`). Tests then assert on the waits asked for, not on wall time."""

    def __init__(self, start: float = 1000.0):
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    @property
    def slept(self) -> float:
        return sum(self.sleeps)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        # at least one step, as a real clock: a wait shorter than the float's resolution at this
        # reading must still let time pass (code that waits "until the next token" relies on it)
        self.now = max(self.now + max(0.0, seconds), math.nextafter(self.now, math.inf))
        await asyncio.sleep(0)   # still a suspension point, as a real sleep is
