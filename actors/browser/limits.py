"""Pacing: per-account navigation/send rates (the site's pace, never exceeded) and a node-wide cap
on concurrent navigations (CPU, not memory, is what a node runs out of first)."""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
from collections import deque
from pathlib import Path
from typing import AsyncIterator


class SlidingWindowLimiter:
    """At most `per_minute` acquisitions in any `window_s` window. A token bucket would allow a
    burst of a full minute's budget plus refill; a sliding window never exceeds the stated pace."""

    def __init__(self, per_minute: int, window_s: float = 60.0):
        self.limit = per_minute
        self.window_s = window_s
        self._times: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                while self._times and now - self._times[0] >= self.window_s:
                    self._times.popleft()
                if len(self._times) < self.limit:
                    self._times.append(now)
                    return
                await asyncio.sleep(self.window_s - (now - self._times[0]))


class NodeSlots:
    """A node-wide semaphore shared by every actor process: `count` lock files held with flock.
    The kernel releases a dead process's locks, so a crashed actor never leaks a slot."""

    def __init__(self, count: int, directory: Path, poll_s: float = 0.02):
        self.count = count
        self.directory = directory
        self.poll_s = poll_s
        directory.mkdir(parents=True, exist_ok=True)

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        fd = await self._take()
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    async def _take(self) -> int:
        while True:
            for i in range(self.count):
                fd = os.open(self.directory / f"slot-{i}", os.O_CREAT | os.O_RDWR, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return fd
                except BlockingIOError:
                    os.close(fd)
            await asyncio.sleep(self.poll_s)
