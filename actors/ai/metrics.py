"""Ray metrics of the AI pool, safe to use anywhere.

ray.util.metrics needs a connected Ray worker; unit tests and tools use the same code outside
Ray, so each metric is created lazily and becomes a no-op (with the values still kept in the
callers' own stats) when Ray metrics are not available.
"""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = [0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60]
_SPECS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "latency": ("Histogram", "replydesk_ai_latency_seconds",
                {"description": "Time to a validated AI answer, retries included",
                 "boundaries": _LATENCY_BUCKETS, "tag_keys": ("model",)}),
    "tokens": ("Counter", "replydesk_ai_tokens_total",
               {"description": "Tokens used (prompt + completion)", "tag_keys": ("model",)}),
    "retries": ("Counter", "replydesk_ai_retries_total",
                {"description": "AI request attempts that were retried", "tag_keys": ("model",)}),
    "rate_limited": ("Counter", "replydesk_ai_429_total",
                     {"description": "HTTP 429 answers from the AI endpoint", "tag_keys": ("model",)}),
    "breaker_open": ("Gauge", "replydesk_ai_breaker_open",
                     {"description": "Shared AI circuit breaker: 0 closed, 0.5 half-open, 1 open"}),
}
_made: dict[str, Any] = {}


def _metric(key: str) -> Any | None:
    if key not in _made:
        kind, name, kwargs = _SPECS[key]
        try:
            import ray
            if not ray.is_initialized():
                return None  # not cached: Ray may be initialised later in this process
            from ray.util import metrics
            _made[key] = getattr(metrics, kind)(name, **kwargs)
        except Exception as exc:  # metrics are best effort; the work must go on
            log.debug("metric %s unavailable: %s", name, exc)
            _made[key] = None
    return _made[key]


def _apply(key: str, method: str, value: float, tags: dict[str, str] | None) -> None:
    m = _metric(key)
    if m is None:
        return
    try:
        getattr(m, method)(value, tags=tags or None)
    except Exception as exc:
        log.debug("metric %s not recorded: %s", key, exc)


def observe_latency(seconds: float, model: str) -> None:
    _apply("latency", "observe", seconds, {"model": model})


def count(key: str, n: float, model: str) -> None:
    """key: tokens | retries | rate_limited."""
    if n:
        _apply(key, "inc", n, {"model": model})


def breaker_state(value: float) -> None:
    _apply("breaker_open", "set", value, None)
