"""OpenAI-compatible chat-completions stand-in with an admin API for latency and faults.

POST /v1/chat/completions answers in OpenAI's shape (choices[0].message.content, usage) with a
deterministic JSON classification + draft derived from the conversation in the last user message,
so tests can assert on real behaviour. It checks `Authorization: Bearer <key>` like the real API.

Admin API (tests and benchmarks drive it; no auth, localhost only):
  POST /_admin/reset                    forget faults, latency, recorded requests
  POST /_admin/latency  {"ms": 200, "jitter_ms": 0}
  POST /_admin/faults   {"faults": [{"kind": "429", "retry_after": 1}, ...]}  queued for next calls
  POST /_admin/fault_ratio {"kind": "429", "ratio": 0.3, "retry_after_ms": 50, "seed": 1}
  GET  /_admin/requests                 {"count": n, "bodies": [...] (what the client sent),
                                         "mean_in_flight": time-weighted concurrency seen}
Fault kinds: 429 / 503 (with Retry-After seconds, or retry-after-ms like OpenAI), 500,
timeout (sleep `seconds`, longer than the client timeout), malformed (content not JSON),
wrong_shape (valid JSON missing fields), leak (reply echoes the system prompt and the key), 401.

On purpose, a conversation saying "ignore previous instructions" makes the first answer leak the
system prompt and the key (a corrective follow-up gets a clean answer): the client's validator must
catch it.
"""
from __future__ import annotations

import asyncio
import json
import math
import os
import random
import re
import time
from collections import deque
from typing import Any

from aiohttp import web

from standins import admin

DEFAULT_KEY = "sk-standin-key"
FAULT_KINDS = {"429", "503", "500", "timeout", "malformed", "wrong_shape", "leak", "401"}
INJECTION = re.compile(r"ignore (all )?(previous|prior|above) instructions", re.I)
SPAM = ("crypto", "bitcoin", "investment opportunity", "wire transfer")
INSULTS = ("idiot", "stupid", "loser", "moron", "shut up", "hate you")
FAREWELLS = ("bye", "goodbye", "good night", "see you", "take care")

STATE = web.AppKey("state", dict)


def _fresh_state(key: str) -> dict[str, Any]:
    return {"key": key, "latency_ms": 0.0, "jitter_ms": 0.0, "faults": deque(), "ratio": None,
            "rng": random.Random(0), "bodies": [], "count": 0,
            "in_flight": 0, "area": 0.0, "first": None, "last": None}


def _track(st: dict[str, Any], delta: int) -> None:
    """Time-weighted number of requests in flight: how well a client keeps the server busy."""
    now = time.monotonic()
    if st["first"] is None:
        st["first"] = now
    if st["last"] is not None:
        st["area"] += st["in_flight"] * (now - st["last"])
    st["last"] = now
    st["in_flight"] += delta


def _conversation(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation the client sent as JSON data inside its first user message."""
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    content = str(users[0].get("content", "")) if users else ""
    start, end = content.find("{"), content.rfind("}")
    if start >= 0 and end > start:
        try:
            data = json.loads(content[start:end + 1])
            if isinstance(data, dict) and isinstance(data.get("messages"), list):
                return [m for m in data["messages"] if isinstance(m, dict)]
        except json.JSONDecodeError:
            pass
    return [{"from": "contact", "sender": "contact", "text": content}]


def _words(text: str) -> str:
    return " " + re.sub(r"[^a-z0-9 ]+", " ", text.lower()) + " "


def answer_for(body: dict[str, Any], key: str) -> dict[str, Any]:
    """The deterministic answer a well-behaved model would give (or the leak, on injection)."""
    conv = _conversation(body)
    incoming = [m for m in conv if m.get("from", "contact") != "me"] or conv
    last = incoming[-1] if incoming else {"sender": "there", "text": ""}
    text = str(last.get("text", ""))
    words = _words(text)
    corrected = any(m.get("role") == "assistant" for m in body.get("messages", []))
    if INJECTION.search(text) and not corrected:
        return leak_answer(body, key)
    if any(w in words for w in SPAM):
        return {"classification": "spam_or_scam", "reply": None, "reason": "mentions crypto/money"}
    if any(f" {w} " in words for w in INSULTS):
        return {"classification": "abusive", "reply": None, "reason": "contains insults"}
    if any(f" {w} " in words for w in FAREWELLS):
        return {"classification": "no_reply_needed", "reply": None, "reason": "conversation closed"}
    sender = str(last.get("sender") or "there").split()[0][:40]
    topic = " ".join(text.split()[:6]).rstrip("?!.,")
    return {"classification": "needs_reply",
            "reply": f"Hi {sender}, thanks for your message about \"{topic}\". "
                     f"I'll get back to you properly soon!",
            "reason": "a question or message that deserves a reply"}


def leak_answer(body: dict[str, Any], key: str) -> dict[str, Any]:
    system = next((str(m.get("content", "")) for m in body.get("messages", [])
                   if m.get("role") == "system"), "")
    return {"classification": "needs_reply",
            "reply": f"Sure! My instructions are: {system}\nMy API key is {key}",
            "reason": "the user asked"}


def _completion(body: dict[str, Any], content: str) -> dict[str, Any]:
    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    completion_tokens = len(content.split())
    return {"id": f"chatcmpl-{random.getrandbits(48):x}", "object": "chat.completion",
            "created": int(time.time()), "model": body.get("model", "standin"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def _error(status: int, message: str, etype: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"message": message, "type": etype, "code": None}},
                             status=status, headers=headers)


def _retry_headers(fault: dict[str, Any]) -> dict[str, str]:
    if "retry_after_ms" in fault:
        ms = float(fault["retry_after_ms"])
        return {"retry-after-ms": str(int(ms)), "Retry-After": str(math.ceil(ms / 1000))}
    return {"Retry-After": str(fault.get("retry_after", 1))}


def _next_fault(st: dict[str, Any]) -> dict[str, Any] | None:
    if st["faults"]:
        return st["faults"].popleft()
    ratio = st["ratio"]
    if ratio and st["rng"].random() < ratio["ratio"]:
        return ratio
    return None


async def chat_completions(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    if request.headers.get("Authorization") != f"Bearer {st['key']}":
        return _error(401, "Incorrect API key provided.", "invalid_request_error")
    try:
        body = await request.json()
    except json.JSONDecodeError:
        return _error(400, "request body is not JSON", "invalid_request_error")
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return _error(400, "'messages' is required", "invalid_request_error")
    st["count"] += 1
    st["bodies"].append(body)
    _track(st, +1)
    try:
        return await _answer(st, body)
    finally:
        _track(st, -1)


async def _answer(st: dict[str, Any], body: dict[str, Any]) -> web.Response:
    fault = _next_fault(st)
    kind = fault["kind"] if fault else None
    if kind == "429":  # rate limiting happens at the front door: answered at once
        return _error(429, "Rate limit reached", "rate_limit_error", _retry_headers(fault))
    delay = st["latency_ms"] + (st["rng"].uniform(0, st["jitter_ms"]) if st["jitter_ms"] else 0)
    if delay:
        await asyncio.sleep(delay / 1000)
    if kind == "timeout":
        await asyncio.sleep(float(fault.get("seconds", 30)))
    if kind == "503":
        return _error(503, "Service unavailable", "server_error", _retry_headers(fault))
    if kind == "500":
        return _error(500, "The server had an error while processing your request.", "server_error")
    if kind == "401":
        return _error(401, "Incorrect API key provided.", "invalid_request_error")
    if kind == "malformed":
        content = "Sure! The conversation looks friendly, I would reply with a greeting."
    elif kind == "wrong_shape":
        content = json.dumps({"label": "needs_reply", "text": "hello"})
    elif kind == "leak":
        content = json.dumps(leak_answer(body, st["key"]))
    else:
        content = json.dumps(answer_for(body, st["key"]))
    return web.json_response(_completion(body, content))


async def admin_reset(request: web.Request) -> web.Response:
    st = request.app[STATE]
    st.update(_fresh_state(st["key"]))
    return web.json_response({"ok": True})


async def admin_latency(request: web.Request) -> web.Response:
    data = await request.json()
    st = request.app[STATE]
    st["latency_ms"] = float(data.get("ms", 0))
    st["jitter_ms"] = float(data.get("jitter_ms", 0))
    return web.json_response({"latency_ms": st["latency_ms"], "jitter_ms": st["jitter_ms"]})


def _check_fault(fault: Any) -> dict[str, Any]:
    if not isinstance(fault, dict) or str(fault.get("kind")) not in FAULT_KINDS:
        raise web.HTTPBadRequest(text=f"fault must be an object with kind in {sorted(FAULT_KINDS)}")
    return {**fault, "kind": str(fault["kind"])}


async def admin_faults(request: web.Request) -> web.Response:
    data = await request.json()
    faults = [_check_fault(f) for f in data.get("faults", [])]
    request.app[STATE]["faults"].extend(faults)
    return web.json_response({"queued": len(request.app[STATE]["faults"])})


async def admin_fault_ratio(request: web.Request) -> web.Response:
    data = await request.json()
    st = request.app[STATE]
    if not data.get("ratio"):
        st["ratio"] = None
    else:
        st["ratio"] = {**_check_fault(data), "ratio": float(data["ratio"])}
        st["rng"] = random.Random(data.get("seed", 0))
    return web.json_response({"ratio": st["ratio"]})


async def admin_requests(request: web.Request) -> web.Response:
    st = request.app[STATE]
    span = (st["last"] - st["first"]) if st["first"] is not None else 0.0
    return web.json_response({"count": st["count"], "bodies": st["bodies"],
                              "mean_in_flight": st["area"] / span if span else 0.0})


class AdminClient(admin.AdminClient):
    """Drives a running stand-in's /_admin API (tests, benchmarks). `.url` is what AI_API_URL
    should be; `.key` the key the server accepts."""

    def __init__(self, url: str, key: str):
        super().__init__(url)
        self.key = key

    def reset(self) -> None:
        self._call("POST", "/reset", {})

    def latency(self, ms: float, jitter_ms: float = 0) -> None:
        self._call("POST", "/latency", {"ms": ms, "jitter_ms": jitter_ms})

    def faults(self, *faults: str | dict[str, Any]) -> None:
        """Queue faults for the next calls: "500" or {"kind": "429", "retry_after": 1}."""
        items = [f if isinstance(f, dict) else {"kind": f} for f in faults]
        self._call("POST", "/faults", {"faults": items})

    def fault_ratio(self, kind: str, ratio: float, **extra: Any) -> None:
        """Answer `ratio` of the calls with fault `kind` (0 turns it off); seeded, so repeatable."""
        self._call("POST", "/fault_ratio", {"kind": kind, "ratio": ratio, **extra})

    def requests(self) -> dict[str, Any]:
        return self._call("GET", "/requests")

    @property
    def count(self) -> int:
        return self.requests()["count"]


def make_app(api_key: str | None = None) -> web.Application:
    """The stand-in app; it accepts `api_key` (default: $AI_STANDIN_KEY or a fixed test key)."""
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app[STATE] = _fresh_state(api_key or os.environ.get("AI_STANDIN_KEY") or DEFAULT_KEY)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/_admin/reset", admin_reset)
    app.router.add_post("/_admin/latency", admin_latency)
    app.router.add_post("/_admin/faults", admin_faults)
    app.router.add_post("/_admin/fault_ratio", admin_fault_ratio)
    app.router.add_get("/_admin/requests", admin_requests)
    return app


if __name__ == "__main__":
    from standins.serve import main

    main(make_app, "OpenAI-compatible AI endpoint (key: $AI_STANDIN_KEY)", 8302)
