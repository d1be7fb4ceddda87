"""Each of the bus consumer's middleware alone (the whole consumer: tests/test_bus.py).

Against the real broker (a channel of its own, an exclusive queue) and the real MongoDB-wire server
where the middleware touches them; the transient wait runs on an injected clock.
"""
from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import Future
from types import SimpleNamespace

import pika
import pytest
from pymongo.errors import AutoReconnect

from actors.bus import Consumer, Topology, dead_letters
from actors.bus.acks import Acks
from actors.bus.batching import BatchedAck
from actors.bus.connection import connect
from actors.bus.deadlettering import DeadLettering
from actors.bus.dedupe import Deduplication, EffectKeyed, ProcessedMarks
from actors.bus.delivery import Delivery, Work
from actors.bus.limit import DeliveryLimit
from actors.bus.running import Running
from actors.bus.waiting import TransientWait
from contracts.errors import DeadLetter, PermanentError, Unavailable
from contracts.events import ChatMessage, MessageSeen, dump_event, parse_event, routes
from supervisor.router import dedupe_for
from tests.helpers import wait_for

KIND = "effects"


def event(i: int) -> MessageSeen:
    return MessageSeen.of(ChatMessage(message_id=f"m{i}", account_id="acc", site="meetme",
                                      conversation_id="c1", sender="them", text=f"hello {i}",
                                      sent_at="2026-01-01T00:00:00Z"))


def new_stats() -> dict[str, int]:
    return {"handled": 0, "duplicates": 0, "requeued": 0, "dead_lettered": 0, "waited": 0}


class Recording:
    """The real channel, with the ack frames it was asked to send written down."""

    def __init__(self, channel):
        self.channel, self.frames = channel, []

    def basic_ack(self, tag, multiple=False):
        self.frames.append(("ack", tag, multiple))
        self.channel.basic_ack(tag, multiple=multiple)

    def basic_nack(self, tag, requeue=True):
        self.frames.append(("nack", tag, requeue))
        self.channel.basic_nack(tag, requeue=requeue)


@pytest.fixture
def broker(make_config):
    """Deliveries of an exclusive queue on a real channel, tracked by an `Acks`."""
    cfg = make_config(app={"bus": {"delivery_limit": 3}})
    conn = connect(cfg, "test-middleware")
    ch = conn.channel()
    topology = Topology.of(cfg)
    topology.declare_base(ch)
    queue = ch.queue_declare("", exclusive=True).method.queue
    acks = Acks()
    acks.new_connection()
    recording = Recording(ch)
    acks.channel = recording

    def deliver(bodies: list[bytes], headers: dict | None = None) -> list[Delivery]:
        for i, body in enumerate(bodies):
            ch.basic_publish("", queue, body, pika.BasicProperties(message_id=f"msg-{i}",
                                                                   headers=headers))
        out = []
        for _ in bodies:
            got: list = []
            wait_for(lambda: got.append(ch.basic_get(queue)) or got[-1][0] is not None, 10,
                     "a delivery", interval=0.01)
            method, props, body = got[-1]
            acks.received(method.delivery_tag)
            out.append(Delivery(method.delivery_tag, acks.generation, "message.seen", props, body))
        return out

    def ready() -> int:
        return ch.queue_declare(queue, passive=True).method.message_count

    yield SimpleNamespace(config=cfg, channel=ch, acks=acks, frames=recording.frames,
                          deliver=deliver, ready=ready, topology=topology)
    topology.delete(ch, [])
    conn.close()


# ---------------------------------------------------------------------------- the choice per kind
def test_every_consumer_kind_has_an_explicit_dedupe_choice():
    for kind in routes():                       # (the dead watch uses notify's)
        assert isinstance(dedupe_for(kind), (ProcessedMarks, EffectKeyed)), kind
    assert dedupe_for("send").key == "drafts.status + sends._id (the idempotency key)"
    with pytest.raises(ValueError, match="'mystery'.*ProcessedMarks"):
        dedupe_for("mystery")


def test_a_dedupe_choice_is_a_strategy_never_a_string(make_config, store):
    with pytest.raises(TypeError, match="'effects'.*ProcessedMarks.*EffectKeyed"):
        Consumer(make_config(), KIND, ["message.seen"], lambda e, c: None, store=store,
                 dedupe="drafts._id")
    with pytest.raises(ValueError, match="name the effect's unique key"):
        EffectKeyed("  ")
    consumer = Consumer(make_config(), KIND, ["message.seen"], lambda e, c: None, store=store)
    assert consumer.dedupe.strategy == ProcessedMarks()


# ---------------------------------------------------------------------------- batched ack
def test_acks_one_multiple_ack_for_the_oldest_run_singly_for_the_rest(broker):
    d1, d2, d3, d4, d5 = broker.deliver([b"1", b"2", b"3", b"4", b"5"])
    broker.acks.ack([d1, d2, d4])
    assert broker.frames == [("ack", d2.tag, True), ("ack", d4.tag, False)]
    broker.acks.ack([d3])
    broker.acks.requeue([d5])
    assert broker.frames[2:] == [("ack", d3.tag, True), ("nack", d5.tag, True)]
    wait_for(lambda: broker.ready() == 1, 10, "the requeued delivery back in the queue")
    broker.acks.new_connection()                # a delivery of a lost channel is never acked
    broker.acks.ack([d5])
    assert len(broker.frames) == 4


@pytest.mark.parametrize("strategy", [ProcessedMarks(), EffectKeyed("effects._id")], ids=str)
def test_batched_ack_marks_then_acks_or_acks_at_once(broker, store, strategy):
    stats, stopping = new_stats(), threading.Event()
    batched = BatchedAck(broker.config, KIND, strategy, store, broker.acks, stats, stopping)
    batched.start()
    try:
        d1, d2, d3 = broker.deliver([b"1", b"2", b"3"])
        batched.done.update({"e1": Work("e1", d1, duplicates=(d2,)), "e3": Work("e3", d3)})
        batched.settle()
        wait_for(lambda: batched.settle() or stats["handled"] == 2, 10, "the batch acked")
        assert broker.frames == [("ack", d3.tag, True)] and not batched.marking
        marked = store.processed.seen_many(KIND, ["e1", "e3"])
        assert marked == ({"e1", "e3"} if strategy.stores_marks else set())
    finally:
        stopping.set()
        batched.stop()


# ---------------------------------------------------------------------------- de-duplication
def test_deduplication_joins_copies_in_hand_and_acks_ids_already_marked(broker, store):
    stats = new_stats()
    running: dict[str, Work] = {}
    dedupe = Deduplication(KIND, ProcessedMarks(), store, broker.acks, stats, (running, {}, {}, {}))
    e1, e2, e3 = event(1), event(2), event(3)
    store.processed.mark_many(KIND, [e3.event_id])
    d1, d1_copy, d2_copy, d3 = broker.deliver([dump_event(e) for e in (e1, e1, e2, e3)])
    in_hand = Work(e2.event_id, d1)           # e2 is running (its first delivery is not here)
    running[e2.event_id] = in_hand
    fresh = dedupe.join([(d, parse_event(d.body)) for d in (d1, d1_copy, d2_copy, d3)])
    assert list(fresh) == [e1.event_id, e3.event_id]
    assert fresh[e1.event_id][0].duplicates == (d1_copy,) and in_hand.duplicates == (d2_copy,)
    todo = dedupe.unseen(fresh)
    assert [w.event_id for w, _ in todo] == [e1.event_id]
    assert broker.frames == [("ack", d3.tag, False)]       # e3 was processed before
    assert stats["duplicates"] == 3


def test_effect_keyed_dedupe_looks_nothing_up(broker, store):
    def refuse(*_a):
        raise AutoReconnect("the consumer must not read marks (test)")

    store.processed.seen_many = refuse
    dedupe = Deduplication(KIND, EffectKeyed("effects._id"), store, broker.acks, new_stats(),
                           ({}, {}, {}, {}))
    (d,) = broker.deliver([dump_event(event(1))])
    todo = dedupe.unseen(dedupe.join([(d, parse_event(d.body))]))
    assert [w.event_id for w, _ in todo] == [event(1).event_id] and broker.frames == []


# ---------------------------------------------------------------------------- failures
def test_dead_lettering_takes_dead_letters_and_permanent_errors_only(broker, store):
    stats = new_stats()
    dead = DeadLettering(KIND, "events", broker.topology.dlx, store, broker.acks, stats)
    dead.channel = broker.channel
    d1, d2, d2_copy, d3 = broker.deliver([b"one", b"two", b"two", b"three"])
    context = {"consumer": KIND}
    assert dead.on_failure(Work("e1", d1), DeadLetter("conversation gone"), context)
    assert dead.on_failure(Work("e2", d2, duplicates=(d2_copy,)), PermanentError("HTTP 401"), context)
    assert not dead.on_failure(Work("e3", d3), RuntimeError("boom"), context)
    assert stats["dead_lettered"] == 2 and broker.frames[-1] == ("ack", d2_copy.tag, True)
    reasons = {d["body"]: d["reason"] for d in dead_letters(broker.config)}
    assert reasons == {"one": "conversation gone", "two": "PermanentError: HTTP 401"}
    assert store.dead_letters.coll.count_documents({}) == 2


def test_delivery_limit_requeues_then_dead_letters_at_the_limit(broker, store):
    stats = new_stats()
    dead = DeadLettering(KIND, "events", broker.topology.dlx, store, broker.acks, stats)
    dead.channel = broker.channel
    limit = DeliveryLimit(3, dead, broker.acks, stats)
    (first,) = broker.deliver([b"first"])
    (third,) = broker.deliver([b"third"], headers={"x-delivery-count": 2})
    assert limit.on_failure(Work("e1", first), RuntimeError("boom 1"), {})
    assert stats["requeued"] == 1 and broker.frames == [("nack", first.tag, True)]
    assert limit.on_failure(Work("e3", third), RuntimeError("boom 3"), {})
    (letter,) = dead_letters(broker.config)
    assert letter["reason"] == "delivery limit 3 reached; last error: RuntimeError: boom 3"
    assert stats == {**new_stats(), "requeued": 1, "dead_lettered": 1}


def test_transient_wait_backs_off_without_counting_and_gives_up_after_the_window(make_config):
    cfg = make_config(app={"bus": {"transient_backoff_initial_s": 0.5, "transient_backoff_max_s": 2,
                                   "transient_retry_s": 5}})
    now = [100.0]
    stats = new_stats()
    wait = TransientWait(KIND, cfg, stats, clock=lambda: now[0])
    work = Work("e1", None)
    assert not wait.on_failure(work, RuntimeError("a bug, not an outage"), {})
    dues = []
    for error in (Unavailable("ai:0 restarting"), AutoReconnect("db down"), Unavailable("x"),
                  Unavailable("y")):
        assert wait.on_failure(work, error, {})
        dues.append(work.due - now[0])
        now[0] += 1
    assert dues == [0.5, 1.0, 2.0, 2.0] and stats["waited"] == 4
    handed: list[Work] = []
    now[0] = work.due - 0.01
    wait.retry_due(handed.append, lambda: True)
    assert handed == [] and wait.waiting == {"e1": work}
    now[0] = work.due
    wait.retry_due(handed.append, lambda: False)           # no room: it keeps waiting
    assert handed == []
    wait.retry_due(handed.append, lambda: True)
    assert handed == [work] and wait.waiting == {}
    now[0] = 105.0                                          # the window (5 s) is spent
    assert not wait.on_failure(work, Unavailable("still restarting"), {})


def test_running_settles_futures_to_done_or_failed_and_tells_the_hook():
    told: Counter = Counter()
    running = Running(KIND, on_settled=lambda r, error: told.update([type(error).__name__]))
    ok, bad, later = Future(), Future(), Future()
    assert running.add(Work("ok", None), ok) and running.add(Work("bad", None), bad)
    assert running.add(Work("later", None), later) and not running.add(Work("sync", None), None)
    ok.set_result(None)
    bad.set_exception(RuntimeError("effect failed"))
    done: dict[str, Work] = {}
    failed: list = []
    running.poll(done, failed)
    assert list(done) == ["ok"] and [(w.event_id, str(e)) for w, e in failed] == [("bad", "effect failed")]
    assert list(running.by_id) == ["later"] and told == {"NoneType": 1, "RuntimeError": 1}
    running.reset()
    later.set_result(None)                  # an effect of an earlier run: its redelivery is handled anew
    running.poll(done, failed)
    assert list(done) == ["ok"] and told == {"NoneType": 1, "RuntimeError": 1}
