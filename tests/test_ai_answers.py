"""What real OpenAI-compatible servers do, against the stand-in: base URLs with or without /v1
(and behind a proxy prefix), answers shaped the way models really answer, truncation,
response_format fallback, and which failures are outages, invalid answers or permanent."""
from __future__ import annotations

import pytest

from actors.ai.client import api_base
from actors.ai.drafter import Tally
from contracts.errors import DeadLetter, PermanentError
from tests.test_ai_client import conversation


@pytest.mark.parametrize("given,expected", [
    ("http://h:8000", "http://h:8000/v1"), ("http://h:8000/", "http://h:8000/v1"),
    ("http://h:8000/v1", "http://h:8000/v1"), ("http://h:8000/v1/", "http://h:8000/v1"),
    ("https://gw.example/llm/v1", "https://gw.example/llm/v1"),
    ("https://gw.example/llm", "https://gw.example/llm/v1"),
    ("https://g.example/v1beta/openai/", "https://g.example/v1beta/openai"),
    ("http://h:8000/v1/chat/completions", "http://h:8000/v1"),
    ("https://x.example/openai/v1?api-version=1", "https://x.example/openai/v1?api-version=1")])
def test_api_base_forms(given, expected):
    assert api_base(given) == expected


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/", "/v1/chat/completions"])
async def test_every_url_form_reaches_the_standin(build, ai_server, suffix):
    drafter, _ = build(env={"AI_API_URL": ai_server.url + suffix})
    answer = await drafter.classify(conversation("Hi! Free on Saturday?"), Tally())
    assert answer.classification == "needs_reply"
    assert ai_server.count == 1 and ai_server.requests()["unrouted"] == []
    assert await drafter.client.models() == ["gpt-4o-mini", "standin-small"]


@pytest.mark.parametrize("suffix", ["/gw/llm/v1", "/gw/llm"])
async def test_proxy_prefix(build, ai_proxy_server, suffix):
    drafter, _ = build(env={"AI_API_URL": ai_proxy_server.url + suffix})
    answer = await drafter.classify(conversation("Hi! Free on Saturday?"), Tally())
    assert answer.classification == "needs_reply" and ai_proxy_server.count == 1


async def test_wrong_path_is_permanent_after_one_request_with_the_hint(build, ai_server):
    drafter, _ = build(env={"AI_API_URL": ai_server.url + "/v1/v1"})
    with pytest.raises(PermanentError) as info:
        await drafter.classify(conversation("hello?"), Tally())
    assert "HTTP 404" in str(info.value) and "check AI_API_URL" in str(info.value)
    # the worker asked the endpoint what it is first (GET /models), then sent one request
    assert ai_server.requests()["unrouted"] == ["/v1/v1/models", "/v1/v1/chat/completions"]


@pytest.mark.parametrize("kind,hint", [("400", "rejected"), ("401", "AI_API_KEY"),
                                       ("403", "not allowed"), ("404", "AI_MODEL")])
async def test_4xx_is_permanent_after_one_request(build, ai_server, kind, hint):
    drafter, core = build()
    ai_server.faults(kind)
    with pytest.raises(PermanentError) as info:
        await drafter.classify(conversation("hello?"), Tally())
    assert f"HTTP {kind}" in str(info.value) and hint in str(info.value)
    assert ai_server.count == 1 and core.status()["breaker"]["failures"] == 0


@pytest.mark.parametrize("kind", ["list_content", "stream", "prose_fence", "think", "upper_enum"])
async def test_answers_real_models_give_are_understood_at_once(build, ai_server, kind):
    drafter, _ = build()
    ai_server.faults(kind)
    tally = Tally()
    answer = await drafter.classify(conversation("Hi! Are you free on Saturday?"), tally)
    assert answer.classification == "needs_reply" and "Alice" in answer.reply
    assert tally.attempts == 1 and not tally.corrected and ai_server.count == 1


@pytest.mark.parametrize("kind,reason", [
    ("empty_choices", "HTTP 200 without any choice (choices: [])"),
    ("tool_call", "the model called classify instead of answering with content"),
    ("malformed", "the answer contains no JSON object (69 characters of text)"),
    ("truncated", "the answer was truncated at max_tokens 400 (finish_reason length)")])   # the default
async def test_unusable_200_is_corrected_once_then_dead_letter_breaker_untouched(
        build, ai_server, kind, reason):
    drafter, core = build(breaker={"failure_threshold": 1, "cooldown_s": 30})
    ai_server.faults(kind, kind)
    with pytest.raises(DeadLetter) as info:
        await drafter.classify(conversation("hello?"), Tally())
    assert info.value.reason == f"AI answer invalid after a corrective retry: {reason}"
    assert ai_server.count == 2
    status = core.status()
    assert status["breaker"]["state"] == "closed" and status["failures_reported"] == 0


async def test_breaker_closed_after_20_invalid_answers_in_a_row(build, ai_server):
    drafter, core = build(breaker={"failure_threshold": 3, "cooldown_s": 30, "fail_fast": True})
    ai_server.faults(*(["empty_choices", "tool_call", "malformed", "truncated"] * 5))
    for _ in range(10):
        with pytest.raises(DeadLetter):
            await drafter.classify(conversation("hello?"), Tally())
    assert ai_server.count == 20
    assert core.status()["breaker"] == {**core.status()["breaker"], "state": "closed",
                                        "failures": 0, "opened_count": 0}
    tally = Tally()
    answer = await drafter.classify(conversation("hello?"), tally)  # the next one is served now
    assert answer.classification == "needs_reply" and tally.attempts == 1


async def test_max_tokens_truncation_retried_once_with_more(build, ai_server):
    drafter, _ = build(max_tokens=5, max_tokens_on_truncation=400)
    tally = Tally()
    answer = await drafter.classify(conversation("Hi! Are you free on Saturday?"), tally)
    assert answer.classification == "needs_reply" and tally.corrected
    first, second = ai_server.requests()["bodies"]
    assert (first["max_tokens"], second["max_tokens"]) == (5, 400)
    assert second["messages"] == first["messages"]   # the same question, room to answer


async def test_max_tokens_truncation_without_more_is_a_precise_dead_letter(build, ai_server):
    drafter, _ = build(max_tokens=5)
    with pytest.raises(DeadLetter) as info:
        await drafter.classify(conversation("Hi! Are you free on Saturday?"), Tally())
    assert info.value.reason.endswith("truncated at max_tokens 5 (finish_reason length)")


async def test_response_format_falls_back_and_remembers_per_endpoint(build, ai_server):
    ai_server.formats("json_object")       # an older server: no json_schema
    drafter, core = build()
    assert (await drafter.classify(conversation("hello?"), Tally())).classification == "needs_reply"
    await drafter.classify(conversation("hello again?"), Tally())
    kinds = [(b.get("response_format") or {}).get("type") for b in ai_server.requests()["bodies"]]
    assert kinds == ["json_schema", "json_object", "json_object"]
    ai_server.formats()                   # nothing but text: the prompt-only contract
    again, _ = build()                    # another drafter of this process, same endpoint
    assert (await again.classify(conversation("hi?"), Tally())).classification == "needs_reply"
    kinds = [(b.get("response_format") or {}).get("type") for b in ai_server.requests()["bodies"]]
    assert kinds[3:] == ["json_object", None]
    assert core.status()["breaker"]["failures"] == 0
