"""OpenAI-compatible chat-completions stand-in with an admin API for latency and faults.

Faithful where clients look: `POST {prefix}/chat/completions` and `GET {prefix}/models` under the
`/v1` prefix (another prefix, e.g. a proxy's `/gw/llm/v1`, via make_app(prefix=...)); the
`Authorization: Bearer <key>` check; 400 with an OpenAI error body ({"error": {"message", "type",
"param", "code"}}) for a missing `model` or empty `messages`; `n` choices; `max_tokens` /
`max_completion_tokens` truncation with finish_reason "length" (a token is a whitespace-separated
word here); `stream: true` answered as SSE `data:` chunks ending `data: [DONE]` (with a usage chunk
when `stream_options.include_usage`); `response_format` honoured (the answer always is the JSON
the schema describes) or rejected with 400 param "response_format" for the types configured as
unsupported. Any other path answers an OpenAI-style 404 (counted, so tests see wrong URLs).
The answer is a deterministic JSON classification + draft derived from the conversation in the
first user message, so tests can assert on real behaviour.

Admin API (tests and benchmarks drive it; no auth, localhost only):
  POST /_admin/reset                    forget faults, latency, recorded requests, formats
  POST /_admin/latency  {"ms": 200, "jitter_ms": 0}
  POST /_admin/faults   {"faults": [{"kind": "429", "retry_after": 1}, ...]}  queued for next calls
  POST /_admin/fault_ratio {"kind": "429", "ratio": 0.3, "retry_after_ms": 50, "seed": 1}
  POST /_admin/formats  {"accept": ["json_object", "text"]}  response_format types accepted
  GET  /_admin/requests                 {"count": n, "bodies": [...] (what the client sent),
                                         "unrouted": [paths that got a 404],
                                         "mean_in_flight": time-weighted concurrency seen}
Fault kinds: 429 / 503 (with Retry-After seconds, or retry-after-ms like OpenAI), 500,
timeout (sleep `seconds`, longer than the client timeout), 400 / 401 / 403 / 404 (OpenAI error
bodies); 200 answers a model or server may give: malformed (prose, no JSON), wrong_shape (valid
JSON missing fields), leak (reply echoes the system prompt and the key), list_content (content
as a list of text parts), empty_choices (`choices: []`), tool_call (a tool call, content null),
stream (SSE although nobody asked), prose_fence (prose, then a ```json fence), think (a
<think>...</think> block before the JSON), upper_enum (classification in upper case), truncated
(half the answer, finish_reason "length").

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
FAULT_KINDS = {"429", "503", "500", "timeout", "400", "401", "403", "404", "malformed",
               "wrong_shape", "leak", "list_content", "empty_choices", "tool_call", "stream",
               "prose_fence", "think", "upper_enum", "truncated"}
FORMATS = ("text", "json_object", "json_schema")
MODELS = ("gpt-4o-mini", "standin-small")
INJECTION = re.compile(r"ignore (all )?(previous|prior|above) instructions", re.I)
SPAM = ("crypto", "bitcoin", "investment opportunity", "wire transfer")
INSULTS = ("idiot", "stupid", "loser", "moron", "shut up", "hate you")
FAREWELLS = ("bye", "goodbye", "good night", "see you", "take care")

STATE = web.AppKey("state", dict)


def _fresh_state(key: str) -> dict[str, Any]:
    return {"key": key, "latency_ms": 0.0, "jitter_ms": 0.0, "faults": deque(), "ratio": None,
            "rng": random.Random(0), "bodies": [], "count": 0, "unrouted": [],
            "formats": set(FORMATS),
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


def _limit(body: dict[str, Any]) -> int | None:
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    return int(limit) if isinstance(limit, (int, float)) and limit > 0 else None


def _truncate(content: str, tokens: int) -> str:
    """The first `tokens` words of `content`, its spacing kept (what a length cut-off leaves)."""
    words = list(re.finditer(r"\S+", content))
    return content[:words[tokens - 1].end()] if 0 < tokens <= len(words) else content


def _shape(body: dict[str, Any], content: str, kind: str | None) -> tuple[str, str]:
    """(content, finish_reason) after `max_tokens` and a truncating fault."""
    if kind == "truncated":
        return content[: len(content) // 2], "length"
    limit = _limit(body)
    if limit is not None and len(content.split()) > limit:
        return _truncate(content, limit), "length"
    return content, "stop"


def _message(content: str, kind: str | None) -> dict[str, Any]:
    if kind == "list_content":
        half = len(content) // 2
        return {"role": "assistant", "content": [{"type": "text", "text": content[:half]},
                                                 {"type": "text", "text": content[half:]}]}
    if kind == "tool_call":
        return {"role": "assistant", "content": None, "tool_calls": [{
            "id": f"call_{random.getrandbits(32):x}", "type": "function",
            "function": {"name": "classify", "arguments": content}}]}
    return {"role": "assistant", "content": content}


def _usage(body: dict[str, Any], content: str, n: int = 1) -> dict[str, int]:
    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", [])
                        if isinstance(m, dict))
    completion_tokens = len(content.split()) * n
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def _completion(body: dict[str, Any], content: str, kind: str | None = None) -> dict[str, Any]:
    content, finish = _shape(body, content, kind)
    n = int(body.get("n") or 1)
    choices = [] if kind == "empty_choices" else [
        {"index": i, "finish_reason": "tool_calls" if kind == "tool_call" else finish,
         "message": _message(content, kind)} for i in range(n)]
    return {"id": f"chatcmpl-{random.getrandbits(48):x}", "object": "chat.completion",
            "created": int(time.time()), "model": body.get("model", "standin"),
            "choices": choices, "usage": _usage(body, content, n)}


async def _stream(request: web.Request, body: dict[str, Any], content: str,
                  kind: str | None) -> web.StreamResponse:
    """The completion as SSE chunks: role, content in pieces, finish_reason, [usage], [DONE]."""
    content, finish = _shape(body, content, kind)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache"})
    await resp.prepare(request)
    cid, created, model = f"chatcmpl-{random.getrandbits(48):x}", int(time.time()), \
        body.get("model", "standin")

    async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
        chunk = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                 "choices": choices, **extra}
        await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")

    n = int(body.get("n") or 1)
    for i in range(n):
        await send([{"index": i, "delta": {"role": "assistant", "content": ""},
                     "finish_reason": None}])
    step = max(1, len(content) // 3)
    for at in range(0, len(content), step):
        for i in range(n):
            await send([{"index": i, "delta": {"content": content[at:at + step]},
                         "finish_reason": None}])
    for i in range(n):
        await send([{"index": i, "delta": {}, "finish_reason": finish}])
    if (body.get("stream_options") or {}).get("include_usage"):
        await send([], usage=_usage(body, content, n))
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


def _error(status: int, message: str, etype: str, headers: dict[str, str] | None = None,
           param: str | None = None, code: str | None = None) -> web.Response:
    return web.json_response({"error": {"message": message, "type": etype, "param": param,
                                        "code": code}}, status=status, headers=headers)


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


def _authorized(request: web.Request) -> bool:
    return request.headers.get("Authorization") == f"Bearer {request.app[STATE]['key']}"


def _invalid(body: Any, formats: set[str]) -> web.Response | None:
    """OpenAI's 400 for a request it would refuse, or None."""
    if not isinstance(body, dict):
        return _error(400, "the request body must be a JSON object", "invalid_request_error")
    if not body.get("model") or not isinstance(body["model"], str):
        return _error(400, "you must provide a model parameter", "invalid_request_error", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _error(400, "'messages' must be a non-empty array", "invalid_request_error",
                      param="messages", code="empty_array" if isinstance(messages, list) else None)
    n = body.get("n", 1)
    if not isinstance(n, int) or not 1 <= n <= 8:
        return _error(400, "'n' must be an integer from 1 to 8", "invalid_request_error", param="n")
    rf = body.get("response_format")
    if rf is not None:
        rtype = rf.get("type") if isinstance(rf, dict) else None
        if rtype not in FORMATS:
            return _error(400, f"Invalid value for 'response_format.type': {rtype!r}",
                          "invalid_request_error", param="response_format.type")
        if rtype not in formats:
            return _error(400, f"Invalid parameter: 'response_format' of type '{rtype}' is not "
                               f"supported with this model.", "invalid_request_error",
                          param="response_format")
        if rtype == "json_schema" and not isinstance((rf.get("json_schema") or {}).get("schema"), dict):
            return _error(400, "Missing required parameter: 'response_format.json_schema.schema'",
                          "invalid_request_error", param="response_format.json_schema")
    return None


async def chat_completions(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    if not _authorized(request):   # echoes the key it was sent, as careless servers do
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return _error(401, f"Incorrect API key provided: {sent}.", "invalid_request_error",
                      code="invalid_api_key")
    try:
        body = await request.json()
    except json.JSONDecodeError:
        return _error(400, "We could not parse the JSON body of your request.",
                      "invalid_request_error")
    st["count"] += 1
    st["bodies"].append(body)
    refused = _invalid(body, st["formats"])
    if refused is not None:
        return refused
    _track(st, +1)
    try:
        return await _answer(request, st, body)
    finally:
        _track(st, -1)


_ERROR_FAULTS = {"400": (400, "Invalid request.", "invalid_request_error", None),
                 "401": (401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
                 "403": (403, "You are not allowed to use this model.", "permission_error", None),
                 "404": (404, "The model does not exist or you do not have access to it.",
                         "invalid_request_error", "model_not_found")}


async def _answer(request: web.Request, st: dict[str, Any], body: dict[str, Any]) -> web.StreamResponse:
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
    if kind in _ERROR_FAULTS:
        status, message, etype, code = _ERROR_FAULTS[kind]
        return _error(status, message, etype, code=code)
    answer = answer_for(body, st["key"])
    if kind == "malformed":
        content = "Sure! The conversation looks friendly, I would reply with a greeting."
    elif kind == "wrong_shape":
        content = json.dumps({"label": "needs_reply", "text": "hello"})
    elif kind == "leak":
        content = json.dumps(leak_answer(body, st["key"]))
    elif kind == "prose_fence":
        content = f"Here is my classification:\n\n```json\n{json.dumps(answer, indent=1)}\n```\n" \
                  f"Let me know if you need anything else."
    elif kind == "think":
        content = "<think>\nThe contact asks something; a short friendly reply fits.\n</think>\n" + \
                  json.dumps(answer)
    elif kind == "upper_enum":
        content = json.dumps({**answer, "classification": answer["classification"].upper()})
    else:
        content = json.dumps(answer)
    if body.get("stream") or kind == "stream":
        return await _stream(request, body, content, kind)
    return web.json_response(_completion(body, content, kind))


async def list_models(request: web.Request) -> web.Response:
    if not _authorized(request):
        return _error(401, "Incorrect API key provided.", "invalid_request_error",
                      code="invalid_api_key")
    return web.json_response({"object": "list", "data": [
        {"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "replydesk-standin"}
        for m in MODELS]})


async def not_found(request: web.Request) -> web.Response:
    request.app[STATE]["unrouted"].append(request.path)
    return _error(404, f"Unknown request URL: {request.method} {request.path}. Please check the "
                       f"URL for typos.", "invalid_request_error", code="unknown_url")


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


async def admin_formats(request: web.Request) -> web.Response:
    data = await request.json()
    accept = set(data.get("accept") or ())
    if not accept <= set(FORMATS):
        raise web.HTTPBadRequest(text=f"accept must be a subset of {list(FORMATS)}")
    request.app[STATE]["formats"] = accept | {"text"}
    return web.json_response({"accept": sorted(request.app[STATE]["formats"])})


async def admin_requests(request: web.Request) -> web.Response:
    st = request.app[STATE]
    span = (st["last"] - st["first"]) if st["first"] is not None else 0.0
    return web.json_response({"count": st["count"], "bodies": st["bodies"],
                              "unrouted": st["unrouted"],
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

    def formats(self, *accept: str) -> None:
        """Accept only these response_format types (and "text"); others get a 400."""
        self._call("POST", "/formats", {"accept": list(accept)})

    def requests(self) -> dict[str, Any]:
        return self._call("GET", "/requests")

    @property
    def count(self) -> int:
        return self.requests()["count"]


def make_app(api_key: str | None = None, prefix: str = "/v1") -> web.Application:
    """The stand-in app; it accepts `api_key` (default: $AI_STANDIN_KEY or a fixed test key) and
    serves the API under `prefix` (default /v1, as every OpenAI-compatible server does)."""
    prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app[STATE] = _fresh_state(api_key or os.environ.get("AI_STANDIN_KEY") or DEFAULT_KEY)
    app.router.add_post(prefix + "/chat/completions", chat_completions)
    app.router.add_get(prefix + "/models", list_models)
    app.router.add_post("/_admin/reset", admin_reset)
    app.router.add_post("/_admin/latency", admin_latency)
    app.router.add_post("/_admin/faults", admin_faults)
    app.router.add_post("/_admin/fault_ratio", admin_fault_ratio)
    app.router.add_post("/_admin/formats", admin_formats)
    app.router.add_get("/_admin/requests", admin_requests)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


if __name__ == "__main__":
    from standins.serve import main

    main(make_app, "OpenAI-compatible AI endpoint (key: $AI_STANDIN_KEY)", 8302)
