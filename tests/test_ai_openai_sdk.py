"""The official openai SDK against the AI stand-in: the stand-in answers the way the SDK expects
(base URL ending in /v1, chat.completions.create with and without streaming, models.list, error
bodies the SDK turns into its error classes), so it is a faithful peer for replydesk's client."""
from __future__ import annotations

import json

import openai
import pytest

from actors.ai.schema import response_format
from tests.test_ai_standin import _body


@pytest.fixture
async def sdk(ai_server):
    client = openai.AsyncOpenAI(base_url=ai_server.url + "/v1", api_key=ai_server.key,
                                max_retries=0, timeout=5)
    yield client
    await client.close()


async def test_create_parses_into_the_sdk_types(sdk, ai_server):
    body = _body("Hi! Are you free on Saturday?")
    got = await sdk.chat.completions.create(model="m", messages=body["messages"], n=2,
                                            response_format=response_format("json_schema"))
    assert [c.index for c in got.choices] == [0, 1] and got.choices[0].finish_reason == "stop"
    answer = json.loads(got.choices[0].message.content)
    assert answer["classification"] == "needs_reply" and "Alice" in answer["reply"]
    assert got.usage.total_tokens == got.usage.prompt_tokens + got.usage.completion_tokens > 0
    assert ai_server.requests()["bodies"][0]["response_format"]["type"] == "json_schema"


async def test_stream_and_max_tokens(sdk):
    body = _body("Hi! Are you free on Saturday?")
    stream = await sdk.chat.completions.create(model="m", messages=body["messages"], stream=True,
                                               stream_options={"include_usage": True})
    parts, finish, usage = [], None, None
    async for chunk in stream:
        for c in chunk.choices:
            parts.append(c.delta.content or "")
            finish = c.finish_reason or finish
        usage = chunk.usage or usage
    assert json.loads("".join(parts))["classification"] == "needs_reply"
    assert finish == "stop" and usage.completion_tokens > 0
    cut = await sdk.chat.completions.create(model="m", messages=body["messages"], max_tokens=3)
    assert cut.choices[0].finish_reason == "length" and len(cut.choices[0].message.content.split()) == 3


async def test_models_list(sdk):
    ids = [m.id async for m in sdk.models.list()]
    assert ids == ["gpt-4o-mini", "standin-small"]


async def test_error_classes(sdk, ai_server):
    msgs = _body("hi")["messages"]
    with pytest.raises(openai.BadRequestError) as info:
        await sdk.chat.completions.create(model="m", messages=[])
    assert info.value.status_code == 400 and info.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as info:
        await sdk.chat.completions.create(model="", messages=msgs)
    assert info.value.param == "model"
    ai_server.formats("json_object")
    with pytest.raises(openai.BadRequestError) as info:
        await sdk.chat.completions.create(model="m", messages=msgs,
                                          response_format=response_format("json_schema"))
    assert info.value.param == "response_format" and "not supported" in info.value.message
    ai_server.faults({"kind": "429", "retry_after_ms": 20}, "500", "404", "403")
    for cls in (openai.RateLimitError, openai.InternalServerError, openai.NotFoundError,
                openai.PermissionDeniedError):
        with pytest.raises(cls):
            await sdk.chat.completions.create(model="m", messages=msgs)
    wrong = openai.AsyncOpenAI(base_url=ai_server.url + "/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        await wrong.models.list()
    assert info.value.code == "invalid_api_key"
    await wrong.close()
    wrong_url = openai.AsyncOpenAI(base_url=ai_server.url + "/v1/v1", api_key=ai_server.key,
                                   max_retries=0)
    with pytest.raises(openai.NotFoundError):
        await wrong_url.chat.completions.create(model="m", messages=msgs)
    await wrong_url.close()
