"""Client-side write pacing: Google's quota is per minute per user, and a 429 storm costs more
than waiting. Requests are spaced evenly (60 / max_writes_per_minute seconds apart), so no
minute -- whichever window one looks at -- ever holds more than the configured number."""
from __future__ import annotations

import asyncio
import time


class Pacer:
    def __init__(self, per_minute: int):
        self.interval = 60.0 / per_minute
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> float:
        """Block until the next request may go out; returns how long it waited."""
        async with self._lock:
            now = time.monotonic()
            delay = max(0.0, self._next - now)
            if delay:
                await asyncio.sleep(delay)
            self._next = max(now, self._next) + self.interval
            return delay
