"""The drafter against a real model server: llama.cpp (xllamacpp) on the shipped SmolLM2-135M,
one slot, n_ctx 1024 (tests/fixtures/llama.py). Prompts and answers are kept small: the model
generates 40-50 tokens/s and reads 60-150 prompt tokens/s here."""
from __future__ import annotations

import asyncio

import pytest

from actors.ai.drafter import Tally
from actors.ai.errors import AIGaveUp
from tests.test_ai_client import conversation

# the real server is slow on a shared CPU: generous timeouts, no 0.5 s stand-in ones; greedy
# sampling (temperature 0) so the tiny model answers the same way every run
LLAMA_AI = {"timeout_s": 60, "connect_timeout_s": 2, "max_attempts": 2, "max_tokens": 96,
            "temperature": 0, "workers": 1, "concurrency": 8}
COFFEE = "Hi! Are you free for coffee on Saturday?"


@pytest.fixture
def llama(build, llama_server):
    """llama(**ai) -> (drafter, gate core) against the session's llama.cpp server."""
    def make(**ai):
        return build(env={"AI_API_URL": llama_server.url}, **{**LLAMA_AI, **ai})
    return make


def long_thread(n: int, words: int = 40) -> list:
    """n messages of about `words` words each, the newest asking a question."""
    filler = ("I went hiking up the hill again and the weather was lovely, we saw birds and "
              "a small lake and had sandwiches by the water before walking back down. ")
    texts = [f"Day {i}: " + " ".join((filler * 4).split()[:words]) for i in range(n - 1)]
    return conversation(*texts, COFFEE)


async def test_a_draft_with_json_schema_from_the_real_server(llama, llama_server):
    drafter, _ = llama()
    tally = Tally()
    answer = await drafter.classify(conversation(COFFEE), tally)
    assert answer.classification in ("needs_reply", "no_reply_needed", "spam_or_scam", "abusive")
    assert answer.reason
    assert drafter.response_format() == "json_schema"          # honoured, never stepped down
    assert drafter.info.describe() == {"kind": "llama.cpp", "context_tokens": llama_server.n_ctx,
                                       "slots": 1, "tokenizer": "server", "scale": 1.0}
    assert drafter.permits.limiter.stats()["mode"] == "fixed"
    assert drafter.permits.limiter.limit == 1
    assert tally.retries == 0 and tally.cut is None and 0 < tally.tokens


async def test_three_times_the_context_is_drafted_from_its_newest_messages(llama):
    drafter, _ = llama(context_tokens=768)          # we claim less than the server has
    thread = long_thread(30)
    tally = Tally()
    total = await drafter.fitter.measure(drafter.prompt.messages(thread))
    assert total >= 3 * 768
    answer = await drafter.classify(thread, tally)
    assert answer.reason
    cut = tally.cut
    assert cut["of_messages"] == 30 and cut["dropped_messages"] > 0
    assert cut["kept_messages"] + cut["dropped_messages"] == 30
    assert cut["prompt_tokens"] <= 768 - LLAMA_AI["max_tokens"]
    # what was sent: the newest messages, the question whole; the oldest gone
    fitted = await drafter.fitter.fit(thread, LLAMA_AI["max_tokens"])
    sent = fitted.messages[1]["content"]
    assert COFFEE in sent and "Day 0:" not in sent and "Day 28:" in sent


async def test_a_context_error_from_the_server_is_shrunk_and_retried(llama, llama_server):
    # we claim more than the server has; a large max_tokens keeps the refitted prompt short
    drafter, _ = llama(context_tokens=2048, max_tokens=300)
    tally = Tally()
    await drafter.classify(conversation(COFFEE), tally)        # a short one fits either way
    assert tally.context_retries == 0
    thread = long_thread(24)
    assert await drafter.fitter.measure(drafter.prompt.messages(thread)) > llama_server.n_ctx
    tally = Tally()
    answer = await drafter.classify(thread, tally)   # the real exceed_context_size_error first
    assert answer.reason
    assert tally.context_retries == 1 and tally.cut["dropped_messages"] > 0
    assert drafter.info.context_tokens == llama_server.n_ctx     # learnt from the error


async def test_sixteen_at_once_on_one_slot_wait_here_not_at_the_server(llama):
    # sent at once, 16 requests would queue at the one-slot server (16 x 2 s on a quiet
    # machine), every one's timeout running while it waits there; queued here, each is sent
    # when the slot is free, so its timeout only covers its own answer
    drafter, _ = llama(timeout_s=60)
    tallies = [Tally() for _ in range(16)]
    answers = await asyncio.gather(*(
        drafter.classify(conversation(f"Hi, I am number {i}. {COFFEE}"), tallies[i])
        for i in range(16)), return_exceptions=True)
    stats = drafter.permits.limiter.stats()
    assert not [a for a in answers if isinstance(a, Exception) and not isinstance(a, AIGaveUp)]
    assert sum(t.retries for t in tallies) == 0                 # no timeout, no retry
    # never more than the one slot in flight, and requests did wait here for it (how many found
    # it free depends on how their tokenizer calls interleave: 13 to 15 of 16 waited in CI runs)
    assert stats["peak"] == 1 and stats["waited"] >= 1
    drafted = [a for a in answers if not isinstance(a, Exception)]
    assert len(drafted) == 16, [str(a) for a in answers if isinstance(a, Exception)]
