"""Per-client token buckets: each client may make `per_minute` requests a minute on average, in
bursts of up to `per_minute`. Checked before authentication, so guessing tokens is slow too."""
from __future__ import annotations

import math
import time
from collections import OrderedDict


class TokenBuckets:
    """One bucket per client key, least recently used evicted past `max_clients` (memory bound)."""

    def __init__(self, per_minute: int, max_clients: int = 10_000):
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0                       # tokens per second
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, key: str, now: float | None = None) -> float:
        """Spend one token for `key`: 0.0 when allowed, else the seconds until one is available."""
        now = time.monotonic() if now is None else now
        tokens, at = self._buckets.pop(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self.rate
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait

    @staticmethod
    def retry_after(wait: float) -> str:
        """Retry-After is whole seconds, rounded up so an obedient client is not refused again."""
        return str(max(1, math.ceil(wait)))
