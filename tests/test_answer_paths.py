"""Every incoming message gets exactly one answer path (issue 11): conversation-level drafts, no
dead handles, and the reconciler that re-drives what fell between the cracks. The whole pipeline
runs under its supervisor against the stand-ins."""
from __future__ import annotations

import os
import signal
from datetime import timedelta

import pytest
import ray
import requests

from actors.review.decisions import Conflict, Reviewer
from actors.store import Store
from contracts.events import ChatMessage, utcnow
from contracts.ids import draft_id
from tests.helpers import wait_for

ACCOUNT = "meetme-main"


def _child(handle, name):
    return next(c for c in ray.get(handle.status.remote())["children"] if c["name"] == name)


def _open_drafts(store, conv):
    return list(store.drafts.coll.find({"conversation_id": conv, "status": "pending_review"}))


def _site_id_of(store, message_id):
    return store.messages.coll.find_one({"_id": message_id})["site_message_id"]


def test_a_newer_message_supersedes_the_open_draft_and_its_approval_is_refused(start_pipeline, chat_site):
    cfg, handle = start_pipeline(app={"review": {"port": 0}})
    store = Store.from_config(cfg)
    chat_site.inject("c-1", "Ann", "Hi! Do you like hiking?")
    first = wait_for(lambda: (d := _open_drafts(store, "c-1")) and d[0], what="the first draft")
    chat_site.inject("c-1", "Ann", "Or maybe a museum on Sunday?")
    second = wait_for(lambda: (d := _open_drafts(store, "c-1")) and d[0]["_id"] != first["_id"] and d[0],
                      what="the new draft")
    # at most one open draft; the old one is kept, marked, and names its successor. The new
    # draft is stored first (a crash in between never leaves the conversation without an open
    # draft), the old one is marked right after: milliseconds later, so wait for it
    wait_for(lambda: len(_open_drafts(store, "c-1")) == 1, what="the old draft superseded")
    old = store.drafts.get(first["_id"])
    assert old["status"] == "superseded" and old["superseded_by"] == second["_id"]
    # the new draft answers both messages, up to the conversation's newest
    assert len(second["message_ids"]) == 2 and second["answers_seq"] > first["answers_seq"]

    # the desk refuses the old one with 409 and offers the new one
    desk = next(c for c in ray.get(handle.status.remote())["children"] if c["kind"] == "review")
    url = wait_for(lambda: _child(handle, desk["name"])["info"].get("url"), what="the desk URL")
    auth = {"Authorization": f"Bearer {cfg.settings.review_token.get_secret_value()}"}
    r = requests.post(f"{url}/api/drafts/{first['_id']}/approve", headers=auth, timeout=10)
    assert r.status_code == 409, r.text
    assert r.json()["newer_draft_id"] == second["_id"] and "Nothing was sent" in r.json()["error"]
    listed = requests.get(f"{url}/api/drafts?status=superseded", headers=auth, timeout=10).json()["drafts"]
    assert [d["id"] for d in listed] == [first["_id"]] and listed[0]["superseded_by"] == second["_id"]
    r = requests.post(f"{url}/api/drafts/{second['_id']}/approve", headers=auth, timeout=10)
    assert r.status_code == 200, r.text
    wait_for(lambda: store.drafts.get(second["_id"])["status"] == "sent", what="the new draft sent")
    assert [m["text"] for m in chat_site.sent()["messages"]] == [second["text"]]


def test_an_approved_draft_with_a_newer_message_before_the_click_is_not_sent(start_pipeline, chat_site):
    # a slow poll: the newer message is first seen by the send path itself, just before the click
    cfg, handle = start_pipeline(app={"accounts": [{"id": ACCOUNT, "site": "classic", "poll_interval_s": 3600,
                                                    "navigations_per_minute": 600, "sends_per_minute": 60}]})
    store = Store.from_config(cfg)
    wait_for(lambda: _child(handle, f"browser:classic:{ACCOUNT}")["state"] == "running", what="the session")
    chat_site.inject("c-1", "Ann", "Hi! Do you like hiking?")
    ray.get(handle.poll_now.remote())
    first = wait_for(lambda: (d := _open_drafts(store, "c-1")) and d[0], what="the first draft")
    chat_site.inject("c-1", "Ann", "Actually, are you free tonight?")
    store.sync(Reviewer(store.inline, "tester")).approve(first["_id"])      # the desk cannot know yet: not polled

    stale = wait_for(lambda: (d := store.drafts.get(first["_id"]))["status"] == "superseded" and d,
                     what="the approved draft refused at the send")
    assert "1 newer message arrived before it was sent" in stale["superseded_reason"]
    fresh = wait_for(lambda: (d := _open_drafts(store, "c-1")) and d[0], what="a fresh draft")
    assert len(fresh["message_ids"]) == 2            # it answers both messages
    assert chat_site.sent()["messages"] == []        # nothing was sent for the out-of-date draft
    store.sync(Reviewer(store.inline, "tester")).approve(fresh["_id"])
    wait_for(lambda: store.drafts.get(fresh["_id"])["status"] == "sent", what="the fresh draft sent")
    assert [m["text"] for m in chat_site.sent()["messages"]] == [fresh["text"]]
    # our reply is stored as the conversation's newest message at once: a draft written now
    # starts after it, and a redelivered event of the older messages drafts nothing
    history, _ = store.messages.history(ACCOUNT, "c-1")
    assert [m.direction for m in history] == ["in", "in", "out"]


def test_an_ai_worker_killed_while_holding_20_events_drafts_every_message_once(start_pipeline, chat_site,
                                                                              ai_server):
    cfg, handle = start_pipeline(app={"ai": {"workers": 1, "concurrency": 4}})
    store = Store.from_config(cfg)
    ai_server.latency(60_000)                       # the worker holds every event it gets
    worker = ray.get_actor("ai:0", namespace=cfg.settings.namespace)
    wait_for(lambda: _child(handle, "ai:0")["state"] == "running", what="the AI worker")
    convs = [f"k-{i}" for i in range(20)]
    for i, conv in enumerate(convs):
        chat_site.inject(conv, f"Contact {i}", f"Hello, message number {i}: how are you?")
    wait_for(lambda: ray.get(worker.ping.remote())["in_flight"] >= 20, timeout=90,
             what="20 events held by the worker")
    os.kill(ray.get(worker.__ray_call__.remote(lambda self: os.getpid())), signal.SIGKILL)
    ai_server.latency(0)
    wait_for(lambda: store.drafts.count({"conversation_id": {"$in": convs}}) == 20, timeout=120,
             what="a draft for every conversation")
    assert _child(handle, "ai:0")["restarts"] == 1
    for conv in convs:                               # once each: one draft per conversation
        assert len(list(store.drafts.coll.find({"conversation_id": conv}))) == 1
    assert store.dead_letters.count() == 0           # nothing dead-lettered
    assert ray.get(handle.reconcile_now.remote()) == {"unanswered": [], "draft_events": [], "failed": []}


def _lost_message(store, conversation_id, text, seen_at=None):
    """A message stored by the session whose event never reached a consumer (as if deleted from
    the queue): no draft, no classification, no dead letter."""
    m = ChatMessage(message_id=f"{ACCOUNT}:{conversation_id}:lost", account_id=ACCOUNT, site="meetme",
                    conversation_id=conversation_id, sender="Zoe", text=text,
                    sent_at="2026-01-01T10:00:00Z", direction="in",
                    seen_at=seen_at or utcnow() - timedelta(minutes=1))
    [stored] = store.messages.insert([m])
    store.messages.mark_emitted([stored.message_id])
    return stored


def test_the_reconciler_repairs_a_lost_event_and_a_draft_whose_event_was_never_queued(start_pipeline):
    cfg, handle = start_pipeline(app={"supervisor": {"reconcile": {"interval_s": 3600, "grace_s": 0}}})
    store = Store.from_config(cfg)
    wait_for(lambda: _child(handle, "ai:0")["state"] == "running", what="the AI worker")
    lost = _lost_message(store, "c-lost", "Hey, are we still on for Friday?")
    did = "d-unqueued"
    store.drafts.insert({"_id": did, "account_id": ACCOUNT, "conversation_id": "c-quiet",
                         "message_ids": ["m-q"], "last_message_id": "m-q", "answers_seq": 1,
                         "classification": "needs_reply", "text": "Sure, see you then!"})

    report = ray.get(handle.reconcile_now.remote())
    assert report["unanswered"] == [lost.message_id] and report["draft_events"] == [did]
    redriven = store.drafts.get(draft_id(ACCOUNT, "c-lost", lost.message_id))
    assert redriven is not None and redriven["status"] == "pending_review"
    assert store.outbox.existing([f"draft.created:{did}"]) == {f"draft.created:{did}"}
    # the queued event reaches its consumers (the sheet writes the draft's row)
    wait_for(lambda: store.sheet_rows.present([did]), what="the draft's row in the sheet")
    # a healthy state repairs nothing
    assert ray.get(handle.reconcile_now.remote()) == {"unanswered": [], "draft_events": [], "failed": []}


def test_the_reconciler_leaves_answered_decided_and_recent_messages_alone(start_pipeline, chat_site):
    cfg, handle = start_pipeline(app={"supervisor": {"reconcile": {"interval_s": 3600, "grace_s": 0}}})
    store = Store.from_config(cfg)
    chat_site.inject("c-1", "Ann", "Hi! Do you like hiking?")
    wait_for(lambda: _open_drafts(store, "c-1"), what="a draft")                  # answered: a draft
    _lost_message(store, "c-future", "Seen after the window", seen_at="2999-01-01T00:00:00Z")  # in grace
    dead = _lost_message(store, "c-dead", "A message the AI can never answer")
    store.dead_letters.record("ai", f"message.seen:{dead.message_id}", "invalid AI answer")  # decided
    _lost_message(store, "c-replied", "Thanks!")
    store.messages.insert([ChatMessage(message_id=f"{ACCOUNT}:c-replied:out", account_id=ACCOUNT, site="meetme",
                                       conversation_id="c-replied", sender="me", text="You're welcome",
                                       sent_at="2026-01-01T10:01:00Z", direction="out")])  # our reply
    report = ray.get(handle.reconcile_now.remote())
    assert report == {"unanswered": [], "draft_events": [], "failed": []}
    assert store.drafts.count({"conversation_id": {"$in": ["c-future", "c-dead", "c-replied"]}}) == 0


def test_a_reviewer_cannot_approve_a_draft_older_than_the_conversation(store):
    msgs = [ChatMessage(message_id=f"a:c:{i}", account_id="a", site="meetme", conversation_id="c",
                        sender="Bo", text=t, sent_at=f"2026-01-01T10:0{i}:00Z", direction="in")
            for i, t in enumerate(["hello", "are you there?"])]
    store.messages.insert(msgs[:1])
    store.drafts.insert({"_id": "d1", "account_id": "a", "conversation_id": "c", "message_ids": ["a:c:0"],
                         "last_message_id": "a:c:0", "answers_seq": 1, "classification": "needs_reply",
                         "text": "Hi!"})
    store.messages.insert(msgs[1:])
    with pytest.raises(Conflict, match="1 newer message arrived since this draft was written") as err:
        store.sync(Reviewer(store.inline, "tester")).approve("d1")
    assert err.value.status == "superseded" and err.value.newer_draft_id is None
    assert store.drafts.get("d1")["status"] == "superseded"
    # it can still be rejected on purpose? no: it is superseded, a decision on it is refused too
    with pytest.raises(Conflict):
        store.sync(Reviewer(store.inline, "tester")).reject("d1", "old")
    assert store.outbox.existing(["draft.approved:d1"]) == set()
