"""Ray metrics of the AI pool (no-ops outside Ray, see contracts.metrics); the same values are
kept in the callers' own stats and span attributes."""
from __future__ import annotations

from contracts.metrics import counter, gauge, histogram

_LATENCY_BUCKETS = [0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60]
LATENCY = histogram("replydesk_ai_latency_seconds", "Time to a validated AI answer, retries included",
                    _LATENCY_BUCKETS, ("model",))
_COUNTERS = {
    "tokens": counter("replydesk_ai_tokens_total", "Tokens used (prompt + completion)", ("model",)),
    "retries": counter("replydesk_ai_retries_total", "AI request attempts that were retried", ("model",)),
    "rate_limited": counter("replydesk_ai_429_total", "HTTP 429 answers from the AI endpoint", ("model",)),
    "drafts": counter("replydesk_drafts_total", "Drafts stored for review", ("model",)),
}
BREAKER_OPEN = gauge("replydesk_ai_breaker_open", "Shared AI circuit breaker: 0 closed, 0.5 half-open, 1 open")


def observe_latency(seconds: float, model: str) -> None:
    LATENCY.observe(seconds, {"model": model})


def count(key: str, n: float, model: str) -> None:
    """key: tokens | retries | rate_limited | drafts."""
    if n:
        _COUNTERS[key].inc(n, {"model": model})


def breaker_state(value: float) -> None:
    BREAKER_OPEN.set(value)
