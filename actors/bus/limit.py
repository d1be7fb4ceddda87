"""Delivery-limit middleware, the end of the failure chain: requeue, or dead-letter at the limit.

Any error no earlier middleware took (not a dead letter on purpose, not a target that is out) is a
failed delivery: the event and its duplicates go back to the queue (the quorum queue counts the
return in `x-delivery-count`) until the delivery that reaches `bus.delivery_limit`, which is
dead-lettered with the last error, so nothing is dropped silently.
"""
from __future__ import annotations

import logging
from typing import Any

from actors.bus import deadletter
from actors.bus.acks import Acks
from actors.bus.deadlettering import DeadLettering
from actors.bus.delivery import Work
from contracts.errors import root_cause

log = logging.getLogger("replydesk.bus.consumer")


class DeliveryLimit:
    def __init__(self, limit: int, dead: DeadLettering, acks: Acks, stats: dict[str, int]):
        self.limit, self.dead, self.acks, self.stats = limit, dead, acks, stats

    def on_failure(self, work: Work, exc: BaseException, context: dict[str, Any]) -> bool:
        """Always handles the failure (True)."""
        d, cause = work.delivery, root_cause(exc)
        if d.attempt >= self.limit:
            log.error("event failed at the delivery limit, dead-lettering", extra=context,
                      exc_info=cause)
            self.dead.publish(d, f"delivery limit {self.limit} reached; last error: "
                                 f"{deadletter.reason_of(cause)}")
            self.acks.ack(work.duplicates)
        else:
            log.warning("handler failed, requeueing", extra=context, exc_info=cause)
            self.stats["requeued"] += 1
            self.acks.requeue(work.deliveries())
        return True
