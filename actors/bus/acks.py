"""Batched ack middleware: the current channel's unacked deliveries, acked in as few frames as can be.

Delivery tags are only valid on the channel that delivered them: each delivery carries the
generation of its connection, and one of an older connection is never acked or nacked here (the
broker hands it again by itself). The tags of the current channel are kept in delivery order, so
a set of settled deliveries is acked with one multiple-ack for the contiguous oldest run and singly
for the rest.
"""
from __future__ import annotations

from collections.abc import Iterable

from pika.adapters.blocking_connection import BlockingChannel

from actors.bus.delivery import Delivery


class Acks:
    """Owned by the consumer thread (pika channels are not thread-safe)."""

    def __init__(self) -> None:
        self.channel: BlockingChannel | None = None   # set while consuming
        self.generation = 0
        self._unsettled: dict[int, None] = {}         # current channel's unacked tags, in order

    def new_connection(self) -> None:
        """A new connection: tags start afresh; the old channel's deliveries come back by themselves."""
        self.generation += 1
        self._unsettled.clear()

    def received(self, tag: int) -> None:
        self._unsettled[tag] = None

    def current(self, d: Delivery) -> bool:
        return d.generation == self.generation and self.channel is not None

    def ack(self, deliveries: Iterable[Delivery]) -> None:
        """Ack with one multiple-ack for the contiguous oldest run, singly for the rest."""
        tags = {d.tag for d in deliveries if self.current(d)}
        if not tags:
            return
        last = None
        for tag in self._unsettled:
            if tag not in tags:
                break
            last = tag
        if last is not None:
            self.channel.basic_ack(last, multiple=True)
            for tag in [t for t in self._unsettled if t <= last]:
                del self._unsettled[tag]
                tags.discard(tag)
        for tag in tags:
            self.channel.basic_ack(tag)
            self._unsettled.pop(tag, None)

    def requeue(self, deliveries: Iterable[Delivery]) -> None:
        """Nack the current channel's deliveries back to the queue (the broker counts the return)."""
        for d in deliveries:
            if self.current(d):
                self.channel.basic_nack(d.tag, requeue=True)
                self._unsettled.pop(d.tag, None)
