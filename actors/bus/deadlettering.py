"""Dead-letter middleware: what retrying cannot help goes to the dead queue with its reason.

An invalid delivery (its validation error), a handler's `DeadLetter` (its reason) and a
`PermanentError` (a 401, a 404, a wrong password: `Type: message`), here or in the Ray task or
Future the handler returned, are dead-lettered on their first delivery: published to the
dead-letter exchange with the reason, the consumer kind and the original routing key (confirmed),
then acked, and the duplicates that joined the event are acked with it. The delivery limit (see
actors/bus/limit.py) dead-letters through `publish` too. A delivery of a lost connection is left:
it comes back and is judged again. Dead letters of the event queues are also recorded in MongoDB
(best effort: the dead queue holds the event itself).
"""
from __future__ import annotations

import logging
from typing import Any

from pika.adapters.blocking_connection import BlockingChannel
from pymongo.errors import PyMongoError

from actors.bus import deadletter, metrics
from actors.bus.acks import Acks
from actors.bus.delivery import Delivery, Work
from contracts.errors import DeadLetter, PermanentError, root_cause

log = logging.getLogger("replydesk.bus.consumer")


class DeadLettering:
    def __init__(self, kind: str, source: str, dlx: str, store: Any, acks: Acks,
                 stats: dict[str, int]):
        self.kind, self.source, self.dlx, self.store = kind, source, dlx, store
        self.acks, self.stats = acks, stats
        self.channel: BlockingChannel | None = None    # a confirming channel, set while consuming

    def on_failure(self, work: Work, exc: BaseException, context: dict[str, Any]) -> bool:
        """Dead-letter a `DeadLetter` or `PermanentError` at once; False for any other error."""
        cause = root_cause(exc)
        if isinstance(cause, DeadLetter):
            log.error("handler dead-lettered event", extra=context)
        elif isinstance(cause, PermanentError):   # retrying cannot help: dead letter at once
            log.error("handler failed permanently, dead-lettering", extra=context)
        else:
            return False
        self.publish(work.delivery, deadletter.reason_of(cause))
        self.acks.ack(work.duplicates)
        return True

    def publish(self, d: Delivery, reason: str) -> None:
        """Publish to the DLX with the reason (confirmed), then ack the original."""
        if not self.acks.current(d):
            return  # delivered on a lost connection: it comes back and is judged again
        self.channel.basic_publish(
            self.dlx, d.routing_key, d.body,
            deadletter.properties(d.properties, reason=reason, consumer=self.kind,
                                  routing_key=d.routing_key))
        self.acks.ack([d])
        metrics.DEAD_LETTERED.inc(tags={"kind": self.kind})
        self.stats["dead_lettered"] += 1
        if self.source == "events" and d.properties.message_id:
            try:    # best effort: the dead queue holds the event itself
                self.store.dead_letters.record(self.kind, d.properties.message_id, reason,
                                               routing_key=d.routing_key)
            except PyMongoError:
                log.warning("could not record the dead letter", extra={
                    "consumer": self.kind, "event_id": d.properties.message_id})
