"""The client and the whole pipeline against a third-party OpenAI mock server (fakellm), beside
our own stand-in: the same URL forms, answers and failure classes must hold there too."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from actors.ai.drafter import Tally
from actors.bus import dead_letters
from actors.store import Store
from contracts.errors import DeadLetter, PermanentError
from tests.fixtures.fakellm import ANSWER
from tests.fixtures.infra import ROOT
from tests.helpers import wait_for
from tests.test_ai_client import conversation


@pytest.mark.parametrize("suffix", ["", "/v1"])
@pytest.mark.parametrize("marker", ["tp-json", "tp-fence", "tp-think", "tp-upper"])
async def test_answers_from_fakellm(build, fakellm, suffix, marker):
    drafter, _ = build(env={"AI_API_URL": fakellm.url + suffix})
    before = fakellm.hits().get(marker, 0)
    tally = Tally()
    answer = await drafter.classify(conversation(f"Any favourite trails? ({marker})"), tally)
    assert (answer.classification, answer.reply) == ("needs_reply", ANSWER["reply"])
    assert tally.attempts == 1 and fakellm.hits()[marker] == before + 1


async def test_tool_call_is_an_invalid_answer_not_an_outage(build, fakellm):
    drafter, core = build(env={"AI_API_URL": fakellm.url + "/v1"},
                          breaker={"failure_threshold": 1, "cooldown_s": 30})
    with pytest.raises(DeadLetter) as info:
        await drafter.classify(conversation("Trails? (tp-tool)"), Tally())
    assert "the model called lookup_trails instead of answering with content" in info.value.reason
    assert core.status()["breaker"]["state"] == "closed"


@pytest.mark.parametrize("marker,status", [("tp-missing", 404), ("tp-denied", 401), ("tp-bad", 400)])
async def test_error_answers_are_permanent_after_one_request(build, fakellm, marker, status):
    drafter, _ = build(env={"AI_API_URL": fakellm.url + "/v1"})
    before = fakellm.hits().get(marker, 0)
    with pytest.raises(PermanentError, match=f"HTTP {status}"):
        await drafter.classify(conversation(f"hello ({marker})"), Tally())
    assert fakellm.hits()[marker] == before + 1


def test_pipeline_drafts_with_fakellm_and_dead_letters_a_404_at_once(start_pipeline, chat_site,
                                                                     fakellm):
    cfg, _ = start_pipeline(AI_API_URL=fakellm.url + "/v1")
    store = Store.from_config(cfg)
    before = fakellm.hits().get("tp-missing", 0)
    chat_site.inject("c-hike", "Alice", "Any favourite trails around here? (tp-fence)")
    chat_site.inject("c-gone", "Bob", "Hello, are you there? (tp-missing)")
    draft = wait_for(lambda: store.drafts.coll.find_one({"conversation_id": "c-hike"}),
                     what="draft from fakellm")
    assert draft["text"] == ANSWER["reply"] and draft["status"] == "pending_review"
    dead = wait_for(lambda: [d for d in dead_letters(cfg) if "c-gone" in d["body"]],
                    what="dead letter of the 404")
    assert len(dead) == 1 and dead[0]["consumer"] == "ai"
    assert "HTTP 404" in dead[0]["reason"] and "check AI_API_URL" in dead[0]["reason"]
    assert "x-delivery-count" not in dead[0]["headers"]          # the first delivery
    assert fakellm.hits()["tp-missing"] == before + 1            # one request, never retried


@pytest.mark.full  # the whole demo: Ray, the stack, Chromium
def test_demo_with_a_server_that_cannot_draft_says_why_in_one_line(fakellm, mongo_uri, rabbit_url):
    """`./run demo` honours AI_API_URL; fakellm echoes prose for the demo's conversations, so
    every draft is dead-lettered: the demo names them and the reason, exits 1, no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AI_", "RAY_ADDRESS"))}
    env.update(AI_API_URL=fakellm.url + "/v1", AI_API_KEY="sk-any", MONGODB_URI=mongo_uri,
               RABBITMQ_URL=rabbit_url, PYTHONPATH=str(ROOT), LOG_LEVEL="ERROR")
    run = subprocess.run([sys.executable, "-m", "standins.demo", "--timeout", "90"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
    assert "Traceback" not in run.stdout + run.stderr
    last = [line for line in run.stderr.splitlines() if line.startswith("demo failed:")]
    assert len(last) == 1, run.stderr[-2000:]
    assert last[0].startswith(f"demo failed: 4 of 4 conversations could not be drafted by the AI "
                              f"at {fakellm.url}/v1: c-alice, c-bob, c-carol, c-dave: AI answer "
                              f"invalid after a corrective retry: the answer contains no JSON object")
