"""The event registry (contracts/events.py) is the one place an event type is declared: the
broker's bindings, the supervisor's routing and the sheet's rows are derived from it, and every
event type that can be published reaches at least one queue."""
from __future__ import annotations

import uuid

import pika
import pytest

from actors.bus.connection import client_name, connect
from actors.bus.topology import Topology, declare_topology, delete_topology
from actors.sheets.rows import FIELDS, RowMapper
from contracts.events import (
    EVENT_TYPES,
    ChatMessage,
    ChildFailed,
    ConversationClassified,
    DraftApproved,
    DraftCreated,
    DraftRejected,
    MessageSeen,
    NeedsLogin,
    ReplySent,
    dump_event,
    parse_event,
    routes,
    routing_key,
)
from supervisor.supervisor import ALL_KINDS, routes_for

MSG = ChatMessage(message_id="m1", account_id="a", site="meetme", conversation_id="c", sender="Ann",
                  text="hi", sent_at="2026-01-01T10:00:00Z")
SAMPLES = {
    MessageSeen: MessageSeen.of(MSG),
    DraftCreated: DraftCreated.make(draft_id="d1", account_id="a", conversation_id="c", message_ids=["m1"],
                                    classification="needs_reply", text="Hello!"),
    ConversationClassified: ConversationClassified.make(draft_id="d1", account_id="a", conversation_id="c",
                                                        last_message_id="m1", classification="spam_or_scam"),
    DraftApproved: DraftApproved.make(draft_id="d1", account_id="a", conversation_id="c", text="Hello!",
                                      approved_by="owner"),
    DraftRejected: DraftRejected.make(draft_id="d1", account_id="a", conversation_id="c", rejected_by="owner",
                                      reason="rude"),
    ReplySent: ReplySent.make(draft_id="d1", account_id="a", conversation_id="c", idempotency_key="send:d1",
                              site_message_id="s9", text="Hello!"),
    ChildFailed: ChildFailed.make(child="ai:0", kind="ai", account_id=None, error="boom", at=1.0),
    NeedsLogin: NeedsLogin.make(child="browser:meetme:a", account_id="a", error="captcha", at=1.0),
}


def test_every_event_type_is_declared_once_with_consumers_and_a_sample():
    assert set(SAMPLES) == set(EVENT_TYPES)
    keys = [routing_key(t) for t in EVENT_TYPES]
    assert len(set(keys)) == len(keys)
    for t in EVENT_TYPES:
        assert t.consumers, f"{t.__name__} has no consumer: it would be routed to nowhere"
        assert parse_event(dump_event(SAMPLES[t])) == SAMPLES[t]


def test_the_sheet_logs_exactly_the_types_routed_to_it_with_unique_row_ids():
    mapper = RowMapper(list(FIELDS))
    rows = {}
    for t, sample in SAMPLES.items():
        row = mapper.from_event(sample)
        assert (row is not None) == ("sheets" in t.consumers), t.__name__
        if row is not None:
            assert len(row.values) == len(FIELDS)
            rows[row.row_id] = t
    assert len(rows) == sum(1 for t in EVENT_TYPES if "sheets" in t.consumers)
    # a model or its wire form map to the same row
    assert mapper.from_event(SAMPLES[DraftApproved].model_dump(mode="json")) == mapper.from_event(
        SAMPLES[DraftApproved])


@pytest.mark.parametrize("notify", [True, False])
def test_every_publishable_event_reaches_a_queue_on_the_broker(make_config, notify):
    extra = {"NOTIFY_URLS": "json://127.0.0.1:9/notes"} if notify else {}
    cfg = make_config(**extra)
    wanted = routes_for(cfg)
    assert set(wanted) == ({*routes()} if notify else {*routes()} - {"notify"})
    declare_topology(cfg, wanted)
    topo = Topology.of(cfg)
    conn = connect(cfg, client_name(cfg, f"registry-test-{uuid.uuid4().hex[:6]}"))
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        publishable = [t for t in EVENT_TYPES if notify or set(t.consumers) - {"notify"}]
        for t in publishable:      # mandatory: the broker returns what no queue is bound to
            channel.basic_publish(topo.exchange, routing_key(t), dump_event(SAMPLES[t]),
                                  pika.BasicProperties(delivery_mode=2), mandatory=True)
        unpublishable = {t.__name__ for t in EVENT_TYPES} - {t.__name__ for t in publishable}
        assert unpublishable == (set() if notify else {"ChildFailed", "NeedsLogin"})
        for kind in wanted:        # each queue got exactly the types the registry routes to it
            got = []
            while (m := channel.basic_get(topo.queue(kind), auto_ack=True))[0] is not None:
                got.append(m[0].routing_key)
            assert sorted(got) == sorted(wanted[kind]), kind
    finally:
        conn.close()
        delete_topology(cfg, ALL_KINDS)
