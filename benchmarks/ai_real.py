"""bench_ai's real-model part: llama.cpp on the shipped SmolLM2-135M, one slot, one thread.

The same n conversations are drafted twice in the same run: by the raw server, driven directly
with plain aiohttp (the very requests the drafter builds: same prompt, response_format,
max_tokens, temperature; all sent at once, the server queues them), and through replydesk (the
AI pool under Ray, MongoDB reads and writes per draft, the gate, our own queue in front of the
server's one slot; all submitted at once, as the router's consumer does). Reported: drafts/s
and the p50/p95 of each draft's time from submission to its answer (raw) or stored draft
(replydesk), and the drafts the pool could not make (dead letters). Goal: replydesk >= 90 % of
the raw server's throughput, no dead letters.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiohttp

from actors.ai.drafter import Drafter
from actors.ai.pool import AIPool
from actors.store import Store
from contracts.errors import root_cause
from contracts.events import ChatMessage
from standins.llama import MODEL_ALIAS, LlamaServer

GOAL = 0.90
TEXTS = ["Hi! Are you free for coffee on Saturday?", "Do you like hiking? Any favourite trail?",
         "What kind of music do you listen to?", "Hey, how was your weekend?",
         "Would you like to see a film on Friday evening?", "Which books are you reading now?",
         "Do you cook? What is your best dish?", "Are you more of a cat or a dog person?"]


def conversations(tag: str, n: int) -> list[list[ChatMessage]]:
    return [[ChatMessage(message_id=f"bench:{tag}-{i}:0", account_id="bench", site="meetme",
                         conversation_id=f"{tag}-{i}", sender="Alice", sent_at="2026-01-01",
                         text=f"{TEXTS[i % len(TEXTS)]} ({i})")] for i in range(n)]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def _bodies(cfg, convs: list[list[ChatMessage]]) -> list[dict[str, Any]]:
    """The requests replydesk's drafter sends for these conversations (first attempts)."""
    async def nothing(*_):
        return {}
    drafter = Drafter.from_config(cfg, "bench", nothing, nothing)
    try:
        await drafter.prepare()
        max_tokens = cfg.app.ai.max_tokens
        out = []
        for conv in convs:
            fitted = await drafter.fitter.fit(conv, max_tokens)
            out.append(drafter.body(fitted.messages, max_tokens, drafter.response_format()))
        return out
    finally:
        await drafter.client.close()


async def raw(url: str, bodies: list[dict[str, Any]]) -> tuple[float, list[float]]:
    """(wall seconds, latency of each request) with every request sent at once."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        t0 = time.perf_counter()

        async def one(body: dict[str, Any]) -> float:
            async with session.post(url + "/chat/completions", json=body) as r:
                r.raise_for_status()
                await r.read()
            return time.perf_counter() - t0

        done = await asyncio.gather(*(one(b) for b in bodies))
    return max(done), list(done)


def through_pool(pool: AIPool, convs: list[list[ChatMessage]]
                 ) -> tuple[float, list[float], list[str]]:
    """(wall seconds, latency of each draft, why each dead letter) with every draft submitted
    at once."""
    t0 = time.perf_counter()
    dead: list[str] = []

    async def drive() -> list[float]:
        async def one(conv: str) -> float | None:
            try:
                await pool.submit("bench", conv)
            except Exception as exc:   # a dead letter (AIGaveUp) or an error: counted, not fatal
                cause = root_cause(exc)
                dead.append(getattr(cause, "reason", None) or f"{type(cause).__name__}: {cause}")
                return None
            return time.perf_counter() - t0

        got = await asyncio.gather(*(one(c[0].conversation_id) for c in convs))
        return [g for g in got if g is not None]

    latencies = asyncio.run(drive())
    return (max(latencies) if latencies else time.perf_counter() - t0), latencies, dead


def run(base_cfg, config_for, n: int, max_tokens: int, repeat: int = 1) -> dict[str, float]:
    """The real-model comparison; prints a table and returns its figures."""
    figures: dict[str, float] = {}
    with LlamaServer(n_ctx=2048, n_parallel=1, threads=1) as llama:
        ns = "bench" + uuid.uuid4().hex[:8]
        cfg = config_for(base_cfg, ns, 1, 8, url=llama.url, model=MODEL_ALIAS,
                         max_tokens=max_tokens)
        store = Store.from_config(cfg)
        store.ensure_indexes()
        pool = AIPool.start(cfg, namespace=ns)
        try:
            warm = conversations("warm", 1)
            asyncio.run(raw(llama.url, asyncio.run(_bodies(cfg, warm))))   # model, caches
            print(f"\nreal model: llama.cpp + SmolLM2-135M (1 slot, 1 thread, n_ctx 2048), "
                  f"{n} drafts at once, max_tokens {max_tokens}, best of {repeat}")
            print(f"{'path':>10} {'drafts/s':>9} {'p50 s':>7} {'p95 s':>7} {'dead':>5}")
            best: dict[str, tuple[float, list[float], list[str]]] = {}
            for r in range(repeat):     # interleaved: both see the same machine load
                convs = conversations(f"r{r}{uuid.uuid4().hex[:4]}", n)
                wall, lat = asyncio.run(raw(llama.url, asyncio.run(_bodies(cfg, convs))))
                if "raw" not in best or n / wall > n / best["raw"][0]:
                    best["raw"] = (wall, lat, [])
                for c in convs:
                    store.messages.insert(c)
                wall, lat, dead = through_pool(pool, convs)
                if "replydesk" not in best or n / wall > n / best["replydesk"][0]:
                    best["replydesk"] = (wall, lat, dead)
            for path, (wall, lat, dead) in best.items():
                rate = (len(lat)) / wall
                p50, p95 = (pct(lat, 0.5), pct(lat, 0.95)) if lat else (float("nan"),) * 2
                print(f"{path:>10} {rate:>9.3f} {p50:>7.1f} {p95:>7.1f} {len(dead):>5}", flush=True)
                figures.update({f"real {path}/s": rate, f"real {path} p50 s": p50,
                                f"real {path} p95 s": p95})
            figures["real dead letters"] = len(best["replydesk"][2])
            for reason in sorted(set(best["replydesk"][2])):
                print(f"dead letter: {reason}")
            figures["real replydesk/raw"] = figures["real replydesk/s"] / figures["real raw/s"]
            stats = pool.status()["workers"][0]
            figures["real retries"] = stats["retries"]
            print(f"replydesk/raw: {figures['real replydesk/raw']:.1%}; worker's requests: "
                  f"{stats['requests']}; retries {stats['retries']}; {stats['attempts']} "
                  f"attempts for {stats['created'] + stats['classified']} decisions (a corrected "
                  f"answer costs two)", flush=True)
            print(f"goal: real replydesk/raw >= {GOAL:.0%}: {figures['real replydesk/raw']:.1%} "
                  f"{'met' if figures['real replydesk/raw'] >= GOAL else 'NOT MET'}; dead letters "
                  f"{figures['real dead letters']:.0f} (goal 0)")
        finally:
            pool.stop()
            store.db.client.drop_database(ns)
    return figures
