"""Worker side of the gate: lease rate tokens in batches, hold the worker's concurrency share,
and tell the gate about outcomes that matter to the breaker.

The healthy path costs one gate call per `batch` requests, made in the background when half the
batch is used, so requests do not wait for the gate (leased tokens expire after `ttl_s`, so an
idle worker cannot hoard the pool's rate). Failures are always reported; successes only while
the pool's breaker is not plainly healthy (failures counted, or a probe), which is when they
change its state. While unhealthy, every request leases its own token, so an opening breaker is
seen at once; a worker that has seen no failure may finish its leased batch (at most `ttl_s`).
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable, TypeVar

from actors.ai.errors import BreakerOpen, TransientAIError
from actors.ai.limiter import Limiter

log = logging.getLogger(__name__)
T = TypeVar("T")
LeaseFn = Callable[[str, int], Awaitable[dict[str, Any]]]
RecordFn = Callable[[str, str], Awaitable[dict[str, Any]]]
SleepFn = Callable[[float], Awaitable[None]]


class Permits:
    def __init__(self, worker: str, lease: LeaseFn, record: RecordFn, *, batch: int, slots: int,
                 fail_fast: bool, ttl_s: float = 1.0, sleep: SleepFn = asyncio.sleep):
        self.worker = worker
        self._sleep = sleep       # waits for the gate's pace (tests inject a clock's)
        self._lease = lease
        self._record = record
        self._batch = batch
        self.limiter = Limiter(slots)   # in flight at the endpoint: fixed, or adapted to it
        self._fail_fast = fail_fast
        self._ttl_s = ttl_s
        self._tokens = 0
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self._refill: asyncio.Task | None = None
        self.breaker: dict[str, Any] = {"state": "closed", "failures": 0, "retry_in_s": 0.0}
        self.leases = 0

    @property
    def _healthy(self) -> bool:
        return self.breaker["state"] == "closed" and not self.breaker["failures"]

    def _take_local(self) -> bool:
        """Use a leased token; only while the pool looked healthy at the last contact (once
        failures are counted, every request asks the gate, so an opening breaker is seen)."""
        if self._healthy and self._tokens > 0 and time.monotonic() < self._expires:
            self._tokens -= 1
            if self._tokens <= self._batch // 2 and not self._lock.locked() and \
                    (self._refill is None or self._refill.done()):
                self._refill = asyncio.ensure_future(self._prefetch())
            return True
        return False

    async def _prefetch(self) -> None:
        """Lease the next batch before this one runs out, so no request waits for the gate."""
        try:
            async with self._lock:
                grant = await self._lease(self.worker, self._batch)
                self.leases += 1
                self.breaker = grant["breaker"]
                if grant["probe"]:  # nobody here is waiting to probe: hand it back
                    self.breaker = await self._record(self.worker, "neutral")
                elif grant["granted"] and self._healthy:
                    self._tokens += grant["granted"]
                    self._expires = time.monotonic() + self._ttl_s
        except Exception as exc:  # a request that needs a token will lease (and fail) itself
            log.warning("AI gate prefetch failed", extra={"error": f"{type(exc).__name__}: {exc}"})

    async def _token(self) -> bool:
        """Wait for a rate token; True when it is the breaker's half-open probe."""
        while not self._take_local():
            async with self._lock:
                if self._take_local():
                    return False
                grant = await self._lease(self.worker, self._batch if self._healthy else 1)
                self.leases += 1
                self.breaker = grant["breaker"]
                if grant["granted"]:
                    if grant["probe"] or not self._healthy:
                        return grant["probe"]
                    self._tokens, self._expires = grant["granted"], time.monotonic() + self._ttl_s
                    continue
                if self.breaker["state"] != "closed" and self._fail_fast:
                    raise BreakerOpen(
                        f"AI circuit breaker is {self.breaker['state'].replace('_', '-')} after "
                        f"{self.breaker['failures']} consecutive failures; retry in "
                        f"{self.breaker['retry_in_s']:.1f} s", retry_after=self.breaker["retry_in_s"])
                await self._sleep(grant["wait_s"])
        return False

    async def _report(self, outcome: str, probe: bool) -> None:
        if outcome == "fail" or probe or self.breaker["state"] != "closed" or self.breaker["failures"]:
            self.breaker = await self._record(self.worker, outcome)
            if self.breaker["state"] != "closed":
                self._tokens = 0  # stop using tokens leased before the breaker opened

    async def run(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run one request attempt under a slot and a token, reporting its outcome."""
        async with self.limiter.slot() as ticket:
            probe = await self._token()
            ticket.sent_at = time.monotonic()
            try:
                result = await attempt()
            except TransientAIError as exc:
                # busy (503) or no answer in time: too much in flight; a 429 is about the rate,
                # which the gate's bucket and Retry-After handle, not about concurrency
                self.limiter.observe(ticket, None, overloaded=exc.status in (None, 503))
                await self._report("fail" if exc.counts_as_failure else "neutral", probe)
                raise
            except BaseException:
                self.limiter.observe(ticket, None)
                if probe:
                    await self._report("neutral", probe)
                raise
            self.limiter.observe(ticket, getattr(result, "completion_tokens", 0))
            await self._report("ok", probe)
            return result
