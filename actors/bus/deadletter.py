"""Dead letters: what we attach when we dead-letter on purpose, and how operators read them back.

RabbitMQ's own dead-lettering (delivery limit exceeded) only records `x-death` with a reason like
"delivery_limit"; when the consumer gives up it publishes to the dead-letter exchange itself with
the error text, the consumer kind and the original routing key, then acks the original.
"""
from __future__ import annotations

import hashlib
from typing import Any

import pika
from pydantic import ValidationError

from actors.bus.connection import client_name, connect
from actors.bus.topology import Topology
from contracts.errors import DeadLetter
from contracts.events import DeadLetterSeen
from contracts.settings import Config

REASON = "x-replydesk-reason"
CONSUMER = "x-replydesk-consumer"
ROUTING_KEY = "x-replydesk-routing-key"
MAX_REASON_CHARS = 2000


def reason_of(exc: BaseException) -> str:
    """A one-line, bounded reason. Validation errors list field and problem, never the input."""
    if isinstance(exc, ValidationError):
        parts = [f"{'.'.join(str(x) for x in e['loc']) or 'body'}: {e['msg']}"
                 for e in exc.errors(include_url=False, include_input=False)]
        text = f"invalid event ({exc.error_count()} errors): " + "; ".join(parts)
    else:
        text = exc.reason if isinstance(exc, DeadLetter) else f"{type(exc).__name__}: {exc}"
    return text.replace("\n", " ")[:MAX_REASON_CHARS]


def properties(original: pika.BasicProperties, *, reason: str, consumer: str,
               routing_key: str) -> pika.BasicProperties:
    """The original message's properties and headers plus why, where and from which key."""
    headers = dict(original.headers or {})
    headers.update({REASON: reason, CONSUMER: consumer, ROUTING_KEY: routing_key})
    return pika.BasicProperties(content_type=original.content_type,
                                delivery_mode=pika.DeliveryMode.Persistent,
                                message_id=original.message_id, type=original.type,
                                timestamp=original.timestamp, app_id=original.app_id, headers=headers)


def seen(props: pika.BasicProperties, routing_key: str, body: bytes) -> DeadLetterSeen:
    """A dead letter as the notifier reads it; its id names the message and who gave up on it."""
    headers = dict(props.headers or {})
    death = (headers.get("x-death") or [{}])[0]
    consumer = str(headers.get(CONSUMER) or death.get("queue") or "broker")
    key = str(headers.get(ROUTING_KEY) or (death.get("routing-keys") or [routing_key])[0])
    ident = props.message_id or hashlib.sha256(body).hexdigest()[:24]
    return DeadLetterSeen(event_id=f"dead:{consumer}:{ident}", routing_key=key, consumer=consumer,
                          reason=str(headers.get(REASON) or death.get("reason") or "unknown")[:MAX_REASON_CHARS],
                          message_id=props.message_id)


def describe(method: Any, props: pika.BasicProperties, body: bytes) -> dict[str, Any]:
    """body, reason, routing_key, consumer for a message read from the dead queue."""
    headers = dict(props.headers or {})
    death = (headers.get("x-death") or [{}])[0]
    keys = death.get("routing-keys") or [method.routing_key]
    return {
        "body": body.decode("utf-8", errors="replace"),
        "reason": headers.get(REASON) or death.get("reason"),
        "routing_key": headers.get(ROUTING_KEY) or keys[0],
        "consumer": headers.get(CONSUMER) or death.get("queue"),
        "message_id": props.message_id,
        "headers": headers,
    }


def dead_letters(config: Config, limit: int = 100, *, remove: bool = False) -> list[dict[str, Any]]:
    """Up to `limit` messages of the dead queue, oldest first. They stay queued unless `remove`."""
    conn = connect(config, client_name(config, "dead-letters"))
    try:
        channel = conn.channel()
        out: list[dict[str, Any]] = []
        last_tag = None
        for _ in range(limit):
            method, props, body = channel.basic_get(Topology.of(config).dead_queue, auto_ack=False)
            if method is None:
                break
            out.append(describe(method, props, body))
            last_tag = method.delivery_tag
        if last_tag is not None:
            if remove:
                channel.basic_ack(last_tag, multiple=True)
            else:
                channel.basic_nack(last_tag, multiple=True, requeue=True)
        return out
    finally:
        conn.close()
