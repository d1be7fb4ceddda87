"""The effects running elsewhere: what a handler returned that is not done yet.

A handler returns None (effect done), a `ray.ObjectRef` or a `concurrent.futures.Future` (effect
running elsewhere): many run at once. ObjectRefs are polled with one `ray.wait` per consumer step;
a Future queues itself on completion (from whichever thread completes it), so polling costs nothing
per running Future. A settled result goes to the done work, or to the failures with its error, and
the consumer's `on_settled` hook hears of it either way.
"""
from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import ray

from actors.bus.delivery import Work

log = logging.getLogger("replydesk.bus.consumer")

# told of every handler result once it is settled: (the ObjectRef / Future, its error or None)
Settled = Callable[[Any, "BaseException | None"], None]


class Running:
    def __init__(self, kind: str, on_settled: Settled | None = None):
        self.kind, self.on_settled = kind, on_settled
        self.by_id: dict[str, Work] = {}            # event id -> work whose result is pending
        self._refs: dict[ray.ObjectRef, Work] = {}  # the running ObjectRefs (polled with ray.wait)
        self._finished: deque[Work] = deque()       # running Futures that completed (any thread)

    def reset(self) -> None:
        """A fresh run: effects of an earlier one are no longer waited on (their deliveries come
        back and are handled afresh)."""
        self.by_id.clear()
        self._refs.clear()
        self._finished.clear()

    def add(self, work: Work, result: Any) -> bool:
        """Track `result` if it is running elsewhere (True); False: the effect is done."""
        if isinstance(result, ray.ObjectRef):
            work.result = result
            self.by_id[work.event_id] = work
            self._refs[result] = work
        elif isinstance(result, Future):
            work.result = result
            self.by_id[work.event_id] = work
            # (defaults, not a closure: fewer objects kept per running event for the GC)
            result.add_done_callback(lambda _f, w=work, finished=self._finished: finished.append(w))
        else:
            return False
        return True

    def poll(self, done: dict[str, Work], failed: list[tuple[Work, BaseException]]) -> None:
        """Move the results that completed to `done`, or to `failed` with their error."""
        settled: list[Work] = []
        while self._finished:
            settled.append(self._finished.popleft())
        if self._refs:
            ready = ray.wait(list(self._refs), num_returns=len(self._refs), timeout=0)[0]
            settled.extend(self._refs.pop(r) for r in ready)
        for work in settled:
            event_id, r = work.event_id, work.result
            if self.by_id.get(event_id) is not work:
                continue    # started before run() began afresh: its redelivery is handled anew
            del self.by_id[event_id]
            error: BaseException | None = None
            try:
                ray.get(r) if isinstance(r, ray.ObjectRef) else r.result()
                done[event_id] = work
            except Exception as exc:
                error = exc
                failed.append((work, exc))
            if self.on_settled is not None:
                try:
                    self.on_settled(r, error)
                except Exception:
                    log.exception("on_settled hook failed", extra={"consumer": self.kind})
