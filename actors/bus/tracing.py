"""Tracing middleware: every handler call in a `bus.consume` span.

The span is a child of the publisher's `bus.publish` span (the trace headers of the delivery), and
carries the consumer kind, event id, routing key and attempt; the handler gets the span's own
context as its carrier, so the work it starts elsewhere (a Ray actor) joins the same trace. An
error the handler raises is recorded on the span (status ERROR) and raised again to the consumer.
"""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from opentelemetry.trace import Status, StatusCode

from actors.bus.delivery import Work
from contracts import telemetry

Handler = Callable[[Any, dict[str, str]], "Any | Future | None"]


class Tracing:
    def __init__(self, kind: str, handler: Handler):
        self.kind, self.handler = kind, handler

    def call(self, work: Work, event: Any) -> Any:
        """The handler's result (None, an ObjectRef or a Future); raises what the handler raised."""
        d = work.delivery
        with telemetry.span("bus.consume", d.carrier, consumer=self.kind, event_id=work.event_id,
                            routing_key=d.routing_key, attempt=d.attempt) as span:
            try:
                return self.handler(event, telemetry.inject())
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR))
                error = exc
        raise error
