"""The conversations view and the actions on a conversation (reply by hand, redraft, Retry AI,
close) and the dead-letter panel: the desk served for real over the real SecantusDB store."""
from __future__ import annotations

import json

import requests

from actors.ai.prompt import Prompt
from contracts.events import ChatMessage, parse_event
from contracts.ids import message_id
from contracts.settings import resolve
from tests.review_helpers import ACCOUNT, add_conversation, add_sent_reply, desk_fixtures, serve

config, desk = desk_fixtures()
ALICE = "alice-token-0123456789abcdef"


def _auth(config) -> dict[str, str]:
    return {"Authorization": f"Bearer {config.settings.review_token.get_secret_value()}"}


def _call(desk, method, path, headers, body=None, **kw):
    return requests.request(method, desk.url + path, json=body, headers=headers, timeout=10, **kw)


def say(store, conversation_id: str, contact: str, text: str, n: int, *, account_id: str = ACCOUNT,
        direction: str = "in") -> ChatMessage:
    """One message of `contact` (or ours) stored as the browser actor stores it."""
    sender = contact if direction == "in" else "me"
    m = ChatMessage(message_id=message_id(account_id, conversation_id, f"x{n}", sender, f"t{n}", text),
                    account_id=account_id, site="meetme", conversation_id=conversation_id,
                    site_message_id=f"x{n}", sender=sender, text=text, direction=direction,
                    sent_at=f"2026-11-25T11:{n:02d}:00Z")
    store.messages.insert([m])
    return m


def _states(desk, headers, **params) -> dict[str, dict]:
    r = _call(desk, "GET", "/api/conversations", headers, params=params)
    assert r.status_code == 200, r.text
    return {c["conversation_id"]: c for c in r.json()["conversations"]}


def test_every_conversation_is_listed_with_its_state_contact_and_unread(desk, store, config):
    auth = _auth(config)
    draft = add_conversation(store, "c-draft", ["hi", "are you there?"])            # sender "alex"
    say(store, "c-spam", "Crypto Carl", "Double your bitcoin today", 1)
    store.conversations.record_classification(
        account_id=ACCOUNT, conversation_id="c-spam", last_message_id="x", classification="spam_or_scam",
        draft_id=None, seq=1)
    failed = say(store, "c-failed", "Dora", "a very long story", 2)
    store.dead_letters.record("ai", f"message.seen:{failed.message_id}", "context too long: 9000 tokens",
                              routing_key="message.seen")
    sent = add_conversation(store, "c-answered", ["see you"], draft="Bye!")
    store.drafts.transition(sent["_id"], "pending_review", "approved", decided_by="owner")
    store.drafts.transition(sent["_id"], "approved", "sending")
    store.drafts.transition(sent["_id"], "sending", "sent")
    add_sent_reply(store, sent)

    listed = _states(desk, auth)
    assert {k: v["state"] for k, v in listed.items()} == {
        "c-draft": "draft", "c-spam": "spam_or_scam", "c-failed": "ai_failed", "c-answered": "answered"}
    assert listed["c-spam"]["contact"] == "Crypto Carl" and listed["c-draft"]["contact"] == "alex"
    assert listed["c-failed"]["reason"] == "context too long: 9000 tokens"
    assert listed["c-draft"]["unread"] == 2 and listed["c-answered"]["unread"] == 0
    assert listed["c-draft"]["draft_id"] == draft["_id"]
    assert listed["c-draft"]["last_text"] == "are you there?" and listed["c-draft"]["last_at"]

    assert set(_states(desk, auth, state="ai_failed")) == {"c-failed"}
    assert set(_states(desk, auth, q="carl")) == {"c-spam"}                 # by contact, a prefix
    assert set(_states(desk, auth, q="bitcoin")) == {"c-spam"}              # by text
    assert set(_states(desk, auth, q="cr double")) == {"c-spam"}
    assert _states(desk, auth, q="nobody") == {}
    assert _states(desk, auth, account="other") == {}

    first = _call(desk, "GET", "/api/conversations", auth, params={"limit": 3}).json()
    rest = _call(desk, "GET", "/api/conversations", auth,
                 params={"limit": 3, "cursor": first["next_cursor"]}).json()
    ids = [c["conversation_id"] for c in first["conversations"] + rest["conversations"]]
    assert sorted(ids) == sorted(listed) and rest["next_cursor"] is None
    for bad, word in (({"state": "maybe"}, "state"), ({"limit": "0"}, "limit"), ({"cursor": "zz"}, "cursor"),
                      ({"q": "x" * 101}, "q")):
        r = _call(desk, "GET", "/api/conversations", auth, params=bad)
        assert r.status_code == 400 and word in r.json()["error"]
    assert _call(desk, "GET", "/api/conversations", {}).status_code == 401


def test_reply_by_hand_is_approved_in_the_reviewers_name_and_queued_once(desk, store, config):
    auth = _auth(config)
    old = add_conversation(store, "c1", ["hello?"], draft="AI text")
    seen = store.messages.newest(ACCOUNT, "c1")["_id"]
    path = f"/api/conversations/{ACCOUNT}/c1/reply"
    before = store.drafts.count()
    for body, status, word in (({"text": "  "}, 400, "text"), ({}, 400, "text"), ({"text": 5}, 400, "text"),
                               ({"text": "x" * 5001}, 400, "too long"),
                               ({"text": "hi", "last_message_id": "nope"}, 400, "last_message_id")):
        r = _call(desk, "POST", path, auth, body)
        assert r.status_code == status and word in r.json()["error"], r.text
    assert _call(desk, "POST", f"/api/conversations/{ACCOUNT}/nope/reply", auth, {"text": "hi"}).status_code == 404
    assert _call(desk, "POST", path, {}, {"text": "hi"}).status_code == 401
    assert store.drafts.count() == before and store.outbox.coll.count_documents({}) == 0

    r = _call(desk, "POST", path, auth, {"text": "Written by me", "last_message_id": seen})
    assert r.status_code == 200, r.text
    d = r.json()["draft"]
    again = _call(desk, "POST", path, auth, {"text": "Written by me", "last_message_id": seen})
    assert again.status_code == 200 and again.json()["draft"]["id"] == d["id"]       # a double submit
    doc = store.drafts.get(d["id"])
    assert (doc["status"], doc["by_hand"], doc["author"], doc["decided_by"]) == ("approved", True, "owner", "owner")
    events = [parse_event(r["body"]) for r in store.outbox.coll.find({"routing_key": "draft.approved"})]
    assert [(e.draft_id, e.text, e.approved_by) for e in events] == [(d["id"], "Written by me", "owner")]
    assert store.drafts.get(old["_id"])["status"] == "superseded"
    assert store.summaries.get(ACCOUNT, "c1")["state"] == "sending"


def test_a_newer_incoming_message_refuses_the_reply_and_shows_it(desk, store, config):
    auth = _auth(config)
    first = say(store, "c2", "Eve", "hi", 1)
    say(store, "c2", "Eve", "actually, never mind", 2)
    r = _call(desk, "POST", f"/api/conversations/{ACCOUNT}/c2/reply", auth,
              {"text": "Hi Eve!", "last_message_id": first.message_id})
    assert r.status_code == 409 and "1 newer message" in r.json()["error"]
    assert [m["text"] for m in r.json()["newer_messages"]] == ["actually, never mind"]
    assert store.drafts.count() == 0 and store.outbox.coll.count_documents({}) == 0


def test_redraft_queues_the_instruction_once_and_rejects_markup(desk, store, config):
    auth = _auth(config)
    old = add_conversation(store, "c3", ["Can we meet?"], draft="Sure!")
    path = f"/api/conversations/{ACCOUNT}/c3/redraft"
    for body, word in (({"instruction": "<b>shorter</b>"}, "markup"), ({"instruction": "use &amp; here"}, "markup"),
                       ({"instruction": ""}, "instruction"), ({"instruction": "x" * 301}, "too long"),
                       ({"instruction": "ok", "last_message_id": 3}, "last_message_id")):
        r = _call(desk, "POST", path, auth, body)
        assert r.status_code == 400 and word in r.json()["error"], r.text
    assert store.outbox.coll.count_documents({}) == 0
    r = _call(desk, "POST", path, auth, {"instruction": "decline politely, in German"})
    assert r.status_code == 202 and r.json()["queued"] is True and r.json()["replaces"] == old["_id"]
    assert _call(desk, "POST", path, auth, {"instruction": "decline politely, in German"}).json()["queued"] is False
    rows = list(store.outbox.coll.find({"routing_key": "draft.requested"}))
    assert len(rows) == 1
    event = parse_event(rows[0]["body"])
    assert (event.instruction, event.replaces, event.requested_by) == ("decline politely, in German", old["_id"], "owner")
    assert store.drafts.decisions.find_one({"decision": "redraft_requested"})["instruction"] == event.instruction

    # the model gets the instruction as data in the user message, never in the system message
    prompt = Prompt.load(resolve(config.app.ai.prompt_file))
    messages = prompt.messages(store.messages.conversation(ACCOUNT, "c3"), event.instruction)
    assert event.instruction not in messages[0]["content"]
    data = json.loads(messages[1]["content"][messages[1]["content"].index("{"):])
    assert data["reviewer_request"] == "decline politely, in German"
    # the note that explains the field joins the system message only with an instruction: a
    # small model given it on every chat read a request into plain questions (SmolLM2 called
    # "free for coffee on Saturday?" spam, quoting the note's examples as its reason)
    assert prompt.request_note and prompt.request_note in messages[0]["content"]
    plain = prompt.messages(store.messages.conversation(ACCOUNT, "c3"))
    assert prompt.request_note not in plain[0]["content"] and "reviewer_request" not in plain[1]["content"]


def test_retry_ai_close_and_reopen(desk, store, config):
    auth = _auth(config)
    m = say(store, "c4", "Finn", "hello", 1)
    store.dead_letters.record("ai", f"message.seen:{m.message_id}", "answer truncated", routing_key="message.seen")
    base = f"/api/conversations/{ACCOUNT}/c4"
    one = _call(desk, "POST", base + "/retry-ai", auth, {})
    two = _call(desk, "POST", base + "/retry-ai", auth, {})
    assert one.status_code == two.status_code == 202
    assert (one.json()["queued"], two.json()["queued"]) == (True, False)     # two clicks, one request
    assert store.outbox.coll.count_documents({"routing_key": "draft.requested"}) == 1

    panel = _call(desk, "GET", "/api/dead-letters", auth).json()["dead_letters"]
    assert [(d["consumer"], d["reason"], d["conversation_id"], d["retryable"]) for d in panel] == [
        ("ai", "answer truncated", "c4", True)]
    d = add_conversation(store, "c9", ["hi"])
    store.dead_letters.record("sheets", f"draft.created:{d['_id']}", "sheet API 403", routing_key="draft.created")
    sheets = _call(desk, "GET", "/api/dead-letters", auth, params={"consumer": "sheets"}).json()["dead_letters"]
    assert [(d["consumer"], d["conversation_id"], d["retryable"]) for d in sheets] == [("sheets", "c9", False)]
    r = _call(desk, "POST", f"/api/dead-letters/{sheets[0]['id']}/retry", auth, {})
    assert r.status_code == 409 and "dead queue" in r.json()["error"]
    assert _call(desk, "POST", "/api/dead-letters/nope/retry", auth, {}).status_code == 404
    assert _call(desk, "GET", "/api/dead-letters", auth, params={"consumer": "x"}).status_code == 400

    closed = _call(desk, "POST", base + "/close", auth, {"last_message_id": m.message_id})
    assert closed.status_code == 200 and closed.json()["conversation"]["closed_by"] == "owner"
    assert closed.json()["conversation"]["state"] == "closed"
    say(store, "c4", "Finn", "are you there?", 2)                               # opens it again
    again = _states(desk, auth)["c4"]
    assert (again["state"], again["closed_by"], again["unread"]) == ("new", None, 1)
    r = _call(desk, "POST", base + "/close", auth, {"last_message_id": m.message_id})
    assert r.status_code == 409 and r.json()["newer_messages"][0]["text"] == "are you there?"
    assert _states(desk, auth)["c4"]["state"] == "new"


def test_a_restricted_reviewer_acts_only_on_their_accounts(make_config, store):
    cfg = make_config(app={"accounts": [{"id": "a1", "site": "meetme"}, {"id": "a2", "site": "meetme"}],
                           "review": {"reviewers": {"alice": {"accounts": ["a1"]}}}},
                      REVIEW_TOKENS=f"alice={ALICE}")
    served = serve(cfg, store)
    try:
        alice = {"Authorization": f"Bearer {ALICE}"}
        for acct in ("a1", "a2"):
            add_conversation(store, f"{acct}-c", ["hi"], account_id=acct)
        assert set(_states(served, alice)) == {"a1-c"}
        assert _call(served, "GET", "/api/conversations", alice, params={"account": "a2"}).status_code == 403
        for action, body in (("reply", {"text": "hi"}), ("redraft", {"instruction": "shorter"}),
                             ("retry-ai", {}), ("close", {})):
            r = _call(served, "POST", f"/api/conversations/a2/a2-c/{action}", alice, body)
            assert r.status_code == 404, (action, r.text)
        assert store.outbox.coll.count_documents({}) == 0
        assert store.summaries.get("a2", "a2-c")["state"] == "draft"
    finally:
        served.stop()


def test_oversized_reply_is_413_and_changes_nothing(make_config, store):
    cfg = make_config(app={"review": {"max_body_bytes": 2048}})
    add_conversation(store, "c5", ["hi"])
    served = serve(cfg, store)
    try:
        r = _call(served, "POST", f"/api/conversations/{ACCOUNT}/c5/reply", _auth(cfg), {"text": "x" * 3000})
        assert r.status_code == 413 and "too large" in r.json()["error"]
        assert store.drafts.count() == 1 and store.outbox.coll.count_documents({}) == 0
    finally:
        served.stop()


def test_summaries_are_backfilled_for_conversations_stored_before_them(desk, store, config):
    from actors.store.backfill import backfill
    draft = add_conversation(store, "c-old", ["hello from before"])
    spam = say(store, "c-old-spam", "Sam", "cheap pills", 1)
    store.conversations.record_classification(
        account_id=ACCOUNT, conversation_id="c-old-spam", last_message_id=spam.message_id,
        classification="spam_or_scam", draft_id=None, seq=1)
    store.summaries.coll.delete_many({})                      # as a database written before them
    assert store.run(backfill(store.inline)) == 2 and store.run(backfill(store.inline)) == 0
    listed = _states(desk, _auth(config))
    assert {k: (v["state"], v["contact"]) for k, v in listed.items()} == {
        "c-old": ("draft", "alex"), "c-old-spam": ("spam_or_scam", "Sam")}
    assert listed["c-old"]["draft_id"] == draft["_id"]


def test_search_pages_newest_first_and_says_when_it_looked_at_only_part(store):
    for i in range(5):
        say(store, f"c-many-{i}", f"Max Mustermann{i}", "hello there", 1)
    say(store, "c-rare", "Max Rare", "hello there", 1)
    found, complete = store.summaries.search("max rare", accounts=None, state=None, limit=10, scan=3)
    assert [d["conversation_id"] for d in found] == ["c-rare"] and complete     # "rare" is the rare word
    found, complete = store.summaries.search("hello", accounts=None, state=None, limit=10, scan=3)
    assert len(found) == 6 and complete                      # one word, no filter: the index pages it
    found, complete = store.summaries.search("hello", accounts=None, state="closed", limit=10, scan=3)
    assert found == [] and not complete                      # 3 looked at, none closed: say so
    page1, _ = store.summaries.search("max", accounts=None, state=None, limit=4)
    last = page1[-1]
    page2, _ = store.summaries.search("max", accounts=None, state=None, limit=4, before=(last["last_at"], last["_id"]))
    assert len(page1) == 4 and len(page2) == 2 and not {d["_id"] for d in page1} & {d["_id"] for d in page2}


def test_a_message_time_that_does_not_parse_or_lies_ahead_sorts_by_when_it_was_stored(store):
    from datetime import datetime
    from contracts.events import utcnow
    for cid, sent_at in (("c-odd", "yesterday, 5 pm"), ("c-future", "2099-01-01T00:00:00Z")):
        store.messages.insert([ChatMessage(
            message_id=f"{ACCOUNT}:{cid}:1", account_id=ACCOUNT, site="meetme", conversation_id=cid,
            sender="Zoe", text="hi", sent_at=sent_at)])
        at = store.summaries.get(ACCOUNT, cid)["last_at"]
        assert isinstance(at, datetime) and at <= utcnow()
    assert {d["conversation_id"] for d in store.summaries.page(accounts=None, state=None, limit=5)} == {
        "c-odd", "c-future"}
