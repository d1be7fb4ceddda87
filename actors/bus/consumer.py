"""A queue consumer that acks only once an event's effect is done, exactly once per event id.

The consumer receives, parses and dispatches on its own thread (pika connections are not
thread-safe) and composes small middleware, each readable alone:

- de-duplication (actors/bus/dedupe.py): a copy of an event id in hand joins its work; ids already
  processed are acked unhandled. The kind's choice is explicit: `ProcessedMarks()` (a mark per
  event, the default) or `EffectKeyed(key)` (the effect's own unique key is the mark);
- tracing (actors/bus/tracing.py): each handler call in a `bus.consume` span;
- the running effects (actors/bus/running.py): a handler returns None (effect done) or a
  `ray.ObjectRef` / `concurrent.futures.Future` (running elsewhere, many at once), polled between
  short `process_data_events` slices;
- batched ack (actors/bus/batching.py, actors/bus/acks.py): done effects are marked in one bulk
  write per batch by a marker thread (or not at all, effect-keyed), then acked with a multiple-ack;
- and, for a failed handler call, a chain tried in order until one takes it: dead-letter
  (actors/bus/deadlettering.py: `DeadLetter` / `PermanentError` on the first delivery), transient
  wait (actors/bus/waiting.py: a dead or restarting target, or an unreachable MongoDB, waited for
  without counting against the limit, up to `bus.transient_retry_s`), delivery limit
  (actors/bus/limit.py: requeued until `bus.delivery_limit`, then dead-lettered with the last
  error, so nothing is dropped silently).

An invalid delivery goes to the dead queue with its validation error. After a lost connection,
unacked deliveries come back and are recognised by id; effects still running keep running and are
marked when they finish.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pydantic import ValidationError
from pymongo.errors import PyMongoError

from actors.bus import deadletter, metrics
from actors.bus.acks import Acks
from actors.bus.batching import BatchedAck
from actors.bus.connection import CONNECTION_ERRORS, client_name, connect
from actors.bus.deadlettering import DeadLettering
from actors.bus.dedupe import Dedupe, Deduplication, EffectKeyed, ProcessedMarks
from actors.bus.delivery import Delivery, Work
from actors.bus.limit import DeliveryLimit
from actors.bus.running import Running, Settled
from actors.bus.topology import Topology
from actors.bus.tracing import Handler, Tracing
from actors.bus.waiting import TRANSIENT, TransientWait, transient
from actors.store import Store
from contracts.errors import root_cause
from contracts.events import Event, parse_event
from contracts.settings import Config

__all__ = ["GC_THRESHOLD", "TRANSIENT", "Consumer", "Dedupe", "EffectKeyed", "Handler",
           "ProcessedMarks", "Settled", "transient", "tune_gc"]

log = logging.getLogger("replydesk.bus.consumer")

PROCESSED_MARKS = ProcessedMarks()   # the default: right for any handler, at two writes per event

# The young generation collected after this many net allocations instead of CPython's 700: a
# consumer at thousands of events a second allocates short-lived frames, headers and models by
# the million and gen-0 collections were its largest single cost. Measured with bench_bus
# (2026-12-04, two paired runs of 3 rounds each): one-write events/s 10.3k/10.1k vs 9.5k/8.7k,
# 54.3/56.1 % of raw pika vs 52.5/51.8 %. At most a few MB more garbage wait for a collection.
GC_THRESHOLD = (50_000, 20, 20)


def tune_gc() -> tuple[int, int, int]:
    """Set GC_THRESHOLD for this process (a process whose main work is consuming: the router's);
    returns the thresholds it had."""
    import gc
    before = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLD)
    return before


class Consumer:
    """Consumes the quorum queue of `kind` on its own thread; see the module docstring."""

    def __init__(self, config: Config, kind: str, routing_keys: Iterable[str], handler: Handler, *,
                 dedupe: Dedupe = PROCESSED_MARKS, max_in_flight: int | None = None,
                 store: Store | None = None, source: str = "events",
                 on_settled: Settled | None = None):
        bus = config.app.bus
        self.config = config
        self.kind = kind
        self.routing_keys = list(routing_keys)
        self.handler = handler
        # "events": the kind's queue bound to the event exchange; "dead": a copy of every dead
        # letter (bound to the dead-letter exchange), each delivery read as a DeadLetterSeen
        if source not in ("events", "dead"):
            raise ValueError(f"consumer {kind!r}: source must be 'events' or 'dead', not {source!r}")
        self.source = source
        self.prefetch = bus.prefetch
        self.max_in_flight = max_in_flight or bus.max_in_flight or bus.prefetch
        self.topology = Topology.of(config)
        self.queue = self.topology.queue(kind)
        self.store = store or Store.from_config(config)
        self.name = client_name(config, f"consumer-{kind}")
        self.ready = threading.Event()       # set while consuming (queue declared and bound)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._incoming: deque[Delivery] = deque()
        self._failed: list[tuple[Work, BaseException]] = []
        self._depth_due = 0.0
        # what this consumer did (ops and tests read it; written by the consumer thread only)
        self.stats = {"handled": 0, "duplicates": 0, "requeued": 0, "dead_lettered": 0, "waited": 0}
        # the middleware (consumer thread only, but the marker thread of `batched_ack`)
        self.acks = Acks()
        self.running = Running(kind, on_settled)
        self._running = self.running.by_id           # event id -> work whose result is pending
        self.tracing = Tracing(kind, handler)
        self.batched_ack = BatchedAck(config, kind, dedupe, self.store, self.acks, self.stats,
                                      self._stopping)
        self.transient_wait = TransientWait(kind, config, self.stats)
        self.dedupe = Deduplication(kind, dedupe, self.store, self.acks, self.stats,
                                    (self._running, self.batched_ack.done, self.batched_ack.marking,
                                     self.transient_wait.waiting))
        self.dead_lettering = DeadLettering(kind, source, self.topology.dlx, self.store, self.acks,
                                            self.stats)
        self.delivery_limit = DeliveryLimit(bus.delivery_limit, self.dead_lettering, self.acks,
                                            self.stats)
        # a failed handler call goes down this chain until one middleware takes it (the last always does)
        self.failure_chain = (self.dead_lettering, self.transient_wait, self.delivery_limit)

    # ------------------------------------------------------------------ lifecycle
    def start(self, wait_s: float = 30.0) -> None:
        """Start the consumer thread; returns once it consumes (or after `wait_s`)."""
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self.run, name=f"consumer-{self.kind}", daemon=True)
            self._thread.start()
        self.ready.wait(wait_s)

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop taking deliveries, let running effects finish (bounded), settle them, disconnect."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)

    def run(self) -> None:
        """Consume until stop(), reconnecting with backoff; blocking (the thread's target)."""
        # What an earlier run left unsettled was never acked: the broker redelivers it, and it
        # must be handled afresh rather than wait on work that no longer exists.
        self.running.reset()
        self.transient_wait.reset()
        self._failed.clear()
        self.batched_ack.start()
        try:
            while not self._stopping.is_set():
                try:
                    self._open()
                    while not self._stopping.is_set():
                        self._step()
                    self._drain()
                except CONNECTION_ERRORS as exc:
                    if not self._stopping.is_set():
                        log.warning("consumer connection lost, reconnecting", extra={
                            "consumer": self.kind, "error": f"{type(exc).__name__}: {exc}",
                            "running": len(self._running)})
                finally:
                    self._close()
        finally:
            self.ready.clear()
            self.batched_ack.stop()

    # ------------------------------------------------------------------ connection
    def _open(self) -> None:
        self._conn = connect(self.config, self.name, self._stopping, give_up_after_s=None)
        self.acks.new_connection()
        self._incoming.clear()        # deliveries of the old channel come back by themselves
        self.transient_wait.reset()
        channel = self._conn.channel()
        self.topology.declare_base(channel)
        if self.source == "dead":
            self.topology.declare_dead_watch(channel, self.kind)
        else:
            self.topology.declare_queue(channel, self.kind, self.routing_keys)
        channel.basic_qos(prefetch_count=self.prefetch)
        dead_channel = self._conn.channel()
        dead_channel.confirm_delivery()
        self.dead_lettering.channel = dead_channel
        channel.basic_consume(self.queue, self._on_message, consumer_tag=self.name)
        self._channel = self.acks.channel = channel
        self.ready.set()
        log.info("consuming", extra={"consumer": self.kind, "queue": self.queue,
                                     "routing_keys": self.routing_keys,
                                     "dedupe": str(self.dedupe.strategy)})

    def _close(self) -> None:
        self.ready.clear()
        conn, self._conn = self._conn, None
        self._channel = self.acks.channel = self.dead_lettering.channel = None
        if conn is not None and conn.is_open:
            try:
                conn.close()
            except CONNECTION_ERRORS:
                pass

    def _on_message(self, _ch: Any, method: Any, props: pika.BasicProperties, body: bytes) -> None:
        self._incoming.append(Delivery(method.delivery_tag, self.acks.generation, method.routing_key,
                                       props, body))
        self.acks.received(method.delivery_tag)

    # ------------------------------------------------------------------ the loop
    def _step(self) -> None:
        assert self._conn is not None
        wait = 0.0 if self._incoming else (0.002 if self._running or self.batched_ack.marking else 0.05)
        self._conn.process_data_events(time_limit=wait)
        if self.transient_wait.waiting:
            self.transient_wait.retry_due(self._call_again, self._has_room)
        self._dispatch()
        self.running.poll(self.batched_ack.done, self._failed)
        self._settle()
        self._report_depth()

    def _drain(self) -> None:
        """On stop: no new deliveries; finish what is running so its effect is marked and acked."""
        assert self._channel is not None and self._conn is not None
        self._channel.basic_cancel(self.name)
        self._incoming.clear()      # not started: requeued by the broker when we disconnect
        deadline = time.monotonic() + 10.0
        while (self._running or self.batched_ack.done or self.batched_ack.marking or self._failed) \
                and time.monotonic() < deadline:
            self._conn.process_data_events(time_limit=0.01)
            self.running.poll(self.batched_ack.done, self._failed)
            self._settle()

    def _dispatch(self) -> None:
        """Validate, deduplicate and hand new deliveries to the handler."""
        room = self.max_in_flight - len(self._running)
        if not self._incoming or room <= 0:
            return
        batch = [self._incoming.popleft() for _ in range(min(room, len(self._incoming)))]
        parsed: list[tuple[Delivery, Event]] = []
        for d in batch:
            try:
                event = deadletter.seen(d.properties, d.routing_key, d.body) if self.source == "dead" \
                    else parse_event(d.body)
            except ValidationError as exc:
                self.dead_lettering.publish(d, deadletter.reason_of(exc))
                continue
            parsed.append((d, event))
        fresh = self.dedupe.join(parsed)
        try:
            todo = self.dedupe.unseen(fresh)
        except PyMongoError:
            log.exception("dedupe lookup failed; retrying the batch", extra={"consumer": self.kind})
            retry = [d for w, _ in fresh.values() for d in w.deliveries()]
            self._incoming.extendleft(reversed(sorted(retry, key=lambda d: d.tag)))
            self._stopping.wait(self.config.app.bus.reconnect_initial_s)
            return
        for work, event in todo:
            self._call(work, event)

    def _has_room(self) -> bool:
        return len(self._running) < self.max_in_flight

    def _call_again(self, work: Work) -> None:
        self._call(work, work.event)

    def _call(self, work: Work, event: Event) -> None:
        work.event = event
        try:
            result = self.tracing.call(work, event)
        except Exception as exc:
            self._failed.append((work, exc))
            return
        if not self.running.add(work, result):
            self.batched_ack.done[work.event_id] = work

    # ------------------------------------------------------------------ settling
    def _settle(self) -> None:
        self.batched_ack.settle()
        failed, self._failed = self._failed, []
        for work, exc in failed:
            self._on_failure(work, exc)

    def _on_failure(self, work: Work, exc: BaseException) -> None:
        d = work.delivery
        context = {"consumer": self.kind, "event_id": work.event_id, "routing_key": d.routing_key,
                   "attempt": d.attempt, "error": deadletter.reason_of(root_cause(exc))}
        for middleware in self.failure_chain:
            if middleware.on_failure(work, exc, context):
                return

    def _report_depth(self) -> None:
        now = time.monotonic()
        if now < self._depth_due:
            return
        self._depth_due = now + self.config.app.bus.depth_interval_s
        for queue in (self.queue, self.topology.dead_queue):
            frame = self._channel.queue_declare(queue, passive=True)
            metrics.QUEUE_DEPTH.set(frame.method.message_count, tags={"queue": queue})
