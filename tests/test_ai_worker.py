"""AIWorker / AIPool / AIGate as Ray actors against the AI stand-in and the MongoDB store."""
from __future__ import annotations

import json
import time

import pytest
import ray

from actors.ai.errors import BreakerOpen, TransientAIError
from actors.ai.gate import GATE_NAME
from actors.ai.pool import AIPool
from contracts import telemetry
from contracts.errors import DeadLetter, root_cause
from contracts.events import ChatMessage, parse_event
from contracts.ids import draft_id
from tests.helpers import wait_for

FAST = {"workers": 2, "concurrency": 4, "connect_timeout_s": 0.5, "timeout_s": 1.0,
        "max_attempts": 3, "backoff_initial_s": 0.01, "backoff_max_s": 0.05}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CARRIER = {"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}


def seed(store, conversation: str, *texts: str, last_out: bool = False) -> list[ChatMessage]:
    msgs = [ChatMessage(message_id=f"acct:{conversation}:{i}", account_id="acct", site="meetme",
                        conversation_id=conversation, sender="Bob", text=t,
                        sent_at=f"2026-01-01T10:0{i}:00Z",
                        direction="out" if last_out and i == len(texts) - 1 else "in")
            for i, t in enumerate(texts)]
    for m in msgs:  # one by one: `seq` (their order) comes from seen_at
        store.messages.insert([m])
    return msgs


@pytest.fixture
def pool_for(pool_on, ai_server):
    """pool_for(**ai): the workers against the AI stand-in, with the fast test settings."""
    return lambda **ai: pool_on(ai_server.url, **{**FAST, **ai})


def test_draft_stored_pending_review_with_outbox_and_span(pool_for, store, ai_server):
    pool, cfg = pool_for()
    msgs = seed(store, "c1", "Hi Bob here", "Do you like hiking?")
    result = ray.get(pool.submit("acct", "c1", CARRIER), timeout=30)
    did = draft_id("acct", "c1", msgs[-1].message_id)
    assert result == {"draft_id": did, "classification": "needs_reply", "created": True}

    draft = store.drafts.get(did)
    assert draft["status"] == "pending_review" and draft["classification"] == "needs_reply"
    assert "Bob" in draft["text"] and draft["model"] == cfg.app.ai.model
    assert draft["message_ids"] == [m.message_id for m in msgs]
    assert draft["last_message_id"] == msgs[-1].message_id

    (row,) = store.outbox.pending()
    event = parse_event(row["body"])
    assert event.type == "draft.created" and event.draft_id == did and event.text == draft["text"]
    assert row["headers"]["traceparent"].split("-")[1] == TRACE_ID

    spans = [s for s in telemetry.read_spans(cfg.settings.trace_file) if s["name"] == "ai.draft"]
    (span,) = spans
    assert span["trace_id"] == TRACE_ID and span["parent_id"] == "00f067aa0ba902b7"
    attrs = span["attributes"]
    assert attrs["ai.attempts"] == 1 and attrs["ai.retries"] == 0 and attrs["ai.tokens"] > 0
    assert attrs["ai.model"] == cfg.app.ai.model and attrs["conversation.id"] == "c1"
    assert attrs["account.hash"] != "acct" and attrs["ai.latency_ms"] > 0
    # the outbox event is a child of the ai.draft span
    assert row["headers"]["traceparent"].split("-")[2] == span["span_id"]
    assert ai_server.key not in cfg.settings.trace_file.read_text()

    # redelivery: no second AI call, no second draft, the same (idempotent) outbox event
    again = ray.get(pool.submit("acct", "c1", CARRIER), timeout=30)
    assert again == {"draft_id": did, "classification": "needs_reply", "created": False}
    assert ai_server.count == 1 and store.drafts.count() == 1 and len(store.outbox.pending()) == 1


def test_no_reply_classes_and_outgoing_newest(pool_for, store, ai_server):
    pool, _ = pool_for(workers=1)
    seed(store, "spam", "hello", "great bitcoin investment opportunity for you")
    seed(store, "mine", "hello", "hi, how are you?", last_out=True)
    spam, mine = ray.get([pool.submit("acct", "spam"), pool.submit("acct", "mine")], timeout=30)
    assert spam == {"draft_id": None, "classification": "spam_or_scam", "created": False}
    assert mine == {"draft_id": None, "classification": None, "created": False}
    assert ai_server.count == 1 and store.drafts.count() == 0
    (row,) = store.outbox.pending()
    event = parse_event(row["body"])
    assert event.type == "conversation.classified" and event.classification == "spam_or_scam"


def test_dead_letter_and_permanent_errors_cross_ray(pool_for, store, ai_server):
    pool, _ = pool_for(workers=1)
    seed(store, "c1", "hello there")
    ai_server.faults("malformed", "malformed")
    with pytest.raises(Exception) as info:
        ray.get(pool.submit("acct", "c1"), timeout=30)
    cause = root_cause(info.value)
    assert isinstance(cause, DeadLetter) and "no JSON object" in cause.reason
    assert store.drafts.count() == 0 and store.outbox.pending() == []
    with pytest.raises(Exception) as info:  # a conversation with no stored messages
        ray.get(pool.submit("acct", "nothing-here"), timeout=30)
    assert isinstance(root_cause(info.value), DeadLetter)
    stats = ray.get(pool.handles[0].stats.remote())
    assert stats["dead_letters"] == 2 and stats["attempts"] == 2


def test_shared_breaker_opens_across_workers_and_closes(pool_for, store, ai_server, ns):
    pool, _ = pool_for(max_attempts=1, breaker={"failure_threshold": 2, "cooldown_s": 1.0,
                                                "fail_fast": True})
    seed(store, "c1", "hello there")
    ai_server.faults("500", "500")
    refs = [pool.submit("acct", "c1"), pool.submit("acct", "c1")]  # one on each worker
    for ref in refs:
        with pytest.raises(Exception) as info:
            ray.get(ref, timeout=30)
        assert isinstance(root_cause(info.value), TransientAIError)
    gate = ray.get_actor(GATE_NAME, namespace=ns)
    status = ray.get(gate.status.remote())
    assert status["breaker"]["state"] == "open" and status["failures_reported"] == 2
    workers = pool.status()["workers"]
    assert [w["errors"] for w in workers] == [1, 1]  # the failures came from both workers

    with pytest.raises(Exception) as info:  # fails fast, without calling the endpoint
        ray.get(pool.submit("acct", "c1"), timeout=30)
    assert isinstance(root_cause(info.value), BreakerOpen) and "circuit breaker" in str(info.value)
    assert ai_server.count == 2

    deadline = time.monotonic() + 10
    while ray.get(gate.status.remote())["breaker"]["retry_in_s"] > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    result = ray.get(pool.submit("acct", "c1"), timeout=30)
    assert result["created"] is True
    assert ray.get(gate.ping.remote())["state"] == "closed"


def test_reattach_by_name(pool_for, store, ai_server, ns):
    pool, cfg = pool_for(workers=1)
    seed(store, "c1", "hello there")
    again = AIPool.from_existing(cfg, namespace=ns)
    assert [h._actor_id for h in again.handles] == [h._actor_id for h in pool.handles]
    assert ray.get(again.submit("acct", "c1"), timeout=30)["created"] is True
    assert json.dumps(again.status()["gate"]["breaker"])


def test_classification_is_stored_and_a_redelivery_costs_no_ai_call(pool_for, store, ai_server):
    pool, _ = pool_for()
    spam = seed(store, "c-spam", "Send bitcoin now and earn crypto 10x")
    first = ray.get(pool.submit("acct", "c-spam", CARRIER), timeout=30)
    assert first["classification"] == "spam_or_scam" and first["draft_id"] is None
    conv = store.conversations.get("acct", "c-spam")
    assert conv["classification"] == "spam_or_scam" and conv["draft_id"] is None
    assert conv["last_message_id"] == spam[-1].message_id
    calls = ai_server.count

    again = ray.get(pool.submit("acct", "c-spam", CARRIER), timeout=30)  # a redelivered event
    assert again == first
    assert ai_server.count == calls  # answered from the store, not by asking the AI again
    assert store.outbox.coll.count_documents({"routing_key": "conversation.classified"}) == 1

    seed(store, "c-ok", "Fancy a walk on Sunday?")
    made = ray.get(pool.submit("acct", "c-ok", CARRIER), timeout=30)
    assert store.conversations.get("acct", "c-ok")["draft_id"] == made["draft_id"]


def test_a_draft_written_from_an_older_history_after_a_newer_one_is_superseded_at_once(
        pool_for, store, ai_server):
    """Two workers race on one conversation: the draft of the older history is stored last. It is
    superseded by the newer one at once (never two open drafts), and the conversation's state
    stays at the newest history."""
    pool, _ = pool_for(timeout_s=10)
    seed(store, "c1", "Hi, are you there?")
    ai_server.latency(1500)                      # the first draft's answer comes late
    slow = pool.submit("acct", "c1")
    wait_for(lambda: ai_server.count == 1, 30, "the first request at the AI")
    ai_server.latency(0)
    store.messages.insert([ChatMessage(message_id="acct:c1:new", account_id="acct", site="meetme",
                                       conversation_id="c1", sender="Bob", text="Fancy a walk?",
                                       sent_at="2026-01-01T10:05:00Z")])
    fast = ray.get(pool.submit("acct", "c1"), timeout=30)
    late = ray.get(slow, timeout=30)
    assert fast["created"] and late["created"] and fast["draft_id"] != late["draft_id"]
    older, newer = store.drafts.get(late["draft_id"]), store.drafts.get(fast["draft_id"])
    assert older["answers_seq"] < newer["answers_seq"]
    assert older["status"] == "superseded" and older["superseded_by"] == fast["draft_id"]
    assert newer["status"] == "pending_review"
    state = store.conversations.get("acct", "c1")
    assert state["draft_id"] == fast["draft_id"] and state["seq"] == newer["answers_seq"]
    # and a redelivery of either event asks the AI no more: the newest draft is found
    calls = ai_server.count
    assert ray.get(pool.submit("acct", "c1"), timeout=30)["draft_id"] == fast["draft_id"]
    assert ai_server.count == calls
