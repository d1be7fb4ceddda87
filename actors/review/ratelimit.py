"""Per-client token buckets: each client may make `per_minute` requests a minute on average, in
bursts of up to `per_minute`. Checked before authentication, so guessing tokens is slow too."""
from __future__ import annotations

import math
import time
from collections import OrderedDict

from contracts.ratelimit import TokenBucket


class TokenBuckets:
    """One bucket per client key, least recently used evicted past `max_clients` (memory bound)."""

    def __init__(self, per_minute: int, max_clients: int = 10_000):
        self.per_minute = per_minute
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, key: str, now: float | None = None) -> float:
        """Spend one token for `key`: 0.0 when allowed, else the seconds until one is available."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.pop(key, None) or TokenBucket(self.per_minute, self.per_minute, now)
        self._buckets[key] = bucket                           # now the most recently used
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return bucket.take(1, now)[1]

    @staticmethod
    def retry_after(wait: float) -> str:
        """Retry-After is whole seconds, rounded up so an obedient client is not refused again."""
        return str(max(1, math.ceil(wait)))
