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
from contracts.events import EVENT_TYPES, DraftApproved, dump_event, parse_event, routes, routing_key
from supervisor.supervisor import ALL_KINDS, routes_for

# each registered type's own example: a new type needs nothing added here
SAMPLES = {t: t.example() for t in EVENT_TYPES}
# types only the notifier takes are not published when notifications are off
NOTIFY_ONLY = {t for t in EVENT_TYPES if set(t.consumers) == {"notify"}}


def test_every_event_type_is_declared_once_with_consumers_and_an_example():
    keys = [routing_key(t) for t in EVENT_TYPES]
    assert len(set(keys)) == len(keys)
    for t in EVENT_TYPES:
        assert t.consumers, f"{t.__name__} has no consumer: it would be routed to nowhere"
        assert type(SAMPLES[t]) is t and SAMPLES[t].type == routing_key(t)
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
        publishable = [t for t in EVENT_TYPES if notify or t not in NOTIFY_ONLY]
        for t in publishable:      # mandatory: the broker returns what no queue is bound to
            channel.basic_publish(topo.exchange, routing_key(t), dump_event(SAMPLES[t]),
                                  pika.BasicProperties(delivery_mode=2), mandatory=True)
        assert NOTIFY_ONLY, "the notify-off case below checks nothing"
        for kind in wanted:        # each queue got exactly the types the registry routes to it
            got = []
            while (m := channel.basic_get(topo.queue(kind), auto_ack=True))[0] is not None:
                got.append(m[0].routing_key)
            assert sorted(got) == sorted(wanted[kind]), kind
    finally:
        conn.close()
        delete_topology(cfg, ALL_KINDS)
