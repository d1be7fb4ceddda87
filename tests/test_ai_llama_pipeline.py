"""The AI workers and the whole pipeline with a real model (llama.cpp on SmolLM2-135M), and the
cut recorded on a stored draft (against the stand-in: its answers are certain to be drafts)."""
from __future__ import annotations

import json
import urllib.request

import pytest
import ray

from contracts.errors import DeadLetter, root_cause
from contracts.ids import draft_id
from tests.fixtures.infra import BASE_ENV
from tests.helpers import wait_for
from tests.test_ai_llama import COFFEE, LLAMA_AI
from tests.test_ai_worker import FAST, seed


def test_a_truncated_answer_is_retried_once_then_handed_to_a_person(pool_on, store, llama_server):
    pool, _ = pool_on(llama_server.url, **{**LLAMA_AI, "max_tokens": 8})   # no answer fits in 8
    msgs = seed(store, "c-trunc", COFFEE)
    with pytest.raises(Exception) as info:
        ray.get(pool.submit("acct", "c-trunc"), timeout=300)
    reason = ("AI answer invalid after a corrective retry: the answer was truncated at "
              "max_tokens 8 (finish_reason length)")
    dead = root_cause(info.value)
    assert isinstance(dead, DeadLetter) and dead.reason == reason   # the event is dead-lettered
    failure = store.ai_failures.get("acct", "c-trunc")                # and a person sees why
    assert (failure["reason"], failure["kind"], failure["attempts"]) == (reason, "invalid_answer", 2)
    assert failure["last_message_id"] == msgs[-1].message_id
    assert failure["message_ids"] == [msgs[-1].message_id]
    assert store.drafts.get(draft_id("acct", "c-trunc", msgs[-1].message_id)) is None
    (stats,) = pool.status()["workers"]
    assert (stats["handed_over"], stats["dead_letters"], stats["retries"]) == (1, 1, 0)


def test_the_cut_is_recorded_on_the_draft_and_a_later_draft_clears_a_failure(pool_on, store,
                                                                              ai_server):
    pool, _ = pool_on(ai_server.url, **{**FAST, "workers": 1, "context_tokens": 1024,
                                        "max_tokens": 64})
    store.ai_failures.record("acct", "c-long", "an earlier failure", seq=0)
    words = "we walked along the river and talked about books and films for hours "
    texts = [f"Message {i}: " + words * 6 for i in range(19)] + ["Are you free on Saturday?"]
    msgs = seed(store, "c-long", *texts)
    result = ray.get(pool.submit("acct", "c-long"), timeout=60)
    draft = store.drafts.get(result["draft_id"])
    cut = draft["prompt_cut"]
    assert cut["of_messages"] == 20 and cut["dropped_messages"] > 0 and cut["context_tokens"] == 1024
    (body,) = ai_server.requests()["bodies"]
    sent = json.loads(body["messages"][1]["content"].split("\n", 3)[3])["messages"]
    assert sent[-1]["text"] == "Are you free on Saturday?"
    assert len(sent) == cut["kept_messages"] and "Message 0:" not in str(sent)
    assert body["max_tokens"] == 64
    assert draft["last_message_id"] == msgs[-1].message_id
    assert store.ai_failures.get("acct", "c-long") is None      # answered now: cleared


def test_pipeline_drafts_with_the_real_model(start_pipeline, chat_site, llama_server):
    cfg, handle = start_pipeline(app={"ai": {**LLAMA_AI, "max_tokens": 96}},
                                 AI_API_URL=llama_server.url)
    from actors.store import Store
    store = Store.from_config(cfg)
    chat_site.inject("c-llama", "Alice", COFFEE)
    draft = wait_for(lambda: store.drafts.coll.find_one({"conversation_id": "c-llama"}),
                     timeout=240, what="a draft from the real model")
    assert draft["status"] == "pending_review" and draft["text"]
    desk = next(c for c in ray.get(handle.status.remote())["children"] if c["kind"] == "review")
    req = urllib.request.Request(desk["info"]["url"] + f"/api/drafts/{draft['_id']}",
                                 headers={"Authorization": f"Bearer {BASE_ENV['REVIEW_TOKEN']}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        shown = json.loads(r.read())["draft"]
    assert shown["text"] == draft["text"] and shown["status"] == "pending_review"
