"""The outbox relay: the one path from MongoDB's outbox to the broker.

It tails the outbox (see actors.store.outbox: change stream in commit order, a fallback scan when
the saved position cannot be resumed) and publishes batches with publisher confirms. Only when a
whole batch is confirmed does it save its position, one small write per batch, so a crash or a
lost connection at any point resumes before the unconfirmed rows and publishes them again
(at-least-once; consumers deduplicate by event id). A batch that is not fully confirmed is kept
and its unconfirmed rows are republished before anything newer is read.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from datetime import timedelta
from typing import Any

from opentelemetry import trace
from pymongo.errors import PyMongoError

from actors.bus import metrics
from actors.bus.connection import CONNECTION_ERRORS, retrying
from actors.bus.publisher import ConfirmPublisher, Outgoing
from actors.store import Store
from actors.store.outbox import OutboxReader, Position
from contracts import telemetry
from contracts.settings import Config

log = logging.getLogger("replydesk.bus.relay")

RELAY_ERRORS: tuple[type[BaseException], ...] = CONNECTION_ERRORS + (PyMongoError,)


class OutboxRelay:
    """Publishes pending outbox rows; `run_once()` for one batch, `start()` for a daemon thread."""

    def __init__(self, config: Config, store: Store | None = None):
        self.config = config
        self.store = store or Store.from_config(config)
        bus = config.app.bus
        self.batch_size = bus.confirm_batch
        self._poll_s = bus.relay_poll_s
        self._rescan = timedelta(seconds=bus.relay_rescan_s)
        self._idle_save_s = bus.relay_idle_save_s
        self._publisher = ConfirmPublisher(config, "relay")
        self._reader: OutboxReader | None = None
        self._batch: list[dict[str, Any]] = []     # read, not yet all confirmed
        self._batch_position: Position | None = None
        self._saved: Position | None = None
        self._saved_at = 0.0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        """Publish one batch of pending rows; returns how many the broker confirmed."""
        try:
            if not self._batch:
                self._read()
            confirmed = self._publish(self._batch) if self._batch else 0
        except PyMongoError:
            self._reset()   # resume from the saved position: the rows read since come again
            raise
        if not self._batch and self._batch_position is not None:
            self._save(self._batch_position, idle=confirmed == 0)
        return confirmed

    def _read(self) -> None:
        if self._reader is None:
            self._reader = self.store.outbox.reader(self._rescan, self.batch_size)
        self._batch, self._batch_position = self._reader.read(self.batch_size)

    def _publish(self, rows: list[dict[str, Any]]) -> int:
        """Publish `rows`; keep the unconfirmed ones in the batch for the next pass."""
        spans = [_publish_span(row) for row in rows]
        ok = self._publisher.publish([_outgoing(row, span) for row, span in zip(rows, spans)])
        for span, good in zip(spans, ok):
            if span is not None:
                span.set_attribute("confirmed", good)
                span.end()
        self._batch = [row for row, good in zip(rows, ok) if not good]
        confirmed = len(rows) - len(self._batch)
        metrics.PUBLISHED.inc(confirmed)
        return confirmed

    def _save(self, position: Position, idle: bool) -> None:
        """Save after every confirmed batch; while idle only when it moved, every idle_save_s."""
        now = time.monotonic()
        if position == self._saved or (idle and now - self._saved_at < self._idle_save_s):
            return
        self.store.outbox.save_position(position)
        self._saved, self._saved_at = position, now

    def _reset(self) -> None:
        reader, self._reader = self._reader, None
        self._batch, self._batch_position = [], None
        if reader is not None:
            try:
                reader.close()
            except PyMongoError:
                pass

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
            self._reset()
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
            self._reset()
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
    version = row.get("schema_version")  # rows queued before it was stored carry it in the body only
    headers["schema_version"] = version if version is not None else json.loads(body).get("schema_version")
    return Outgoing(routing_key=row["routing_key"], body=body.encode("utf-8"), message_id=row["_id"],
                    headers=headers)
