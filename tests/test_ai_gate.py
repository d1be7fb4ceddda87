"""Gate logic (token bucket, breaker), worker-side permits, answer schema and leak guard."""
from __future__ import annotations

import asyncio

import pytest

from actors.ai.errors import InvalidAnswer, TransientAIError
from actors.ai.gate import Breaker, GateCore, TokenBucket
from actors.ai.guard import LeakGuard
from actors.ai.permits import Permits
from actors.ai.prompt import Prompt
from actors.ai.schema import parse_answer
from contracts.settings import AIConf
from tests.helpers import FakeClock


def test_token_bucket_grants_batches_then_paces():
    bucket = TokenBucket(per_minute=600, capacity=10)   # 10/s
    now = bucket.stamp
    assert bucket.take(8, now) == (8, 0.0)
    granted, wait = bucket.take(8, now)
    assert granted == 2 and wait == 0.0
    granted, wait = bucket.take(1, now)
    assert granted == 0 and wait == pytest.approx(0.1)
    assert bucket.take(5, now + 0.5)[0] == 5           # refilled at the configured rate


def test_breaker_transitions():
    b = Breaker(threshold=2, cooldown_s=10, probe_timeout_s=5)
    b.record("fail", 0)
    b.record("ok", 0)                                    # a success resets the streak
    b.record("fail", 1)
    b.record("neutral", 1)                               # a 429 neither helps nor hurts
    assert b.state == "closed"
    b.record("fail", 2)
    assert b.state == "open" and b.admit(5) == (False, False, 7)
    assert b.admit(12) == (True, True, 0.0)              # half-open: one probe ...
    assert b.admit(12)[0] is False                       # ... at a time
    assert b.admit(18) == (True, True, 0.0)              # a lost probe is replaced after its timeout
    b.record("ok", 18)
    assert b.state == "closed" and b.failures == 0 and b.opened_count == 1


async def test_permits_lease_in_batches_and_hold_the_concurrency_share(make_config):
    cfg = make_config(app={"ai": {"requests_per_minute": 100000, "concurrency": 8,
                                  "max_concurrent_requests": 6, "workers": 2}})
    core = GateCore(cfg)
    calls = {"lease": 0, "record": 0}

    async def lease(w, n):
        calls["lease"] += 1
        return core.lease(w, n)

    async def record(w, o):
        calls["record"] += 1
        return core.record(w, o)

    permits = Permits("w", lease, record, batch=8, slots=core.slots_per_worker, fail_fast=False)
    running, peak = 0, 0

    async def attempt():
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return "ok"

    results = await asyncio.gather(*(permits.run(attempt) for _ in range(64)))
    assert results == ["ok"] * 64
    assert peak == core.slots_per_worker == 3            # 6 shared slots split over 2 workers
    assert calls["lease"] <= 64 // 8 + 1 and calls["record"] == 0


async def test_permits_report_failures_and_pace_at_the_rate(make_config):
    cfg = make_config(app={"ai": {"requests_per_minute": 1200, "breaker": {"failure_threshold": 3}}})
    clock = FakeClock()
    core = GateCore(cfg, clock=clock)
    core.bucket = TokenBucket(per_minute=1200, capacity=1, now=clock())  # 20/s, no burst

    async def lease(w, n):
        return core.lease(w, n)

    async def record(w, o):
        return core.record(w, o)

    permits = Permits("w", lease, record, batch=4, slots=4, fail_fast=False, sleep=clock.sleep)

    async def failing():
        raise TransientAIError("boom", status=500)

    with pytest.raises(TransientAIError):
        await permits.run(failing)
    assert core.breaker.failures == 1 and permits.breaker["failures"] == 1

    async def ok():
        return 1

    t0 = clock()
    await asyncio.gather(*(permits.run(ok) for _ in range(10)))
    assert round(clock() - t0, 6) >= 0.4                 # 10 tokens at 20/s after the first
    assert core.breaker.failures == 0                    # the success was reported


def test_schema_normalises_and_rejects():
    a = parse_answer('```json\n{"classification": "spam_or_scam", "reply": "x", "reason": "r"}\n```', 100)
    assert a.classification == "spam_or_scam" and a.reply is None
    for bad, problem in [('{"classification": "needs_reply", "reply": "", "reason": "r"}', "requires"),
                         ('{"classification": "maybe", "reply": null, "reason": "r"}', "classification"),
                         ('[1, 2]', "not an object"), ("no", "no JSON object"),
                         ('Sure: {"classification": "abusive", "reason": ', "JSON is malformed"),
                         ("<think>the contact asks", "never ends"), ("", "empty"),
                         ('{"classification": "needs_reply", "reply": "%s", "reason": "r"}' % ("x" * 101),
                          "more than 100")]:
        with pytest.raises(InvalidAnswer, match=problem):
            parse_answer(bad, 100)


def test_schema_accepts_near_json_models_write():
    obj = '{"classification": "%s", "reply": "Hi!", "reason": "asked"}'
    for text in ['Here you go:\n```json\n' + obj % "needs_reply" + '\n```\nAnything else?',
                 '<think>\nhmm {not json}\n</think>\n' + obj % "needs_reply",
                 'My answer is ' + obj % "NEEDS_REPLY" + ' -- hope it helps',
                 obj % "Needs Reply", '```\n' + obj % "needs-reply" + '```']:
        assert parse_answer(text, 100).classification == "needs_reply", text


def test_leak_guard_catches_reflowed_fragments_of_the_system_prompt():
    prompt = Prompt.load(AIConf().prompt_file)
    guard = LeakGuard(prompt.system, ["sk-secret-123456"])
    line = prompt.system.splitlines()[0]
    assert guard.problem("Hello! Nice to hear from you.") is None
    assert guard.problem("my key: sk-secret-123456") and "sk-secret" not in guard.problem("sk-secret-123456")
    assert guard.problem("Sure:  " + line.upper().replace(" ", "\n  ")) is not None


def test_metrics_never_break_the_caller():
    from actors.ai import metrics
    metrics.observe_latency(0.2, "m")
    metrics.count("tokens", 10, "m")
    metrics.count("retries", 0, "m")
    metrics.breaker_state(1.0)
