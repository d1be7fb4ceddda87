"""Context errors as each server words them, the in-flight limiter's AIMD, what a context error
teaches -- without a server (the real one: tests/test_ai_llama.py)."""
from __future__ import annotations

import asyncio

import pytest

from actors.ai.client import AIClient, server_root
from actors.ai.errors import AIGaveUp, ContextTooLong
from actors.ai.limiter import START, Limiter
from actors.ai.overflow import context_error
from actors.ai.server import ServerInfo
from tests.helpers import FakeClock


@pytest.mark.parametrize("err,n_ctx,n_prompt", [
    ({"code": 400, "type": "exceed_context_size_error", "n_prompt_tokens": 3031, "n_ctx": 2048,
      "message": "request (3031 tokens) exceeds the available context size (2048 tokens), try "
                 "increasing it"}, 2048, 3031),                                       # llama.cpp
    ({"type": "invalid_request_error", "code": "context_length_exceeded",
      "message": "This model's maximum context length is 8192 tokens. However, your messages "
                 "resulted in 9000 tokens. Please reduce the length of the messages."},
     8192, 9000),                                                                     # OpenAI
    ({"type": "BadRequestError", "message": "This model's maximum context length is 4096 tokens. "
      "However, you requested 5000 tokens (4800 in the messages, 200 in the completion)."},
     4096, 4800),                                                                     # vLLM
    ({"message": "prompt is too long"}, None, None)])
def test_context_errors_of_every_server_are_recognised_with_their_figures(err, n_ctx, n_prompt):
    exc = context_error(400, err, "AI endpoint X answered HTTP 400")
    assert isinstance(exc, ContextTooLong) and (exc.n_ctx, exc.n_prompt) == (n_ctx, n_prompt)
    assert str(exc).startswith("AI endpoint X answered HTTP 400: the prompt exceeds")


def test_other_400s_and_other_statuses_are_not_context_errors():
    assert context_error(400, {"message": "messages must not be empty"}, "x") is None
    assert context_error(500, {"type": "exceed_context_size_error"}, "x") is None
    assert server_root("http://h:8080/v1") == "http://h:8080"
    assert server_root("https://gw.example/llm/v1") == "https://gw.example/llm"


def test_a_context_error_teaches_the_context_and_the_token_scale():
    client = AIClient("http://127.0.0.1:9/v1", "sk-x", connect_timeout_s=1, timeout_s=1, pool_size=1)
    info = ServerInfo(client, "m", context_tokens=4096)                 # we claimed too much
    info.learn(ContextTooLong("x", n_ctx=2048, n_prompt=3000), sent_tokens=2500)
    assert info.context_tokens == 2048 and info.scale == pytest.approx(1.2)
    info.learn(ContextTooLong("x"), sent_tokens=1500)                   # no figures: a quarter less
    assert info.context_tokens == 1536


def test_ai_gave_up_keeps_its_kind_across_processes():
    import pickle
    exc = pickle.loads(pickle.dumps(AIGaveUp("does not fit", kind="context")))
    assert (exc.reason, exc.kind) == ("does not fit", "context")


async def test_the_limiter_queues_here_and_adapts_aimd_style():
    clock = FakeClock()
    lim = Limiter(cap=8, clock=clock)
    lim.fix(1)
    order: list[str] = []

    async def use(name: str) -> None:
        async with lim.slot():
            order.append(f"+{name}")
            await asyncio.sleep(0)
            order.append(f"-{name}")

    await asyncio.gather(use("a"), use("b"), use("c"))
    assert order == ["+a", "-a", "+b", "-b", "+c", "-c"]     # one at a time, the rest waited here
    assert lim.stats()["peak"] == 1 and lim.stats()["waited"] == 2

    lim.adapt()
    assert lim.limit == START
    for _ in range(30):          # steady per-token time with the limit in use: it grows ...
        async with lim.slot() as t:
            t.saturated = True
            clock.advance(1.0)
        lim.observe(t, tokens=50)
    assert lim.limit > START + 2
    grown = lim.limit
    async with lim.slot() as t:  # ... a 503 or a timeout cuts it by 30 % ...
        clock.advance(1.0)
    lim.observe(t, None, overloaded=True)
    assert lim.limit == pytest.approx(grown * 0.7)
    lim.observe(t, None, overloaded=True)     # ... once per round trip (sent before the cut)
    assert lim.limit == pytest.approx(grown * 0.7)
    async with lim.slot() as t:  # time per token 5x the best: overloaded
        clock.advance(5.0)
    lim.observe(t, tokens=50)
    assert lim.limit == pytest.approx(grown * 0.49)
