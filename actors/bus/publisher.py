"""Publishing with batched publisher confirms.

pika's BlockingChannel waits for the broker's confirm after every message (~1.8k msg/s); the
asynchronous SelectConnection lets us publish a whole batch, then wait once while the broker acks
delivery tags (often many at a time with `multiple`). The ioloop is driven from the caller's thread
(start until the batch is settled or a timeout fires), so the publisher reads as synchronous code
and needs no thread of its own. One ConfirmPublisher belongs to one thread.

`send()` puts a batch on the wire and returns at once, so a caller can prepare the next batch (the
relay reads MongoDB) while the broker confirms this one; `wait()` settles a sent batch. Several
batches may be in flight; a timeout or a lost connection fails every unsettled one.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import pika
from pika.exceptions import AMQPConnectionError, AMQPError
from pika.spec import Basic

from actors.bus.connection import client_name, parameters
from actors.bus.topology import Topology
from contracts.settings import Config

log = logging.getLogger("replydesk.bus")


@dataclass(frozen=True)
class Outgoing:
    """One message for the event exchange. `headers` carry the trace context and schema version."""
    routing_key: str
    body: bytes
    message_id: str
    headers: dict[str, Any] = field(default_factory=dict)

    def properties(self) -> pika.BasicProperties:
        return pika.BasicProperties(content_type="application/json",
                                    delivery_mode=pika.DeliveryMode.Persistent,
                                    message_id=self.message_id, type=self.routing_key,
                                    headers=self.headers, timestamp=int(time.time()), app_id="replydesk")


class Sent:
    """A batch on the wire: `ok[i]` becomes True when the broker confirms message i."""

    def __init__(self, size: int):
        self.ok = [False] * size
        self.waiting = size
        self.failed = False

    @property
    def settled(self) -> bool:
        return self.waiting == 0 or self.failed


class ConfirmPublisher:
    """Publishes batches to the event exchange and reports which messages the broker confirmed."""

    def __init__(self, config: Config, role: str = "publisher"):
        self._params = parameters(config, client_name(config, role))
        self._exchange = Topology.of(config).exchange
        self._confirm_timeout_s = config.app.bus.confirm_timeout_s
        self._conn: pika.SelectConnection | None = None
        self._channel: Any = None
        self._ready = False
        self._error: BaseException | None = None
        self._seq = 0                       # the broker numbers confirms per channel from 1
        self._pending: dict[int, tuple[Sent, int]] = {}  # delivery tag -> (batch, index in it)
        self._until: Callable[[], bool] | None = None

    @property
    def is_open(self) -> bool:
        return self._ready and self._conn is not None and self._conn.is_open

    # ------------------------------------------------------------------ public
    def open(self) -> None:
        """Connect and enable confirm mode (no-op when open); raises the broker's error."""
        if self.is_open:
            return
        self.close()
        self._drop_pending()
        self._error, self._ready, self._seq = None, False, 0
        self._conn = pika.SelectConnection(self._params, on_open_callback=self._on_open,
                                           on_open_error_callback=self._on_open_error,
                                           on_close_callback=self._on_closed)
        self._run(lambda: self._ready or self._error is not None, self._params.stack_timeout)
        if not self._ready:
            error = self._error or AMQPConnectionError("timed out opening the publisher connection")
            self.close()
            raise error

    def publish(self, messages: Sequence[Outgoing]) -> list[bool]:
        """Publish all, wait once for their confirms; True where the broker confirmed the message."""
        return self.wait(self.send(messages))

    def send(self, messages: Sequence[Outgoing]) -> Sent:
        """Publish and flush to the socket without waiting for confirms; settle with `wait()`."""
        self.open()
        batch = Sent(len(messages))
        try:
            for i, m in enumerate(messages):
                self._channel.basic_publish(self._exchange, m.routing_key, m.body, m.properties())
                self._seq += 1
                self._pending[self._seq] = (batch, i)
            self._flush()
        except AMQPError as exc:
            self._error = exc
        if self._error is not None:
            self._fail(len(messages))
        return batch

    def wait(self, batch: Sent) -> list[bool]:
        """Drive the connection until `batch` is confirmed; on a timeout or a lost connection the
        rest stay False and the connection is dropped, failing every batch still in flight (a
        late confirm must never be matched to a later batch); the next send reconnects."""
        self._run(lambda: batch.settled or self._error is not None, self._confirm_timeout_s)
        if not batch.settled or self._error is not None:
            self._fail(len(batch.ok))
        return batch.ok

    def _flush(self) -> None:
        """Write the buffered frames to the socket (what BlockingConnection does after a publish):
        SelectConnection only writes from its ioloop, so without this nothing leaves until `wait`.
        `_get_write_buffer_size` is pika-internal, but pika has no public way to ask whether frames
        wait unsent; its own BlockingConnection flushes with the same call."""
        conn = self._conn
        if conn is None or not conn.is_open or not conn._get_write_buffer_size():
            return
        deadline = time.monotonic() + self._confirm_timeout_s
        ioloop = conn.ioloop
        ioloop.activate_poller()
        try:
            while (conn.is_open and self._error is None and conn._get_write_buffer_size()
                   and time.monotonic() < deadline):
                ioloop.poll()
                ioloop.process_timeouts()
        finally:
            ioloop.deactivate_poller()

    def _fail(self, size: int) -> None:
        unconfirmed = len(self._pending)
        if unconfirmed or self._error is not None:
            log.warning("publish batch not fully confirmed", extra={
                "unconfirmed": unconfirmed, "batch": size,
                "error": f"{type(self._error).__name__}: {self._error}" if self._error else "timeout"})
        self._drop_pending()
        self.close()

    def _drop_pending(self) -> None:
        """Fail every batch still in flight: its confirms can no longer arrive on a new channel."""
        for batch, _ in self._pending.values():
            batch.failed = True
        self._pending.clear()

    def pump(self, seconds: float) -> None:
        """Idle for `seconds` while serving heartbeats (instead of sleeping with a silent socket)."""
        if self.is_open:
            self._run(lambda: self._error is not None, seconds)
        else:
            time.sleep(seconds)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        self._ready = False
        if conn is None:
            return
        if not (conn.is_closed or conn.is_closing):
            try:
                conn.close()
            except AMQPError:  # still opening: abort is all there is to do
                pass
        if not conn.is_closed:
            self._conn = conn
            self._run(lambda: conn.is_closed, 5.0)
            self._conn = None
        conn.ioloop.close()

    # ------------------------------------------------------------------ ioloop plumbing
    def _run(self, until: Callable[[], bool], timeout_s: float) -> None:
        """Drive the ioloop in this thread until `until()` holds or `timeout_s` passes."""
        if until() or self._conn is None:
            return
        ioloop = self._conn.ioloop
        timer = ioloop.call_later(timeout_s, ioloop.stop)
        self._until = until
        try:
            ioloop.start()
        finally:
            self._until = None
            ioloop.remove_timeout(timer)

    def _wake(self) -> None:
        if self._until is not None and self._until() and self._conn is not None:
            self._conn.ioloop.stop()

    def _on_open(self, conn: pika.SelectConnection) -> None:
        conn.channel(on_open_callback=self._on_channel)

    def _on_channel(self, channel: Any) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=self._on_selected)

    def _on_selected(self, _frame: Any) -> None:
        self._ready = True
        self._wake()

    def _on_open_error(self, _conn: Any, error: BaseException | str) -> None:
        self._error = error if isinstance(error, BaseException) else AMQPConnectionError(str(error))
        self._wake()

    def _on_closed(self, _conn: Any, reason: BaseException) -> None:
        self._error, self._ready = reason, False
        self._wake()

    def _on_channel_closed(self, _channel: Any, reason: BaseException) -> None:
        self._error, self._ready = reason, False
        self._wake()

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        if method.multiple:
            tags = [t for t in self._pending if t <= method.delivery_tag]
        else:
            tags = [method.delivery_tag]
        acked = isinstance(method, Basic.Ack)
        for tag in tags:
            entry = self._pending.pop(tag, None)
            if entry is not None:
                batch, index = entry
                batch.ok[index] = acked
                batch.waiting -= 1
        if not acked:
            log.warning("broker nacked published messages", extra={"count": len(tags)})
        self._wake()
