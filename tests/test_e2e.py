"""The walking skeleton, end to end under the supervisor in Ray, against the real stand-ins,
RabbitMQ and the MongoDB-wire server: page -> MongoDB -> broker -> AI draft -> sheet -> review
-> approved send -> the site, with one trace per message."""
from __future__ import annotations

import json
import urllib.request

import pytest
import ray
import yaml

from actors.bus.consumer import GC_THRESHOLD
from actors.store import Store
from contracts.names import ROUTER
from contracts.settings import ROOT
from contracts.telemetry import read_spans
from tests.fixtures.infra import BASE_ENV
from tests.helpers import wait_for, wait_for_idle_bus


@pytest.fixture
def pipeline(start_pipeline, chat_site, phoenix_site):
    """Two accounts under one supervisor: `meetme-main` on the chat-site stand-in (its `classic`
    theme) and `phoenix-main` on the shipped conf/sites/meetme.yaml, unedited, against the
    phoenix stand-in (the real MeetMe's shape: a single-page app on two hosts)."""
    classic = yaml.safe_load((ROOT / "standins" / "sites" / "classic.yaml").read_text())
    account = {"poll_interval_s": 0.3, "navigations_per_minute": 600, "sends_per_minute": 60}
    cfg, handle = start_pipeline(
        app={"accounts": [{"id": "meetme-main", "site": "classic", **account},
                          {"id": "phoenix-main", "site": "meetme", **account}]},
        sites={"classic": {**classic, "url_env": "CHATSITE_URL"}}, CHATSITE_URL=chat_site.url,
        MEETME_URL=phoenix_site.www_url, MEETME_APP_URL=phoenix_site.app_url)
    status = ray.get(handle.status.remote())
    assert status["states"] == {"running": len(status["children"])}, status
    return cfg, handle


def _review(url, path, token, body=None):
    req = urllib.request.Request(url + path, method="POST" if body is not None else "GET",
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"Bearer {token}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_one_message_end_to_end(pipeline, chat_site, sheets, phoenix_site):
    """One message on each markup, under one supervisor (one stack: it is what costs)."""
    cfg, handle = pipeline
    store = Store.from_config(cfg)
    # the router's process consumes every event: its GC is tuned for that (actors.bus.consumer)
    router = ray.get_actor(ROUTER, namespace=cfg.settings.namespace)
    assert ray.get(router.__ray_call__.remote(lambda self: __import__("gc").get_threshold())) == GC_THRESHOLD
    site_id = chat_site.inject("c-alice", "Alice", "Hi! Are you free for coffee on Saturday?")

    msg = wait_for(lambda: store.messages.coll.find_one({"site_message_id": site_id}),
                   what="message stored")
    draft = wait_for(lambda: store.drafts.coll.find_one({"message_ids": msg["_id"]}), what="draft stored")
    wait_for(lambda: {msg["_id"], draft["_id"]} <= {r[0] for r in sheets.rows()[1:]}, what="sheet rows")
    wait_for_idle_bus(cfg)  # every event delivered and acked: any duplicate has surfaced

    assert store.messages.count({"site_message_id": site_id}) == 1
    drafts = list(store.drafts.coll.find({"conversation_id": "c-alice"}))
    assert len(drafts) == 1 and drafts[0]["status"] == "pending_review"
    rows = sheets.rows()
    assert rows[0][0] == "row_id"
    ids = [r[0] for r in rows[1:]]
    assert ids.count(msg["_id"]) == 1 and ids.count(draft["_id"]) == 1

    # one trace: the message's spans, in every process, share its trace id with parents intact
    spans = read_spans(cfg.settings.trace_file)
    root = [s for s in spans if s["name"] == "browser.message_seen"
            and s["attributes"].get("message.id") == msg["_id"]]
    assert len(root) == 1, [s["name"] for s in spans]
    trace_id = root[0]["trace_id"]
    flow = [s for s in spans if s["trace_id"] == trace_id]
    names = {s["name"] for s in flow}
    assert {"browser.message_seen", "bus.consume", "ai.draft", "sheets.add"} <= names, names
    by_id = {s["span_id"]: s for s in flow}
    assert [s for s in flow if s["parent_id"] is None] == root
    assert all(s["parent_id"] in by_id for s in flow if s["parent_id"]), "broken parent link"
    services = {s["service"] for s in flow}
    assert len(services) >= 3, services  # browser actor, supervisor, AI worker, sheets writer

    # a person approves: the browser session sends it exactly once
    desk = next(c for c in ray.get(handle.status.remote())["children"] if c["kind"] == "review")
    url = desk["info"]["url"]
    _review(url, f"/api/drafts/{draft['_id']}/approve", BASE_ENV["REVIEW_TOKEN"], {})
    wait_for(lambda: (store.drafts.get(draft["_id"]) or {}).get("status") == "sent", what="sent")
    sent = [m for m in chat_site.messages("c-alice") if m.get("direction") == "out"]
    assert len(sent) == 1 and sent[0]["text"] == draft["text"]

    send = store.sends.get(f"send:{draft['_id']}")
    assert send["site_message_id"] == sent[0]["id"] and store.sends.count() == 1

    # the sheet logs the decision (with the reviewer's token name) and the reply, once each
    approved_row, sent_row = f"draft.approved:{draft['_id']}", f"reply.sent:{draft['_id']}"
    wait_for(lambda: {approved_row, sent_row} <= {r[0] for r in sheets.rows()[1:]},
             what="decision and reply rows in the sheet")
    header, *rows = sheets.rows()
    by_id = {r[0]: dict(zip(header, r)) for r in rows}
    assert [r[0] for r in rows].count(approved_row) == 1 and [r[0] for r in rows].count(sent_row) == 1
    assert by_id[approved_row]["status"] == "approved" and by_id[approved_row]["text"] == draft["text"]
    assert by_id[approved_row]["sender"] == cfg.app.review.token_name
    assert by_id[sent_row]["status"] == "sent" and by_id[sent_row]["text"] == draft["text"]
    _on_the_meetme_single_page_app(pipeline, phoenix_site)


def _on_the_meetme_single_page_app(pipeline, phoenix_site):
    """The shipped meetme spec on phoenix: logged in through the modal on www (handed to the app
    host), the push modal closed, the live inbox, the message read (its sender from the
    conversation header), a draft by the AI stand-in, approved in the desk, sent by Enter
    (pending, then confirmed), shown once."""
    cfg, handle = pipeline
    store = Store.from_config(cfg)
    phoenix_site.inject("1000001", "Alice", "Hi! Are you free for coffee on Saturday?")
    msg = wait_for(lambda: store.messages.coll.find_one({"account_id": "phoenix-main"}),
                   what="message stored")
    assert (msg["sender"], msg["direction"], msg["conversation_id"]) == ("Alice", "in", "1000001")
    draft = wait_for(lambda: store.drafts.coll.find_one({"message_ids": msg["_id"]}), what="draft stored")
    stats = phoenix_site.stats()
    assert stats["login_submissions"] == 1 and stats["live_streams"] >= 1   # one login; a live inbox
    desk = next(c for c in ray.get(handle.status.remote())["children"] if c["kind"] == "review")
    _review(desk["info"]["url"], f"/api/drafts/{draft['_id']}/approve", BASE_ENV["REVIEW_TOKEN"], {})
    wait_for(lambda: (store.drafts.get(draft["_id"]) or {}).get("status") == "sent", what="sent")
    wait_for_idle_bus(cfg)
    sent = [m for m in phoenix_site.messages("1000001") if m.get("direction") == "out"]
    assert len(sent) == 1 and sent[0]["text"] == draft["text"]
    assert store.messages.count({"account_id": "phoenix-main", "direction": "out"}) == 1
    assert phoenix_site.stats()["login_submissions"] == 1
