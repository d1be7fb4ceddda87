"""The event bus against the real broker and the real MongoDB-wire server.

Every test has its own namespace (exchange, queues, database) and deletes its topology afterwards.
Effects are recorded with random ids, so a doubled effect would show as two documents.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from types import SimpleNamespace
from typing import Any, Callable

import pytest
import ray
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pymongo.errors import AutoReconnect, OperationFailure

from actors.browser.adapter import LoginFailed
from actors.bus import (
    ConfirmPublisher,
    Consumer,
    OutboxRelay,
    Outgoing,
    Topology,
    dead_letters,
)
from actors.bus.connection import connect
from actors.bus.dedupe import EffectKeyed
from actors.store import Store
from actors.store.client import close_client
from contracts import telemetry
from contracts.errors import DeadLetter, PermanentError
from contracts.events import ChatMessage, MessageSeen, dump_event
from standins.mongo import _server_binary, free_port
from tests.fixtures.infra import ROOT
from tests.helpers import wait_for

KIND = "effects"
KEYS = ["message.seen"]


def event(i: int) -> MessageSeen:
    return MessageSeen.of(ChatMessage(message_id=f"m{i}", account_id="acc", site="meetme",
                                      conversation_id="c1", sender="them", text=f"hello {i}",
                                      sent_at="2026-01-01T00:00:00Z"))


def wait_until(predicate: Callable[[], Any], what: str, timeout_s: float = 30.0) -> None:
    wait_for(predicate, timeout_s, what, interval=0.02)


@pytest.fixture
def bus(make_config, store):
    cfg = make_config(app={"bus": {"delivery_limit": 3, "prefetch": 32, "reconnect_initial_s": 0.05,
                                   "reconnect_max_s": 0.5, "relay_poll_s": 0.02,
                                   "confirm_timeout_s": 5}})
    running: list[Any] = []
    effects = store.db["effects"]

    def effect(e, _carrier=None) -> None:
        effects.insert_one({"event_id": e.event_id})

    def consumer(handler=effect, **kw) -> Consumer:
        c = Consumer(cfg, KIND, KEYS, handler, store=store, **kw)
        c.start()
        assert c.ready.is_set(), "consumer did not start"
        running.append(c)
        return c

    def relay() -> OutboxRelay:
        r = OutboxRelay(cfg, store=store)
        r.start()
        running.append(r)
        return r

    def effect_counts() -> Counter:
        return Counter(d["event_id"] for d in effects.find({}, {"event_id": 1}))

    yield SimpleNamespace(config=cfg, store=store, effect=effect, consumer=consumer, relay=relay,
                          effect_counts=effect_counts, topology=Topology.of(cfg))
    for r in reversed(running):
        r.stop()
    conn = connect(cfg, "test-teardown")
    try:
        Topology.of(cfg).delete(conn.channel(), [KIND])
    finally:
        conn.close()


def publish_raw(cfg, messages: list[Outgoing]) -> None:
    p = ConfirmPublisher(cfg, "test")
    try:
        assert all(p.publish(messages))
    finally:
        p.close()


def raw(event_or_body, message_id: str = "raw") -> Outgoing:
    body = event_or_body if isinstance(event_or_body, bytes) else dump_event(event_or_body)
    return Outgoing(routing_key="message.seen", body=body, message_id=message_id)


# ---------------------------------------------------------------------------- happy path
def test_outbox_relay_consumer_each_event_once(bus):
    c = bus.consumer()
    events = [event(i) for i in range(120)]
    assert bus.store.outbox.add(events) == 120
    bus.relay()
    wait_until(lambda: c.stats["handled"] == 120, "120 handled events")
    counts = bus.effect_counts()
    assert counts == {e.event_id: 1 for e in events}
    assert bus.store.outbox.pending() == []
    assert bus.store.processed.seen_many(KIND, [e.event_id for e in events]) == {e.event_id for e in events}


def test_run_once_publishes_a_batch_with_confirms_and_headers(bus):
    received: list[tuple[Any, dict]] = []
    bus.consumer(lambda e, carrier: received.append((e, carrier)))
    bus.store.outbox.add([event(1), event(2)])
    relay = OutboxRelay(bus.config, store=bus.store)
    try:
        assert relay.run_once() == 2
        assert relay.run_once() == 0
    finally:
        relay.stop()
    wait_until(lambda: len(received) == 2, "2 deliveries")
    assert sorted(e.event_id for e, _ in received) == ["message.seen:m1", "message.seen:m2"]


def test_message_properties_persistent_with_id_type_and_schema(bus):
    bus.store.outbox.add([event(7)])
    conn = connect(bus.config, "test-probe")
    try:
        ch = conn.channel()
        bus.topology.declare_base(ch)
        probe = bus.topology.declare_queue(ch, "probe", KEYS)
        OutboxRelay(bus.config, store=bus.store).run_once()
        wait_until(lambda: ch.queue_declare(probe, passive=True).method.message_count == 1, "probe msg")
        method, props, body = ch.basic_get(probe, auto_ack=True)
        assert props.delivery_mode == 2
        assert props.message_id == "message.seen:m7" and props.type == "message.seen"
        assert props.headers["schema_version"] == 1
        assert json.loads(body)["event_id"] == "message.seen:m7"
        ch.queue_delete(probe)
    finally:
        conn.close()


# ---------------------------------------------------------------------------- dedupe
def test_duplicate_event_has_no_second_effect(bus):
    c = bus.consumer()
    e = event(1)
    publish_raw(bus.config, [raw(e, "a"), raw(e, "b")])        # same event id twice, one batch
    wait_until(lambda: c.stats["handled"] == 1 and c.stats["duplicates"] == 1, "dup settled")
    publish_raw(bus.config, [raw(e, "c")])                      # and once more, after it was marked
    wait_until(lambda: c.stats["duplicates"] == 2, "second duplicate skipped")
    assert bus.effect_counts() == {e.event_id: 1}


def test_mark_failure_holds_the_ack_and_never_reruns_the_effect(bus):
    """Marks are written by the consumer's marker thread: while MongoDB refuses them the event stays
    unacked, a duplicate arriving meanwhile joins it, and the effect is not run again."""
    c = bus.consumer()
    store_up = threading.Event()
    real_mark, refused = bus.store.processed.mark_many, Counter()

    def mark_many(kind, ids):
        if not store_up.is_set():
            refused["calls"] += 1
            raise AutoReconnect("connection refused (test)")
        return real_mark(kind, ids)

    bus.store.processed.mark_many = mark_many
    e = event(7)
    publish_raw(bus.config, [raw(e, "first")])
    wait_until(lambda: refused["calls"] >= 2, "marking refused twice")
    publish_raw(bus.config, [raw(e, "again")])                  # arrives while the mark is retried
    wait_until(lambda: c.stats["duplicates"] == 1, "duplicate joined the unmarked event")
    assert c.stats["handled"] == 0 and not bus.store.processed.seen(KIND, e.event_id)
    store_up.set()
    wait_until(lambda: c.stats["handled"] == 1, "marked, then acked")
    assert bus.store.processed.seen(KIND, e.event_id)
    assert bus.effect_counts() == {e.event_id: 1}
    conn = connect(bus.config, "test-depth")
    try:                                                        # both copies acked, none requeued
        frame = conn.channel().queue_declare(bus.topology.queue(KIND), passive=True)
        assert frame.method.message_count == 0 and c.stats["requeued"] == 0
    finally:
        conn.close()


def test_consumer_restarted_after_unstored_marks_handles_the_redelivery(bus):
    """Stopped while MongoDB refuses the marks, then started again (same object): the unacked
    event comes back and is handled afresh (at least once), never left waiting on the old run."""
    c = bus.consumer()
    store_up = threading.Event()
    real_mark = bus.store.processed.mark_many

    def mark_many(kind, ids):
        if not store_up.is_set():
            raise AutoReconnect("connection refused (test)")
        return real_mark(kind, ids)

    bus.store.processed.mark_many = mark_many
    e = event(8)
    publish_raw(bus.config, [raw(e, "first")])
    wait_until(lambda: bus.effect_counts() == {e.event_id: 1}, "effect done, mark refused")
    c.stop()
    store_up.set()
    c.start()
    assert c.ready.is_set()
    wait_until(lambda: c.stats["handled"] == 1, "redelivered event handled and marked")
    assert bus.store.processed.seen(KIND, e.event_id)
    assert bus.effect_counts() == {e.event_id: 2}   # the unmarked effect ran once more


# ---------------------------------------------------------------------------- dead letters
def test_malformed_events_dead_lettered_with_reason(bus):
    c = bus.consumer()
    bad_schema = dump_event(event(1)).replace(b'"account_id":"acc"', b'"account_id":42', 1)
    publish_raw(bus.config, [raw(b"{not json", "bad-json"), raw(bad_schema, "bad-schema"),
                             raw(b'{"type":"no.such.event"}', "bad-type")])
    wait_until(lambda: c.stats["dead_lettered"] == 3, "3 dead letters")
    dead = {d["message_id"]: d for d in dead_letters(bus.config)}
    assert set(dead) == {"bad-json", "bad-schema", "bad-type"}
    assert "Invalid JSON" in dead["bad-json"]["reason"]
    assert "account_id" in dead["bad-schema"]["reason"] and "valid string" in dead["bad-schema"]["reason"]
    assert "no.such.event" in dead["bad-type"]["reason"] or "tag" in dead["bad-type"]["reason"]
    assert all(d["consumer"] == KIND and d["routing_key"] == "message.seen" for d in dead.values())
    assert dead["bad-json"]["body"] == "{not json"
    assert len(dead_letters(bus.config)) == 3            # reading does not consume them
    assert bus.effect_counts() == {}


def test_handler_dead_letter_is_dead_lettered_with_reason(bus):
    def handler(e, _carrier):
        raise DeadLetter(f"cannot draft for {e.event_id}: conversation gone")

    c = bus.consumer(handler)
    bus.store.outbox.add([event(3)])
    bus.relay()
    wait_until(lambda: c.stats["dead_lettered"] == 1, "dead letter")
    (dead,) = dead_letters(bus.config)
    assert dead["reason"] == "cannot draft for message.seen:m3: conversation gone"
    assert dead["routing_key"] == "message.seen" and dead["consumer"] == KIND
    assert dead["message_id"] == "message.seen:m3"
    assert c.stats["requeued"] == 0
    assert not bus.store.processed.seen(KIND, "message.seen:m3")


@ray.remote(num_cpus=0)
def _refuse(event_id: str) -> None:
    raise LoginFailed(f"wrong password for {event_id}")


def test_permanent_error_dead_lettered_on_first_delivery(bus, ray_session):
    """A PermanentError (a 404, a 401, a wrong password: any subclass, raised in the handler or
    in the Ray task it returns) is dead-lettered at once, never requeued."""
    calls: Counter = Counter()

    def handler(e, _carrier):
        calls[e.event_id] += 1
        if e.event_id.endswith(":m1"):
            raise PermanentError("AI endpoint answered HTTP 404 (Not Found): check AI_API_URL")
        return _refuse.remote(e.event_id)

    c = bus.consumer(handler)
    bus.store.outbox.add([event(1), event(2)])
    bus.relay()
    wait_until(lambda: c.stats["dead_lettered"] == 2, "2 dead letters")
    assert calls == {"message.seen:m1": 1, "message.seen:m2": 1}
    assert c.stats["requeued"] == 0
    dead = {d["message_id"]: d for d in dead_letters(bus.config)}
    assert dead["message.seen:m1"]["reason"] == ("PermanentError: AI endpoint answered HTTP 404 "
                                                 "(Not Found): check AI_API_URL")
    assert dead["message.seen:m2"]["reason"] == "LoginFailed: wrong password for message.seen:m2"
    assert "x-delivery-count" not in dead["message.seen:m1"]["headers"]  # the first delivery


def test_transient_failure_retried_then_succeeds(bus):
    attempts: Counter = Counter()

    def flaky(e, carrier):
        attempts[e.event_id] += 1
        if attempts[e.event_id] < 3:
            raise ConnectionError("AI endpoint reset the connection")
        bus.effect(e)

    c = bus.consumer(flaky)
    bus.store.outbox.add([event(1), event(2)])
    bus.relay()
    wait_until(lambda: c.stats["handled"] == 2, "both handled after retries")
    assert attempts == {"message.seen:m1": 3, "message.seen:m2": 3}
    assert c.stats["requeued"] == 4 and c.stats["dead_lettered"] == 0
    assert bus.effect_counts() == {"message.seen:m1": 1, "message.seen:m2": 1}


def test_poison_message_stops_at_delivery_limit_and_is_kept(bus):
    calls: Counter = Counter()

    def poison(e, carrier):
        calls[e.event_id] += 1
        raise RuntimeError(f"boom {calls[e.event_id]}")

    c = bus.consumer(poison)
    bus.store.outbox.add([event(9)])
    bus.relay()
    wait_until(lambda: c.stats["dead_lettered"] == 1, "poison dead-lettered")
    assert calls == {"message.seen:m9": 3}                       # delivery_limit: 3
    (dead,) = dead_letters(bus.config)
    assert dead["reason"] == "delivery limit 3 reached; last error: RuntimeError: boom 3"
    assert dead["message_id"] == "message.seen:m9"
    assert dead["headers"]["x-delivery-count"] == 2


# ---------------------------------------------------------------------------- faults
def _close_connections(cfg, role: str) -> int:
    """Force-close this process's connections of `role` in the test's namespace, as the broker."""
    out = subprocess.run(["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
                         capture_output=True, text=True, check=True).stdout
    wanted = f'"replydesk:{cfg.settings.namespace}:{role}:'
    pids = [line.split("\t", 1)[0] for line in out.splitlines()
            if wanted in line and f':{os.getpid()}"' in line]
    for pid in pids:
        subprocess.run(["rabbitmqctl", "-q", "close_connection", pid, "test: connection dropped"],
                       capture_output=True, text=True, check=True)
    return len(pids)


def test_connection_dropped_mid_stream_no_loss_no_double(bus):
    def slow_effect(e, carrier):
        time.sleep(0.003)
        bus.effect(e)

    c = bus.consumer(slow_effect)
    bus.relay()
    n, chunk = 400, 100
    closed = 0
    for start in range(0, n, chunk):
        bus.store.outbox.add([event(i) for i in range(start, start + chunk)])
        wait_until(lambda: c.stats["handled"] >= start + chunk // 3, "progress")
        closed += _close_connections(bus.config, f"consumer-{KIND}")
        closed += _close_connections(bus.config, "relay")
    assert closed >= 6
    wait_until(lambda: c.stats["handled"] == n, f"{n} handled", timeout_s=60)
    counts = bus.effect_counts()
    assert len(counts) == n and set(counts.values()) == {1}
    assert bus.store.outbox.pending() == []


@ray.remote(num_cpus=0, max_concurrency=8)
class Gate:
    """A tiny effect actor whose calls block until released."""

    def __init__(self):
        self._open = threading.Event()
        self.applied: list[str] = []

    def apply(self, event_id: str) -> str:
        self._open.wait(30)
        if event_id.endswith(":m666"):
            raise DeadLetter("actor refused m666")
        self.applied.append(event_id)
        return event_id

    def release(self) -> None:
        self._open.set()

    def get_applied(self) -> list[str]:
        return self.applied


def _unacked(queue: str) -> int:
    out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "name", "messages_unacknowledged"],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        name, _, count = line.partition("\t")
        if name == queue:
            return int(count)
    raise AssertionError(f"queue {queue} not listed")


def test_object_ref_handler_acked_only_after_completion(bus, ray_session):
    gate = Gate.remote()
    c = bus.consumer(lambda e, carrier: gate.apply.remote(e.event_id))
    ids = [event(i).event_id for i in range(5)] + ["message.seen:m666"]
    bus.store.outbox.add([event(i) for i in range(5)] + [event(666)])
    bus.relay()
    wait_until(lambda: len(c._running) == 6, "6 effects running")
    # nothing is acked while the effects run (the broker's queue stats lag a few seconds)
    wait_until(lambda: _unacked(c.queue) == 6, "6 unacked deliveries")
    assert bus.store.processed.seen_many(KIND, ids) == set()
    ray.get(gate.release.remote())
    wait_until(lambda: c.stats["handled"] == 5 and c.stats["dead_lettered"] == 1, "settled")
    assert sorted(ray.get(gate.get_applied.remote())) == sorted(ids[:5])
    wait_until(lambda: _unacked(c.queue) == 0, "all acked")
    (dead,) = dead_letters(bus.config)
    assert dead["reason"] == "actor refused m666"


def test_trace_carrier_preserved_from_outbox_row_to_handler(bus):
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        telemetry.setup_from(bus.config, "test-bus")
        provider = trace.get_tracer_provider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    got: list[dict] = []
    bus.consumer(lambda e, carrier: got.append(carrier))
    with telemetry.span("origin") as origin:
        bus.store.outbox.add([event(1)], telemetry.inject())
    bus.relay()
    wait_until(lambda: got, "delivery")
    trace_id = format(origin.get_span_context().trace_id, "032x")
    assert got[0]["traceparent"].split("-")[1] == trace_id
    wait_until(lambda: {"bus.publish", "bus.consume"} <= {s.name for s in exporter.get_finished_spans()},
               "bus spans")
    spans = {s.name: s for s in exporter.get_finished_spans() if s.context.trace_id == origin.get_span_context().trace_id}
    assert spans["bus.publish"].parent.span_id == origin.get_span_context().span_id
    assert spans["bus.consume"].parent.span_id == spans["bus.publish"].context.span_id
    assert got[0]["traceparent"].split("-")[2] == format(spans["bus.consume"].context.span_id, "016x")
    assert spans["bus.consume"].attributes["event.id"] == "message.seen:m1"


# ---------------------------------------------------------------------------- relay recovery
@pytest.fixture
def probe(bus):
    """A plain queue bound to the event exchange: every publish of every event, counted by id."""
    conn = connect(bus.config, "test-probe")
    ch = conn.channel()
    bus.topology.declare_base(ch)
    name = bus.topology.declare_queue(ch, "probe", KEYS)

    def drain(expected: int) -> Counter:
        wait_until(lambda: ch.queue_declare(name, passive=True).method.message_count >= expected,
                   f"{expected} published messages")
        got: Counter = Counter()
        while True:
            method, props, _body = ch.basic_get(name, auto_ack=True)
            if method is None:
                return got
            got[props.message_id] += 1

    yield drain
    ch.queue_delete(name)
    conn.close()


def _drain_relay(relay: OutboxRelay) -> int:
    total = 0
    while (n := relay.run_once()) > 0:
        total += n
    return total


def test_relay_killed_mid_batch_resumes_after_last_confirmed_batch(bus, probe, make_config, monkeypatch):
    cfg = make_config(app={"bus": {"confirm_batch": 10}})
    first = OutboxRelay(cfg, store=Store(bus.store.uri, bus.store.db_name))   # its own repos
    assert first.run_once() == 0 and first.store.outbox.position() is not None   # stream start saved
    ids = [event(i).event_id for i in range(30)]
    bus.store.outbox.add([event(i) for i in range(30)])
    assert len(bus.store.outbox.pending()) == 30
    assert first.run_once() == 10 and first.run_once() == 10
    assert len(bus.store.outbox.pending()) == 10

    def killed(_position):
        raise RuntimeError("relay process killed before saving its position")

    monkeypatch.setattr(first.store.outbox, "save_position", killed)
    with pytest.raises(RuntimeError):
        first.run_once()                   # third batch confirmed by the broker, position not saved
    first.stop()
    second = OutboxRelay(cfg, store=bus.store)
    try:
        assert _drain_relay(second) == 10  # resumes after the second batch, not from the start
    finally:
        second.stop()
    got = probe(40)
    assert set(got) == set(ids) and sum(got.values()) == 40
    assert sorted(got.values()) == [1] * 20 + [2] * 10   # the unsaved batch twice, nothing lost
    assert bus.store.outbox.pending() == []


def test_relay_sigkilled_restarts_and_everything_is_handled_once(bus, tmp_path):
    c = bus.consumer()
    script = ("import sys, time\nfrom contracts.settings import load\nfrom actors.bus import OutboxRelay\n"
              "OutboxRelay(load(sys.argv[1])).start()\nprint('started', flush=True)\ntime.sleep(600)\n")
    cfg_file = tmp_path / "conf" / "replydesk.yaml"
    child = subprocess.Popen([sys.executable, "-c", script, str(cfg_file)], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "started"
        for start in range(0, 150, 10):          # a trickle, so the kill lands mid-stream
            bus.store.outbox.add([event(i) for i in range(start, start + 10)])
            if start == 70:
                wait_until(lambda: c.stats["handled"] >= 30, "progress before the kill")
                child.kill()
                child.wait(10)
    finally:
        child.kill()
        child.wait(10)
    assert c.stats["handled"] < 150
    bus.relay()
    wait_until(lambda: c.stats["handled"] == 150, "150 handled after the restart", timeout_s=60)
    counts = bus.effect_counts()
    assert len(counts) == 150 and set(counts.values()) == {1}


@pytest.fixture
def short_oplog_uri():
    """A server of its own whose oplog keeps 20 entries, so a saved resume token can expire."""
    port = free_port()
    proc = subprocess.Popen([_server_binary(), "--host", "127.0.0.1", "--port", str(port),
                             "--storage-path", ":memory:", "--oplog-max-entries", "20"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = f"mongodb://127.0.0.1:{port}/"
    try:
        wait_until(lambda: _port_open(port), "short-oplog server")
        yield uri
    finally:
        close_client(uri)
        proc.terminate()
        proc.wait(15)


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


def test_expired_position_falls_back_to_rescan(bus, probe, make_config, short_oplog_uri, caplog):
    cfg = make_config(MONGODB_URI=short_oplog_uri, app={"bus": {"confirm_batch": 50}})
    store = Store.from_config(cfg)
    store.ensure_indexes()
    store.outbox.add([event(i) for i in range(10)])
    relay = OutboxRelay(cfg, store=store)
    assert _drain_relay(relay) == 10
    relay.stop()
    saved = store.outbox.position()
    assert saved is not None and saved.token is not None
    store.db["noise"].insert_many([{"i": i} for i in range(50)])   # other writes roll the oplog
    store.outbox.add([event(i) for i in range(10, 20)])
    store.db.client.admin.command("secantusAdmin.pruneOplog")
    with pytest.raises(OperationFailure) as lost:
        store.outbox.watch(saved.token, 10)
    assert lost.value.code == 286
    relay = OutboxRelay(cfg, store=store)
    try:
        with caplog.at_level("WARNING", logger="replydesk.store.outbox"):
            published = _drain_relay(relay)
    finally:
        relay.stop()
    assert "position lost" in caplog.text
    got = probe(30)
    # rows 10-19 were never published; rows 0-9 are within the rescan window and come again
    assert published == 20 and got == Counter({event(i).event_id: 1 if i >= 10 else 2 for i in range(20)})
    assert store.outbox.pending() == [] and store.outbox.position().token != saved.token


# ---------------------------------------------------------------------------- one write per event
def test_an_effect_keyed_consumer_stores_no_marks_and_a_redelivery_finds_its_effect(bus):
    """With `EffectKeyed`, the effect's own unique key is the dedupe mark: no processed rows, and
    events redelivered after a lost connection reach the handler, whose keyed effect stays one."""
    effects = bus.store.db["keyed_effects"]
    calls: Counter = Counter()

    def keyed(e, carrier):
        calls[e.event_id] += 1
        time.sleep(0.002)
        effects.update_one({"_id": e.event_id}, {"$setOnInsert": {"at": time.time()}}, upsert=True)

    c = bus.consumer(keyed, dedupe=EffectKeyed("keyed_effects._id (the event id)"))
    bus.relay()
    n = 300
    bus.store.outbox.add([event(i) for i in range(n)])
    wait_until(lambda: c.stats["handled"] >= n // 3, "progress")
    _close_connections(bus.config, f"consumer-{KIND}")
    wait_until(lambda: effects.count_documents({}) == n, f"{n} effects", timeout_s=60)
    wait_until(lambda: c.stats["handled"] + c.stats["duplicates"] >= n, "every delivery settled")
    assert set(calls) == {event(i).event_id for i in range(n)}
    assert bus.store.processed.seen_many(KIND, [event(i).event_id for i in range(n)]) == set()


def test_a_dead_or_restarting_target_is_waited_for_not_counted_against_the_limit(bus):
    """The delivery limit is 3; the target is unavailable for 6 tries: the event waits with a
    growing delay (never requeued hot, never dead-lettered) and is handled once it is back."""
    from contracts.errors import Unavailable
    tries: list[float] = []

    def restarting(e, carrier):
        tries.append(time.monotonic())
        if len(tries) <= 6:
            raise Unavailable("ai:0 restarting")
        bus.effect(e)

    cfg = bus.config
    cfg.app.bus.transient_backoff_initial_s = 0.01
    cfg.app.bus.transient_backoff_max_s = 0.08
    c = bus.consumer(restarting)
    bus.store.outbox.add([event(1)])
    bus.relay()
    wait_until(lambda: c.stats["handled"] == 1, "handled once the target is back")
    assert c.stats["waited"] == 6 and c.stats["requeued"] == 0 and c.stats["dead_lettered"] == 0
    gaps = [b - a for a, b in zip(tries, tries[1:])]
    assert all(g >= 0.009 for g in gaps), gaps          # a delay each time, never a hot loop
    assert bus.effect_counts() == {"message.seen:m1": 1}


def test_a_mongodb_outage_in_the_handler_is_waited_out_not_dead_lettered(bus, tmp_path):
    """The handler's database is down (SIGKILLed) for more tries than the delivery limit (3):
    a ConnectionFailure is waited out like a restarting actor, and the effect is stored once
    the database is back, never dead-lettered."""
    from pymongo import MongoClient

    from standins.mongo import MongoServer
    server = MongoServer(storage=tmp_path / "db").start()
    client = MongoClient(server.uri, serverSelectionTimeoutMS=300, connectTimeoutMS=300,
                         socketTimeoutMS=2000)
    effects = client["chaos"]["effects"]
    effects.insert_one({"_id": "warm-up"})
    server.stop(kill=True)
    tries: list[int] = []

    def needs_db(e, carrier):
        tries.append(1)
        if len(tries) == 6:
            server.start()                  # back after five failed tries
        effects.update_one({"_id": e.event_id}, {"$inc": {"n": 1}}, upsert=True)

    cfg = bus.config
    cfg.app.bus.transient_backoff_initial_s = 0.01
    cfg.app.bus.transient_backoff_max_s = 0.08
    try:
        c = bus.consumer(needs_db)
        bus.store.outbox.add([event(1)])
        bus.relay()
        wait_until(lambda: c.stats["handled"] == 1, "handled once the database is back")
        assert c.stats["waited"] == 5 and c.stats["dead_lettered"] == 0 and c.stats["requeued"] == 0
        assert effects.find_one({"_id": "message.seen:m1"})["n"] == 1
    finally:
        client.close()
        server.close()
