"""Ray metrics (shown on the dashboard's metrics endpoint) that are safe to use anywhere: in a Ray
worker they are real ray.util.metrics objects; where Ray is not initialised they do nothing."""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


class _Noop:
    def inc(self, *a: Any, **k: Any) -> None: ...
    def set(self, *a: Any, **k: Any) -> None: ...
    def observe(self, *a: Any, **k: Any) -> None: ...


class _Lazy:
    """Creates the Ray metric on first use (Ray may not be initialised at import time)."""

    def __init__(self, kind: str, name: str, description: str, tag_keys: tuple[str, ...], **kw: Any):
        self._args = (kind, name, description, tag_keys, kw)
        self._metric: Any = None

    def _get(self) -> Any:
        if self._metric is None:
            kind, name, description, tag_keys, kw = self._args
            try:
                import ray
                from ray.util import metrics
                if not ray.is_initialized():
                    return _Noop()
                self._metric = getattr(metrics, kind)(name, description=description,
                                                       tag_keys=tag_keys, **kw)
            except Exception:  # metrics must never break the work they observe
                log.debug("metric %s unavailable", name, exc_info=True)
                return _Noop()
        return self._metric

    def _record(self, method: str, value: float, tags: dict[str, str] | None) -> None:
        try:
            getattr(self._get(), method)(value, tags=tags)
        except Exception:  # e.g. a tag the metric does not declare: log, never break the work
            log.debug("metric %s not recorded", self._args[1], exc_info=True)

    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        self._record("inc", value, tags)

    def set(self, value: float, tags: dict[str, str] | None = None) -> None:
        self._record("set", value, tags)

    def observe(self, value: float, tags: dict[str, str] | None = None) -> None:
        self._record("observe", value, tags)


def counter(name: str, description: str, tag_keys: tuple[str, ...] = ()) -> _Lazy:
    return _Lazy("Counter", name, description, tag_keys)


def gauge(name: str, description: str, tag_keys: tuple[str, ...] = ()) -> _Lazy:
    return _Lazy("Gauge", name, description, tag_keys)


def histogram(name: str, description: str, boundaries: list[float],
              tag_keys: tuple[str, ...] = ()) -> _Lazy:
    return _Lazy("Histogram", name, description, tag_keys, boundaries=boundaries)
