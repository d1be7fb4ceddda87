"""The outbox relay: the one path from MongoDB's outbox to the broker.

Rows are published in batches with publisher confirms and marked published only once confirmed,
so a crash or a lost connection at any point leaves them pending and they are published again
(at-least-once; consumers deduplicate by event id).
"""
from __future__ import annotations

import json
import logging
import threading
from typing import Any

from opentelemetry import trace
from pymongo.errors import PyMongoError

from actors.bus import metrics
from actors.bus.connection import CONNECTION_ERRORS, retrying
from actors.bus.publisher import ConfirmPublisher, Outgoing
from actors.store import Store
from contracts import telemetry
from contracts.settings import Config

log = logging.getLogger("replydesk.bus.relay")

RELAY_ERRORS: tuple[type[BaseException], ...] = CONNECTION_ERRORS + (PyMongoError,)


class OutboxRelay:
    """Publishes pending outbox rows; `run_once()` for one batch, `start()` for a daemon thread."""

    def __init__(self, config: Config, store: Store | None = None):
        self.config = config
        self.store = store or Store.from_config(config)
        self.batch_size = config.app.bus.confirm_batch
        self._poll_s = config.app.bus.relay_poll_s
        self._publisher = ConfirmPublisher(config, "relay")
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        """Publish one batch of pending rows; returns how many the broker confirmed."""
        rows = self.store.outbox.pending(self.batch_size)
        if not rows:
            return 0
        spans = [_publish_span(row) for row in rows]
        ok = self._publisher.publish([_outgoing(row, span) for row, span in zip(rows, spans)])
        for span, good in zip(spans, ok):
            if span is not None:
                span.set_attribute("confirmed", good)
                span.end()
        confirmed = [row["_id"] for row, good in zip(rows, ok) if good]
        self.store.outbox.mark_published(confirmed)
        metrics.PUBLISHED.inc(len(confirmed))
        return len(confirmed)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="outbox-relay", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)
        else:
            self._publisher.close()

    def _loop(self) -> None:
        """Poll fast while idle, go again at once after a full batch, back off while failing."""
        policy = retrying(self.config, self._stopping, errors=RELAY_ERRORS)
        try:
            while not self._stopping.is_set():
                try:
                    published = policy(self.run_once)
                except RELAY_ERRORS:
                    continue  # only reached when stopping: the policy retries otherwise
                except Exception:  # a bug must not silently end the only path to the broker
                    log.exception("outbox relay pass failed")
                    self._stopping.wait(self.config.app.bus.reconnect_max_s)
                    continue
                if published < self.batch_size:
                    self._publisher.pump(self._poll_s)
        finally:
            self._publisher.close()


def _publish_span(row: dict[str, Any]) -> trace.Span | None:
    """A `bus.publish` span under the row's trace (rows written outside a trace get none)."""
    carrier = row.get("headers") or {}
    if "traceparent" not in carrier:
        return None
    return telemetry.tracer().start_span("bus.publish", context=telemetry.extract(carrier),
                                         attributes=telemetry.attributes(
                                             event_id=row["_id"], routing_key=row["routing_key"]))


def _outgoing(row: dict[str, Any], span: trace.Span | None) -> Outgoing:
    headers: dict[str, Any] = dict(row.get("headers") or {})
    if span is not None:
        with trace.use_span(span, end_on_exit=False):
            headers.update(telemetry.inject())
    body: str = row["body"]
    headers["schema_version"] = json.loads(body).get("schema_version")
    return Outgoing(routing_key=row["routing_key"], body=body.encode("utf-8"), message_id=row["_id"],
                    headers=headers)
