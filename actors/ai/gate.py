"""The pool's shared gate: requests-per-minute token bucket, circuit breaker, concurrency budget.

One named Ray actor per namespace ("ai:gate"). Workers do not call it per request: they lease
rate tokens in batches (actors/ai/permits.py) and report only failures and breaker probes, so
the gate never serialises the pool. The concurrency budget (max_concurrent_requests) is split
evenly between the configured workers; each enforces its share locally.

Breaker: closed -> open after `failure_threshold` consecutive failures (timeouts, 5xx,
connection errors; not 429) -> during `cooldown_s` no tokens -> half-open: exactly one probe
request -> success closes it, failure re-opens it for another cool-down.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.ai import metrics
from contracts import names
from contracts.ratelimit import TokenBucket
from contracts.settings import Config

log = logging.getLogger(__name__)
GATE_NAME = names.GATE
HALF_OPEN_POLL_S = 0.05
_STATE_VALUE = {"closed": 0.0, "half_open": 0.5, "open": 1.0}


class Breaker:
    def __init__(self, threshold: int, cooldown_s: float, probe_timeout_s: float):
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.probe_timeout_s = probe_timeout_s
        self.state = "closed"
        self.failures = 0
        self.opened_at = 0.0
        self.opened_count = 0
        self.probe_until: float | None = None

    def _set(self, state: str, now: float) -> None:
        if state == "open":
            self.opened_at = now
            self.opened_count += 1
        if state != "half_open":
            self.probe_until = None
        if state != self.state:
            log.log(logging.WARNING if state == "open" else logging.INFO, "AI circuit breaker %s",
                    state, extra={"breaker": state, "failures": self.failures,
                                  "cooldown_s": self.cooldown_s})
        self.state = state
        metrics.breaker_state(_STATE_VALUE[state])

    def admit(self, now: float) -> tuple[bool, bool, float]:
        """(allowed, is_probe, retry_in_s)."""
        if self.state == "open":
            left = self.opened_at + self.cooldown_s - now
            if left > 0:
                return False, False, left
            self._set("half_open", now)
        if self.state == "half_open":
            if self.probe_until is not None and now < self.probe_until:
                return False, False, HALF_OPEN_POLL_S
            self.probe_until = now + self.probe_timeout_s
            return True, True, 0.0
        return True, False, 0.0

    def record(self, outcome: str, now: float) -> None:
        """outcome: ok | fail | neutral (a 429 or a rejected request: says nothing about health)."""
        if outcome == "ok":
            self.failures = 0
            if self.state == "half_open":
                self._set("closed", now)
        elif outcome == "fail":
            self.failures += 1
            if self.state == "half_open" or (self.state == "closed" and self.failures >= self.threshold):
                self._set("open", now)
        elif self.state == "half_open":
            self.probe_until = None  # the probe told us nothing: let the next caller probe

    def view(self, now: float) -> dict[str, Any]:
        retry_in = max(0.0, self.opened_at + self.cooldown_s - now) if self.state == "open" else 0.0
        return {"state": self.state, "failures": self.failures, "retry_in_s": round(retry_in, 3),
                "threshold": self.threshold, "opened_count": self.opened_count}


class GateCore:
    """The gate's logic without Ray (the actor below wraps it; tests may use it directly)."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.monotonic):
        ai = config.app.ai
        self.clock = clock        # monotonic seconds (tests inject their own)
        self.bucket = TokenBucket(ai.requests_per_minute, now=clock())
        self.breaker = Breaker(ai.breaker.failure_threshold, ai.breaker.cooldown_s,
                               probe_timeout_s=ai.timeout_s + 1.0)
        self.slots_per_worker = max(1, ai.max_concurrent_requests // ai.workers)
        self.stats = {"leases": 0, "granted": 0, "denied": 0, "failures_reported": 0}
        metrics.breaker_state(0.0)

    def lease(self, worker: str, want: int) -> dict[str, Any]:
        now = self.clock()
        self.stats["leases"] += 1
        allowed, probe, retry_in = self.breaker.admit(now)
        granted, wait = 0, retry_in
        if allowed:
            granted, wait = self.bucket.take(1 if probe else max(1, want), now)
            if probe and not granted:
                self.breaker.probe_until = None
        self.stats["granted" if granted else "denied"] += granted or 1
        return {"granted": granted, "wait_s": wait, "probe": probe and granted > 0,
                "breaker": self.breaker.view(now)}

    def record(self, worker: str, outcome: str) -> dict[str, Any]:
        now = self.clock()
        if outcome == "fail":
            self.stats["failures_reported"] += 1
        self.breaker.record(outcome, now)
        return self.breaker.view(now)

    def status(self) -> dict[str, Any]:
        now = self.clock()
        self.bucket.take(0, now)
        return {"breaker": self.breaker.view(now), "tokens_available": int(self.bucket.tokens),
                "requests_per_minute": round(self.bucket.rate * 60),
                "slots_per_worker": self.slots_per_worker, **self.stats}


@ray.remote(num_cpus=0, max_restarts=-1)
class AIGate:
    """Ray actor around GateCore. Async so that calls never queue behind each other's I/O."""

    def __init__(self, config: Config):
        from contracts import telemetry
        telemetry.setup_from(config, GATE_NAME)
        self.core = GateCore(config)

    async def lease(self, worker: str, want: int) -> dict[str, Any]:
        return self.core.lease(worker, want)

    async def record(self, worker: str, outcome: str) -> dict[str, Any]:
        return self.core.record(worker, outcome)

    async def status(self) -> dict[str, Any]:
        return self.core.status()

    async def ping(self) -> dict[str, Any]:
        return self.core.status()["breaker"]

    async def stop(self) -> None:
        """Nothing to flush: its state is rebuilt from the workers' next contacts."""


def get_or_create_gate(config: Config, namespace: str) -> Any:
    """The namespace's gate, created (detached, so it outlives any one worker) if missing, on the
    creating worker's node: the AI workers are pinned to the supervisor's node, so the gate stays
    with the rest of the control plane instead of landing on a browser node that may be lost."""
    node = ray.get_runtime_context().get_node_id()
    return AIGate.options(name=GATE_NAME, namespace=namespace, get_if_exists=True,
                          lifetime="detached",
                          scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=True)
                          ).remote(config)
