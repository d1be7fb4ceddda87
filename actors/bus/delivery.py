"""What the consumer holds: one delivery of the broker, and one event id being handled.

Both are created per delivery at thousands a second, so they carry no more than the consumer's
middleware need (see actors/bus/consumer.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pika

TRACE_HEADERS = ("traceparent", "tracestate")


@dataclass
class Delivery:
    tag: int
    generation: int            # which connection delivered it: tags are only valid on that channel
    routing_key: str
    properties: pika.BasicProperties
    body: bytes

    @property
    def attempt(self) -> int:
        """1 on first delivery; quorum queues count returns in x-delivery-count."""
        return int((self.properties.headers or {}).get("x-delivery-count", 0)) + 1

    @property
    def carrier(self) -> dict[str, str]:
        headers = self.properties.headers or {}
        return {k: str(headers[k]) for k in TRACE_HEADERS if k in headers}


@dataclass
class Work:
    """One event id being handled, with any duplicate deliveries of it that arrived meanwhile."""
    event_id: str
    delivery: Delivery
    result: Any = None                        # the handler's ObjectRef / Future while running
    duplicates: tuple[Delivery, ...] = ()     # (a tuple: most events have none, and no list then)
    event: Any = None                         # the parsed event (handed again after a delay)
    waits: int = 0                            # delayed retries after a dead/restarting target
    first_wait: float = 0.0
    due: float = 0.0

    def deliveries(self) -> tuple[Delivery, ...]:
        """The first delivery and every duplicate: settled together."""
        return (self.delivery, *self.duplicates)
