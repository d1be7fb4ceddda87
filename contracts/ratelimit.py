"""The one token bucket: the AI pool's shared requests-per-minute budget (actors/ai/gate.py) and the
review desk's per-client request limit (actors/review/ratelimit.py) both pace with it."""
from __future__ import annotations

import math
import time


class TokenBucket:
    """`per_minute` tokens a minute, bursting to `capacity` (ten seconds' worth by default).
    Times are monotonic seconds passed in by the caller (`now`), so a test can drive the clock."""

    def __init__(self, per_minute: float, capacity: float | None = None, now: float | None = None):
        self.rate = per_minute / 60.0                       # tokens per second
        self.capacity = float(capacity or max(1, math.ceil(self.rate * 10)))
        self.tokens = self.capacity
        self.stamp = time.monotonic() if now is None else now

    def take(self, want: int, now: float) -> tuple[int, float]:
        """Up to `want` tokens now; when none, how long until the next one."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        n = min(want, int(self.tokens))
        self.tokens -= n
        return n, (0.0 if n else (1.0 - self.tokens) / self.rate)
