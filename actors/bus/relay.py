"""The outbox relay: the one path from MongoDB's outbox to the broker.

It tails the outbox (see actors.store.outbox: change stream in commit order, a fallback scan when
the saved position cannot be resumed) and publishes batches with publisher confirms. Up to
IN_FLIGHT batches are on the wire at once: the next batch is read from MongoDB and published while
the broker confirms the previous ones, so the relay never idles on either. Positions are saved in
read order and only for the oldest batch once it is wholly confirmed (one small write per batch),
so a crash or a lost connection at any point resumes before every unconfirmed row and publishes
it again (at-least-once; consumers deduplicate by event id). Rows of a batch that were not
confirmed stay in place in the window and are republished before its position can be saved.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from opentelemetry import trace
from pymongo.errors import PyMongoError

from actors.bus import metrics
from actors.bus.connection import CONNECTION_ERRORS, retrying
from actors.bus.publisher import ConfirmPublisher, Outgoing, Sent
from actors.store import Store
from actors.store.outbox import OutboxReader, Position
from contracts import telemetry
from contracts.settings import Config

log = logging.getLogger("replydesk.bus.relay")

RELAY_ERRORS: tuple[type[BaseException], ...] = CONNECTION_ERRORS + (PyMongoError,)
# Batches on the wire at once: two already hide the confirm round trip behind the next read; a
# third absorbs jitter. More only grows what a lost connection makes us republish.
IN_FLIGHT = 3


@dataclass
class _Batch:
    """Outbox rows read together and the position that covers them (and everything before)."""
    rows: list[dict[str, Any]]
    position: Position
    sent: Sent | None = None                       # None: (re)publish before waiting on it
    spans: list[trace.Span | None] = field(default_factory=list)


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
        self._window: deque[_Batch] = deque()       # oldest first; positions saved in this order
        self._idle_position: Position | None = None  # read position while nothing is in flight
        self._saved: Position | None = None
        self._saved_at = 0.0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        """Fill the window with pending rows, then settle its oldest batch; returns how many rows
        of that batch the broker confirmed (0 when nothing is pending)."""
        try:
            self._fill()
            if not self._window:
                if self._idle_position is not None:
                    self._save(self._idle_position, idle=True)
                return 0
            return self._settle_oldest()
        except PyMongoError:
            self._reset()   # resume from the saved position: the rows read since come again
            raise

    def _fill(self) -> None:
        """Republish unconfirmed batches, then read and publish new ones until the window is full
        or the outbox is drained (a short read means nothing more is committed yet)."""
        for batch in self._window:
            if batch.sent is None:
                self._send(batch)
        while len(self._window) < IN_FLIGHT:
            if self._reader is None:
                self._reader = self.store.outbox.reader(self._rescan, self.batch_size)
            rows, position = self._reader.read(self.batch_size)
            if not rows:
                self._idle_position = position
                return
            batch = _Batch(rows, position)
            self._window.append(batch)
            self._idle_position = None
            self._send(batch)
            if len(rows) < self.batch_size:
                return

    def _send(self, batch: _Batch) -> None:
        self._publisher.open()      # a broker outage raises here, before any span is started
        batch.spans = [_publish_span(row) for row in batch.rows]
        batch.sent = self._publisher.send([_outgoing(row, span) for row, span in zip(batch.rows, batch.spans)])

    def _settle_oldest(self) -> int:
        """Wait for the oldest batch; save its position when whole, else keep what is unconfirmed
        (of it and of any later batch a lost connection failed) for republishing. Returns how
        many rows these batches had confirmed."""
        oldest = self._window[0]
        assert oldest.sent is not None
        self._publisher.wait(oldest.sent)
        confirmed = self._close_spans(oldest)
        for batch in self._window:
            if batch is not oldest and batch.sent is not None and batch.sent.failed:
                confirmed += self._close_spans(batch)
        metrics.PUBLISHED.inc(confirmed)
        if not oldest.rows:
            self._window.popleft()
            self._save(oldest.position, idle=False)
        return confirmed

    @staticmethod
    def _close_spans(batch: _Batch) -> int:
        """End the batch's publish spans; keep only its unconfirmed rows, marked for republishing."""
        assert batch.sent is not None
        ok = batch.sent.ok
        for span, good in zip(batch.spans, ok):
            if span is not None:
                span.set_attribute("confirmed", good)
                span.end()
        confirmed = sum(ok)
        batch.rows = [row for row, good in zip(batch.rows, ok) if not good]
        batch.sent, batch.spans = None, []
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
        for batch in self._window:      # still on the wire: their confirms no longer matter
            for span in batch.spans:
                if span is not None:
                    span.end()
        self._window.clear()
        self._idle_position = None
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
