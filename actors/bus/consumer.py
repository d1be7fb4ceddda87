"""A queue consumer that acks only once an event's effect is done, exactly once per event id.

Per delivery: parse and validate (invalid -> dead queue with the validation error), skip ids this
consumer kind already processed (MongoDB keys; or, with `effect_key`, none: the handler's effect
is keyed and finds itself done), otherwise call the handler. A handler returns None
(effect done) or a `ray.ObjectRef` / `concurrent.futures.Future` (effect running elsewhere): many
run at once, polled between short `process_data_events` slices on the consumer's own thread (pika
connections are not thread-safe). Completed events are marked processed in one bulk write per
batch by a marker thread, so the consumer keeps receiving and dispatching while MongoDB writes;
once a batch's marks are stored the consumer thread acks it (a single multiple-ack for the
contiguous prefix). `DeadLetter` and `PermanentError` (retrying cannot help: a 401, a 404,
a wrong password) go to the dead queue with their reason on the first delivery. A target that
is dead or restarting (Ray's actor errors, `Unavailable`), or a MongoDB that cannot be reached
(`ConnectionFailure`: AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError), is waited for: the delivery stays
unacked and is handed to the handler again after a growing delay, without counting against the
delivery limit, for up to `bus.transient_retry_s`. Any other error is requeued until the delivery
limit, then dead-lettered with the last error, so nothing is dropped silently. After a lost connection, unacked deliveries come back and
are recognised by id; effects still running keep running and are marked when they finish.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from queue import SimpleQueue
from typing import Any, Callable, Iterable

import pika
import ray
from opentelemetry.trace import Status, StatusCode
from pika.adapters.blocking_connection import BlockingChannel
from pydantic import ValidationError
from pymongo.errors import ConnectionFailure, PyMongoError
from ray.exceptions import RayActorError

from actors.bus import deadletter, metrics
from actors.bus.connection import CONNECTION_ERRORS, client_name, connect
from actors.bus.topology import Topology
from actors.store import Store
from contracts import telemetry
from contracts.errors import DeadLetter, PermanentError, Unavailable, root_cause
from contracts.events import Event, parse_event
from contracts.settings import Config

log = logging.getLogger("replydesk.bus.consumer")

Handler = Callable[[Event, dict[str, str]], "ray.ObjectRef | Future | None"]
# told of every handler result once it is settled: (the ObjectRef / Future, its error or None)
Settled = Callable[[Any, "BaseException | None"], None]
TRACE_HEADERS = ("traceparent", "tracestate")


# What the handler needs is out (the target actor dead or restarting, MongoDB unreachable, here
# or inside the actor it called): waited out with the delayed retry, never dead-lettered.
TRANSIENT = (RayActorError, Unavailable, ConnectionFailure)


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


def transient(exc: BaseException) -> bool:
    """The target, or the database it needs, was down: another try after a delay can succeed."""
    return isinstance(exc, TRANSIENT) or isinstance(root_cause(exc), TRANSIENT)


@dataclass
class _Delivery:
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
class _Work:
    """One event id being handled, with any duplicate deliveries of it that arrived meanwhile."""
    event_id: str
    delivery: _Delivery
    result: Any = None                        # the handler's ObjectRef / Future while running
    duplicates: tuple[_Delivery, ...] = ()    # (a tuple: most events have none, and no list then)
    event: Any = None                         # the parsed event (handed again after a delay)
    waits: int = 0                            # delayed retries after a dead/restarting target
    first_wait: float = 0.0
    due: float = 0.0


class Consumer:
    """Consumes the quorum queue of `kind` on its own thread; see the module docstring."""

    def __init__(self, config: Config, kind: str, routing_keys: Iterable[str], handler: Handler, *,
                 max_in_flight: int | None = None, store: Store | None = None,
                 source: str = "events", on_settled: Settled | None = None,
                 effect_key: str | None = None):
        bus = config.app.bus
        self.config = config
        self.kind = kind
        self.routing_keys = list(routing_keys)
        self.handler = handler
        self.on_settled = on_settled
        # One durable write per event: when the handler's effect has a unique key of its own
        # (`effect_key` says which), that key is the dedupe mark and the consumer stores none:
        # a redelivery reaches the handler, which finds its effect done. Without one, processed
        # marks (one bulk write per batch) are the dedupe.
        self.effect_key = effect_key
        # "events": the kind's queue bound to the event exchange; "dead": a copy of every dead
        # letter (bound to the dead-letter exchange), each delivery read as a DeadLetterSeen
        self.source = source
        self.prefetch = bus.prefetch
        self.max_in_flight = max_in_flight or bus.max_in_flight or bus.prefetch
        self.delivery_limit = bus.delivery_limit
        self.topology = Topology.of(config)
        self.queue = self.topology.queue(kind)
        self.store = store or Store.from_config(config)
        self.name = client_name(config, f"consumer-{kind}")
        self.ready = threading.Event()       # set while consuming (queue declared and bound)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._dead_channel: BlockingChannel | None = None
        self._generation = 0
        self._incoming: deque[_Delivery] = deque()
        self._unsettled: dict[int, None] = {}       # current channel's unacked tags, in order
        self._running: dict[str, _Work] = {}        # event id -> work whose result is pending
        self._refs: dict[ray.ObjectRef, _Work] = {} # the running ObjectRefs (polled with ray.wait)
        self._finished: deque[_Work] = deque()      # running Futures that completed (any thread)
        self._done: dict[str, _Work] = {}           # effect done: mark processed, then ack
        self._marking: dict[str, _Work] = {}        # handed to the marker thread, not yet stored
        self._waiting: dict[str, _Work] = {}        # target dead/restarting: handed again at .due
        self._to_mark: SimpleQueue[list[_Work] | None] = SimpleQueue()
        self._marked: deque[list[_Work]] = deque()  # stored by the marker: ack them (our thread)
        self._marker: threading.Thread | None = None
        self._failed: list[tuple[_Work, BaseException]] = []
        self._depth_due = 0.0
        # what this consumer did (ops and tests read it; written by the consumer thread only)
        self.stats = {"handled": 0, "duplicates": 0, "requeued": 0, "dead_lettered": 0, "waited": 0}

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
        for pending in (self._running, self._refs, self._finished, self._done, self._marking,
                        self._waiting):
            pending.clear()
        self._failed.clear()
        self._to_mark, self._marked = SimpleQueue(), deque()
        self._marker = threading.Thread(target=self._mark_loop, args=(self._to_mark, self._marked),
                                        name=f"marker-{self.kind}", daemon=True)
        self._marker.start()
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
            self._to_mark.put(None)
            self._marker.join(10.0)

    # ------------------------------------------------------------------ connection
    def _open(self) -> None:
        self._conn = connect(self.config, self.name, self._stopping, give_up_after_s=None)
        self._generation += 1
        self._incoming.clear()        # deliveries of the old channel come back by themselves
        self._unsettled.clear()
        self._waiting.clear()
        channel = self._conn.channel()
        self.topology.declare_base(channel)
        if self.source == "dead":
            self.topology.declare_dead_watch(channel, self.kind)
        else:
            self.topology.declare_queue(channel, self.kind, self.routing_keys)
        channel.basic_qos(prefetch_count=self.prefetch)
        self._dead_channel = self._conn.channel()
        self._dead_channel.confirm_delivery()
        channel.basic_consume(self.queue, self._on_message, consumer_tag=self.name)
        self._channel = channel
        self.ready.set()
        log.info("consuming", extra={"consumer": self.kind, "queue": self.queue,
                                     "routing_keys": self.routing_keys})

    def _close(self) -> None:
        self.ready.clear()
        conn, self._conn, self._channel, self._dead_channel = self._conn, None, None, None
        if conn is not None and conn.is_open:
            try:
                conn.close()
            except CONNECTION_ERRORS:
                pass

    def _on_message(self, _ch: Any, method: Any, props: pika.BasicProperties, body: bytes) -> None:
        self._incoming.append(_Delivery(method.delivery_tag, self._generation, method.routing_key,
                                        props, body))
        self._unsettled[method.delivery_tag] = None

    # ------------------------------------------------------------------ the loop
    def _step(self) -> None:
        assert self._conn is not None
        wait = 0.0 if self._incoming else (0.002 if self._running or self._marking else 0.05)
        self._conn.process_data_events(time_limit=wait)
        self._retry_due()
        self._dispatch()
        self._poll_running()
        self._settle()
        self._report_depth()

    def _drain(self) -> None:
        """On stop: no new deliveries; finish what is running so its effect is marked and acked."""
        assert self._channel is not None and self._conn is not None
        self._channel.basic_cancel(self.name)
        self._incoming.clear()      # not started: requeued by the broker when we disconnect
        deadline = time.monotonic() + 10.0
        while (self._running or self._done or self._marking or self._failed) \
                and time.monotonic() < deadline:
            self._conn.process_data_events(time_limit=0.01)
            self._poll_running()
            self._settle()

    def _dispatch(self) -> None:
        """Validate, deduplicate and hand new deliveries to the handler."""
        room = self.max_in_flight - len(self._running)
        if not self._incoming or room <= 0:
            return
        batch = [self._incoming.popleft() for _ in range(min(room, len(self._incoming)))]
        fresh: dict[str, tuple[_Work, Event]] = {}
        for d in batch:
            try:
                event = deadletter.seen(d.properties, d.routing_key, d.body) if self.source == "dead" \
                    else parse_event(d.body)
            except ValidationError as exc:
                self._dead_letter(d, deadletter.reason_of(exc))
                continue
            eid = event.event_id
            work = (self._running.get(eid) or self._done.get(eid) or self._marking.get(eid)
                    or self._waiting.get(eid) or (fresh.get(eid) or (None,))[0])
            if work is not None:
                work.duplicates += (d,)     # settled with the first copy, never handled twice
                self.stats["duplicates"] += 1
            else:
                fresh[eid] = (_Work(eid, d), event)
        try:
            seen = set() if self.effect_key else self.store.processed.seen_many(self.kind, list(fresh))
        except PyMongoError:
            log.exception("dedupe lookup failed; retrying the batch", extra={"consumer": self.kind})
            retry = [d for w, _ in fresh.values() for d in (w.delivery, *w.duplicates)]
            self._incoming.extendleft(reversed(sorted(retry, key=lambda d: d.tag)))
            self._stopping.wait(self.config.app.bus.reconnect_initial_s)
            return
        for event_id, (work, event) in fresh.items():
            if event_id in seen:
                self._ack([work.delivery, *work.duplicates])
                self.stats["duplicates"] += 1
            else:
                self._call(work, event)

    def _retry_due(self) -> None:
        """Hand again the events whose dead or restarting target has had its delay."""
        if not self._waiting:
            return
        now = time.monotonic()
        for event_id, work in list(self._waiting.items()):
            if work.due <= now and len(self._running) < self.max_in_flight:
                del self._waiting[event_id]
                self._call(work, work.event)

    def _call(self, work: _Work, event: Event) -> None:
        work.event = event
        d = work.delivery
        with telemetry.span("bus.consume", d.carrier, consumer=self.kind, event_id=work.event_id,
                            routing_key=d.routing_key, attempt=d.attempt) as span:
            try:
                result = self.handler(event, telemetry.inject())
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR))
                self._failed.append((work, exc))
                return
        if isinstance(result, ray.ObjectRef):
            work.result = result
            self._running[work.event_id] = work
            self._refs[result] = work
        elif isinstance(result, Future):
            work.result = result
            self._running[work.event_id] = work
            # queued by whichever thread completes it: polling costs nothing per running Future
            # (defaults, not a closure: fewer objects kept per running event for the GC)
            result.add_done_callback(lambda _f, w=work, finished=self._finished: finished.append(w))
        else:
            self._done[work.event_id] = work

    def _poll_running(self) -> None:
        """Settle the handler results that completed: Futures queued themselves on completion,
        ObjectRefs are asked of Ray in one `ray.wait`."""
        settled: list[_Work] = []
        while self._finished:
            settled.append(self._finished.popleft())
        if self._refs:
            ready = ray.wait(list(self._refs), num_returns=len(self._refs), timeout=0)[0]
            settled.extend(self._refs.pop(r) for r in ready)
        for work in settled:
            event_id, r = work.event_id, work.result
            if self._running.get(event_id) is not work:
                continue    # started before run() began afresh: its redelivery is handled anew
            del self._running[event_id]
            error: BaseException | None = None
            try:
                ray.get(r) if isinstance(r, ray.ObjectRef) else r.result()
                self._done[event_id] = work
            except Exception as exc:
                error = exc
                self._failed.append((work, exc))
            if self.on_settled is not None:
                try:
                    self.on_settled(r, error)
                except Exception:
                    log.exception("on_settled hook failed", extra={"consumer": self.kind})

    # ------------------------------------------------------------------ settling
    def _settle(self) -> None:
        if self._done and self.effect_key:   # the effect's own key is the mark: ack at once
            done, self._done = self._done, {}
            self._marked.append(list(done.values()))
            self._marking.update(done)
        elif self._done:                     # hand the batch to the marker; ack once it is stored
            done, self._done = self._done, {}
            self._marking.update(done)
            self._to_mark.put(list(done.values()))
        while self._marked:
            batch = self._marked.popleft()
            for w in batch:
                del self._marking[w.event_id]
            self._ack([d for w in batch for d in (w.delivery, *w.duplicates)])
            metrics.CONSUMED.inc(len(batch), tags={"kind": self.kind})
            self.stats["handled"] += len(batch)
        failed, self._failed = self._failed, []
        for work, exc in failed:
            self._on_failure(work, exc)

    def _mark_loop(self, to_mark: SimpleQueue, marked: deque) -> None:
        """Marker thread: store each batch's processed marks (retrying: the effects are done and
        must never run again), then queue the batch for the consumer thread to ack."""
        delay = self.config.app.bus.reconnect_initial_s
        while (batch := to_mark.get()) is not None:
            while True:
                try:
                    self.store.processed.mark_many(self.kind, [w.event_id for w in batch])
                    marked.append(batch)
                    break
                except PyMongoError:
                    log.exception("could not mark events processed; retrying",
                                  extra={"consumer": self.kind, "events": len(batch)})
                    if self._stopping.wait(delay):
                        break   # never acked: redelivered after restart, recognised or re-run

    def _on_failure(self, work: _Work, exc: BaseException) -> None:
        d, cause = work.delivery, root_cause(exc)
        context = {"consumer": self.kind, "event_id": work.event_id, "routing_key": d.routing_key,
                   "attempt": d.attempt, "error": deadletter.reason_of(cause)}
        if isinstance(cause, DeadLetter):
            log.error("handler dead-lettered event", extra=context)
            self._dead_letter(d, deadletter.reason_of(cause))
            self._ack(work.duplicates)
        elif isinstance(cause, PermanentError):   # retrying cannot help: dead letter at once
            log.error("handler failed permanently, dead-lettering", extra=context)
            self._dead_letter(d, deadletter.reason_of(cause))
            self._ack(work.duplicates)
        elif transient(exc) and self._wait_for_target(work, context):
            pass
        elif d.attempt >= self.delivery_limit:
            log.error("event failed at the delivery limit, dead-lettering", extra=context,
                      exc_info=cause)
            self._dead_letter(d, f"delivery limit {self.delivery_limit} reached; last error: "
                                 f"{deadletter.reason_of(cause)}")
            self._ack(work.duplicates)
        else:
            log.warning("handler failed, requeueing", extra=context, exc_info=cause)
            self.stats["requeued"] += 1
            for x in (d, *work.duplicates):
                if self._current(x):
                    self._channel.basic_nack(x.tag, requeue=True)
                    self._unsettled.pop(x.tag, None)

    def _wait_for_target(self, work: _Work, context: dict[str, Any]) -> bool:
        """Keep the delivery (unacked) and hand it again after a growing delay, for up to
        `bus.transient_retry_s`: False once that is spent (then it counts as a failed delivery)."""
        bus = self.config.app.bus
        now = time.monotonic()
        if work.waits == 0:
            work.first_wait = now
        elif now - work.first_wait >= bus.transient_retry_s:
            return False
        delay = min(bus.transient_backoff_initial_s * (2 ** work.waits), bus.transient_backoff_max_s)
        work.waits += 1
        work.due = now + delay
        self._waiting[work.event_id] = work
        self.stats["waited"] += 1
        metrics.WAITED.inc(tags={"kind": self.kind})
        (log.warning if work.waits == 1 else log.info)(
            "target dead or restarting; handing the event again after a delay",
            extra={**context, "delay_s": round(delay, 3), "waits": work.waits})
        return True

    def _dead_letter(self, d: _Delivery, reason: str) -> None:
        """Publish to the DLX with the reason (confirmed), then ack the original."""
        if not self._current(d):
            return  # delivered on a lost connection: it comes back and is judged again
        self._dead_channel.basic_publish(
            self.topology.dlx, d.routing_key, d.body,
            deadletter.properties(d.properties, reason=reason, consumer=self.kind,
                                  routing_key=d.routing_key))
        self._ack([d])
        metrics.DEAD_LETTERED.inc(tags={"kind": self.kind})
        self.stats["dead_lettered"] += 1
        if self.source == "events" and d.properties.message_id:
            try:    # best effort: the dead queue holds the event itself
                self.store.dead_letters.record(self.kind, d.properties.message_id, reason,
                                               routing_key=d.routing_key)
            except PyMongoError:
                log.warning("could not record the dead letter", extra={
                    "consumer": self.kind, "event_id": d.properties.message_id})

    def _current(self, d: _Delivery) -> bool:
        return d.generation == self._generation and self._channel is not None

    def _ack(self, deliveries: Iterable[_Delivery]) -> None:
        """Ack with one multiple-ack for the contiguous oldest run, singly for the rest."""
        tags = {d.tag for d in deliveries if self._current(d)}
        if not tags:
            return
        last = None
        for tag in self._unsettled:
            if tag not in tags:
                break
            last = tag
        if last is not None:
            self._channel.basic_ack(last, multiple=True)
            for tag in [t for t in self._unsettled if t <= last]:
                del self._unsettled[tag]
                tags.discard(tag)
        for tag in tags:
            self._channel.basic_ack(tag)
            self._unsettled.pop(tag, None)

    def _report_depth(self) -> None:
        now = time.monotonic()
        if now < self._depth_due:
            return
        self._depth_due = now + self.config.app.bus.depth_interval_s
        for queue in (self.queue, self.topology.dead_queue):
            frame = self._channel.queue_declare(queue, passive=True)
            metrics.QUEUE_DEPTH.set(frame.method.message_count, tags={"queue": queue})
