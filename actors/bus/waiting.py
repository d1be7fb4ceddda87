"""Transient-wait middleware: a target that is out is waited for, not counted as a failure.

A target actor that is dead or restarting (Ray's actor errors, `Unavailable`), or a MongoDB that
cannot be reached (`ConnectionFailure`: AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError),
here or inside the actor the handler called: the delivery stays unacked and is handed to the
handler again after a growing delay (`bus.transient_backoff_initial_s` doubling to
`bus.transient_backoff_max_s`), without counting against the delivery limit, for up to
`bus.transient_retry_s`. Once that is spent the failure goes on down the chain (the delivery limit).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from pymongo.errors import ConnectionFailure
from ray.exceptions import RayActorError

from actors.bus import metrics
from actors.bus.delivery import Work
from contracts.errors import Unavailable, root_cause
from contracts.settings import Config

log = logging.getLogger("replydesk.bus.consumer")

# What the handler needs is out (the target actor dead or restarting, MongoDB unreachable, here
# or inside the actor it called): waited out with the delayed retry, never dead-lettered.
TRANSIENT = (RayActorError, Unavailable, ConnectionFailure)


def transient(exc: BaseException) -> bool:
    """The target, or the database it needs, was down: another try after a delay can succeed."""
    return isinstance(exc, TRANSIENT) or isinstance(root_cause(exc), TRANSIENT)


class TransientWait:
    """Holds the waiting work (by event id) until its delay is over; consumer thread only."""

    def __init__(self, kind: str, config: Config, stats: dict[str, int],
                 clock: Callable[[], float] = time.monotonic):
        self.kind, self.config, self.stats, self.clock = kind, config, stats, clock
        self.waiting: dict[str, Work] = {}    # target dead/restarting: handed again at .due

    def reset(self) -> None:
        """A new connection: the waiting deliveries belong to the old channel and come back."""
        self.waiting.clear()

    def on_failure(self, work: Work, exc: BaseException, context: dict[str, Any]) -> bool:
        """Keep the delivery (unacked) and hand it again after a growing delay, for up to
        `bus.transient_retry_s`: False (not handled here) for any other error or once that is spent."""
        if not transient(exc):
            return False
        bus = self.config.app.bus
        now = self.clock()
        if work.waits == 0:
            work.first_wait = now
        elif now - work.first_wait >= bus.transient_retry_s:
            return False
        delay = min(bus.transient_backoff_initial_s * (2 ** work.waits), bus.transient_backoff_max_s)
        work.waits += 1
        work.due = now + delay
        self.waiting[work.event_id] = work
        self.stats["waited"] += 1
        metrics.WAITED.inc(tags={"kind": self.kind})
        (log.warning if work.waits == 1 else log.info)(
            "target dead or restarting; handing the event again after a delay",
            extra={**context, "delay_s": round(delay, 3), "waits": work.waits})
        return True

    def retry_due(self, call: Callable[[Work], None], room: Callable[[], bool]) -> None:
        """Hand again (`call`) the waiting work whose delay is over, while there is `room`."""
        if not self.waiting:
            return
        now = self.clock()
        for event_id, work in list(self.waiting.items()):
            if work.due <= now and room():
                del self.waiting[event_id]
                call(work)
