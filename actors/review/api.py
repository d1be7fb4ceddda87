"""The JSON API routes (see openapi.yaml). The store is pymongo's AsyncMongoClient (AsyncStore):
every store call is awaited on the desk's event loop, which serves other reviewers meanwhile."""
from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, get_args

from aiohttp import web

from actors.review.decisions import Conflict, NotFound, Reviewer
from actors.review.errors import ApiError
from actors.review.security import REVIEWER
from actors.review.views import STATUSES, decode_cursor, draft_json, encode_cursor, message_json
from actors.store import AsyncStore
from contracts.draftstate import DraftStatus
from contracts.events import Classification
from contracts.settings import Config, ReviewerAuth

OPENAPI = Path(__file__).with_name("openapi.yaml")
CLASSIFICATIONS = get_args(Classification)
MAX_PAGE = 200
MAX_MESSAGES = 200
_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,200}$")

routes = web.RouteTableDef()
CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", AsyncStore)
CLOCK = web.AppKey("clock", Callable[[], datetime])


def _reviewer(request: web.Request) -> ReviewerAuth:
    """Who sent this request (set by the auth middleware from the token)."""
    return request[REVIEWER]


def _visible(request: web.Request, doc: dict[str, Any] | None) -> dict[str, Any] | None:
    """The draft, or None when the signed-in reviewer does not review its account: a draft of
    another reviewer's account is "no such draft" (its existence is not theirs to learn)."""
    if doc is None or not _reviewer(request).sees(doc.get("account_id")):
        return None
    return doc


async def _decider(request: web.Request, draft_id: str) -> Reviewer:
    """Decisions in the signed-in reviewer's name, only on drafts of accounts they review."""
    who = _reviewer(request)
    if who.accounts is not None:
        doc = await request.app[STORE].drafts.get(draft_id)
        if _visible(request, doc) is None:
            raise NotFound(draft_id)
    return Reviewer(request.app[STORE], who.name, undo_s=request.app[CONFIG].app.review.undo_s,
                    clock=request.app[CLOCK])


def _int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be between {low} and {high}")
    return value


def _choice(request: web.Request, name: str, allowed: tuple[str, ...], default: str | None) -> str | None:
    value = request.query.get(name) or default
    if value is not None and value not in allowed:
        raise ApiError(400, f"{name} must be one of: {', '.join(allowed)}")
    return value


def _id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not _ID.match(value):
        raise ApiError(400, f"{name} is not a valid id")
    return value


async def _json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object; {} for no body. Anything else is a 400/415 naming the problem."""
    if not request.can_read_body:
        return {}
    if request.content_type != "application/json":
        raise ApiError(415, "send the body as JSON (Content-Type: application/json)")
    raw = await request.read()              # capped by client_max_size -> 413
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def _text(body: dict[str, Any], name: str, max_chars: int, required: bool) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise ApiError(400, f"{name} must be a non-empty string")
    if len(value) > max_chars:
        raise ApiError(400, f"{name} is too long ({len(value)} characters, at most {max_chars})")
    return value


async def _decide(request: web.Request, method: str, draft_id: str, *args) -> dict[str, Any]:
    try:
        doc = await getattr(await _decider(request, draft_id), method)(draft_id, *args)
    except NotFound:
        raise ApiError(404, "no such draft") from None
    except Conflict as exc:
        raise ApiError(409, str(exc), extra={"status": exc.status, **(
            {"newer_draft_id": exc.newer_draft_id} if exc.newer_draft_id else {})}) from None
    return {"draft": draft_json(doc)}


@routes.get("/api/meta")
async def meta(request: web.Request) -> web.Response:
    """What the page needs to build its filters and how often to poll (a draft being sent; the
    inbox list, so new drafts appear without a reload)."""
    config = request.app[CONFIG]
    conf = config.app.review
    who = _reviewer(request)
    return web.json_response({
        "accounts": [a.id for a in config.app.accounts if who.sees(a.id)],
        "classifications": list(CLASSIFICATIONS), "statuses": list(STATUSES),
        "reviewer": who.name, "restricted": who.accounts is not None, "page_size": conf.page_size,
        "max_text_chars": conf.max_text_chars, "poll_interval_ms": int(conf.poll_interval_s * 1000),
        "inbox_poll_interval_ms": int(conf.inbox_poll_interval_s * 1000),
        "undo_ms": int(conf.undo_s * 1000)})


@routes.get("/api/drafts")
async def list_drafts(request: web.Request) -> web.Response:
    conf = request.app[CONFIG].app.review
    limit = _int(request, "limit", conf.page_size, 1, MAX_PAGE)
    status = _choice(request, "status", STATUSES, DraftStatus.PENDING.value)
    classification = _choice(request, "classification", CLASSIFICATIONS, None)
    account = request.query.get("account") or None
    if account is not None and not _ID.match(account):
        raise ApiError(400, "account is not a valid account id")
    who = _reviewer(request)
    if account is not None and not who.sees(account):
        raise ApiError(403, f"you do not review account {account}")
    accounts = account if account is not None or who.accounts is None else list(who.accounts)
    after = None
    if request.query.get("cursor"):
        try:
            after = decode_cursor(request.query["cursor"])
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
    docs = await request.app[STORE].drafts.page(status=status, account_id=accounts,
                                                classification=classification, limit=limit + 1, after=after)
    more = len(docs) > limit
    docs = docs[:limit]
    names = await request.app[STORE].summaries.contacts([(d["account_id"], d["conversation_id"]) for d in docs])
    return web.json_response({"drafts": [{**draft_json(d, brief=True), "contact": names.get(
                                  (d["account_id"], d["conversation_id"]))} for d in docs],
                              "next_cursor": encode_cursor(docs[-1]) if more else None})


@routes.get("/api/drafts/{draft_id}")
async def show_draft(request: web.Request) -> web.Response:
    doc = _visible(request, await request.app[STORE].drafts.get(_id(request, "draft_id")))
    if doc is None:
        raise ApiError(404, "no such draft")
    return web.json_response({"draft": draft_json(doc)})


@routes.get("/api/conversations/{account_id}/{conversation_id:.+}")
async def conversation(request: web.Request) -> web.Response:
    account_id, conversation_id = _id(request, "account_id"), request.match_info["conversation_id"]
    if len(conversation_id) > 200:
        raise ApiError(400, "conversation_id is not a valid id")
    limit = _int(request, "limit", 50, 1, MAX_MESSAGES)
    if not _reviewer(request).sees(account_id):
        raise ApiError(404, "no such conversation")
    store = request.app[STORE]
    messages, draft = await asyncio.gather(
        store.messages.conversation(account_id, conversation_id, limit),
        store.drafts.latest_for_conversation(account_id, conversation_id))
    if not messages and draft is None:
        raise ApiError(404, "no such conversation")
    return web.json_response({"account_id": account_id, "conversation_id": conversation_id,
                              "messages": [message_json(m) for m in messages],
                              "draft": draft_json(draft) if draft else None})


@routes.post("/api/drafts/{draft_id}/approve")
async def approve(request: web.Request) -> web.Response:
    draft_id = _id(request, "draft_id")
    await _json_body(request)               # no fields; still validated and size-capped
    return web.json_response(await _decide(request, "approve", draft_id))


@routes.post("/api/drafts/{draft_id}/edit")
async def edit(request: web.Request) -> web.Response:
    draft_id = _id(request, "draft_id")
    max_chars = request.app[CONFIG].app.review.max_text_chars
    text = _text(await _json_body(request), "text", max_chars, required=True)
    return web.json_response(await _decide(request, "approve", draft_id, text))


@routes.post("/api/drafts/{draft_id}/reject")
async def reject(request: web.Request) -> web.Response:
    draft_id = _id(request, "draft_id")
    reason = _text(await _json_body(request), "reason", 500, required=False)
    return web.json_response(await _decide(request, "reject", draft_id,
                                           reason.strip() if reason else None))


@routes.post("/api/drafts/{draft_id}/undo")
async def undo(request: web.Request) -> web.Response:
    """Take back an approval still in its undo window (409 once it was released to be sent)."""
    draft_id = _id(request, "draft_id")
    await _json_body(request)
    return web.json_response(await _decide(request, "undo", draft_id))


@routes.get("/api/openapi.yaml")
async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=OPENAPI.read_bytes(), content_type="application/yaml", charset="utf-8")
