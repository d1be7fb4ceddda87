"""The conversations view and what a person does to a conversation (see openapi.yaml):

  GET  /api/conversations                  every conversation of the reviewer's accounts
  POST /api/conversations/{a}/{c}/reply    a reply written by hand (sent once)
  POST /api/conversations/{a}/{c}/redraft  a new AI draft, with the reviewer's instruction
  POST /api/conversations/{a}/{c}/retry-ai the AI once more, after it failed
  POST /api/conversations/{a}/{c}/close    handled without a reply
  GET  /api/dead-letters                   the operator panel: dead letters of every consumer
  POST /api/dead-letters/{id}/retry        a retry where one makes sense (the AI's)
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import json
from datetime import datetime
from typing import Any, Awaitable, Callable

from aiohttp import web

from actors.review.api import (_ID, CONFIG, MAX_PAGE, STORE, _choice, _int, _json_body, _reviewer,
                               _text)
from actors.review.decisions import Conflict, NotFound
from actors.review.errors import ApiError
from actors.review.replies import MAX_INSTRUCTION, Conversation, NewerMessages, markup_in
from actors.review.views import draft_json, message_json
from actors.store.summaries import STATES

routes = web.RouteTableDef()
CONV = "/api/conversations/{account_id}/{conversation_id:.+}"
RETRYABLE_CONSUMERS = ("ai",)


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def summary_json(doc: dict[str, Any]) -> dict[str, Any]:
    return {"account_id": doc.get("account_id"), "conversation_id": doc.get("conversation_id"),
            "contact": doc.get("contact") or doc.get("conversation_id"), "state": doc.get("state"),
            "reason": doc.get("reason"), "last_text": doc.get("last_text"),
            "last_direction": doc.get("last_direction"), "last_sender": doc.get("last_sender"),
            "last_at": _iso(doc.get("last_at")), "last_sent_at": doc.get("last_sent_at"),
            "unread": doc.get("unread") or 0, "draft_id": doc.get("draft_id"),
            "by_hand": bool(doc.get("by_hand")), "closed_by": doc.get("closed_by"),
            "closed_at": _iso(doc.get("closed_at")), "failures": doc.get("failures") or 0}


def dead_letter_json(doc: dict[str, Any]) -> dict[str, Any]:
    consumer = doc.get("consumer")
    return {"id": doc["_id"], "consumer": consumer, "event_id": doc.get("event_id"),
            "routing_key": doc.get("routing_key"), "reason": doc.get("reason"), "at": _iso(doc.get("at")),
            "account_id": doc.get("account_id"), "conversation_id": doc.get("conversation_id"),
            "retryable": consumer in RETRYABLE_CONSUMERS and bool(doc.get("conversation_id"))}


def _cursor(doc: dict[str, Any]) -> str:
    raw = json.dumps([doc["last_at"].isoformat(), doc["_id"]]).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _uncursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, key = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
        return datetime.fromisoformat(at), str(key)
    except (ValueError, TypeError, binascii.Error, UnicodeError):
        raise ApiError(400, "cursor is not valid (use next_cursor from the previous page)") from None


def _accounts(request: web.Request) -> list[str] | None:
    """The accounts to list: ?account= (403 when not the reviewer's), else the reviewer's."""
    who = _reviewer(request)
    account = request.query.get("account") or None
    if account is not None:
        if not _ID.match(account):
            raise ApiError(400, "account is not a valid account id")
        if not who.sees(account):
            raise ApiError(403, f"you do not review account {account}")
        return [account]
    return None if who.accounts is None else sorted(who.accounts)


@routes.get("/api/conversations")
async def list_conversations(request: web.Request) -> web.Response:
    conf = request.app[CONFIG].app.review
    limit = _int(request, "limit", conf.page_size, 1, MAX_PAGE)
    state = _choice(request, "state", STATES, None)
    accounts = _accounts(request)
    term = (request.query.get("q") or "").strip()
    if len(term) > 100:
        raise ApiError(400, "q is too long (at most 100 characters)")
    before = _uncursor(request.query["cursor"]) if request.query.get("cursor") else None
    summaries = request.app[STORE].summaries
    complete = True
    if term:
        docs, complete = await summaries.search(term, accounts=accounts, state=state,
                                                limit=limit + 1, before=before)
    else:
        docs = await summaries.page(accounts=accounts, state=state, limit=limit + 1, before=before)
    more = len(docs) > limit
    docs = docs[:limit]
    return web.json_response({"conversations": [summary_json(d) for d in docs], "states": list(STATES),
                              "search_complete": complete,
                              "next_cursor": _cursor(docs[-1]) if more else None})


def _target(request: web.Request) -> tuple[str, str]:
    account_id, conversation_id = request.match_info["account_id"], request.match_info["conversation_id"]
    if not _ID.match(account_id):
        raise ApiError(400, "account_id is not a valid id")
    if not conversation_id or len(conversation_id) > 200:
        raise ApiError(400, "conversation_id is not a valid id")
    if not _reviewer(request).sees(account_id):
        raise ApiError(404, "no such conversation")
    return account_id, conversation_id


def _seen(body: dict[str, Any]) -> str | None:
    seen = body.get("last_message_id")
    if seen is not None and (not isinstance(seen, str) or not seen or len(seen) > 500):
        raise ApiError(400, "last_message_id must be the id of the newest message you saw")
    return seen


async def _act(request: web.Request, account_id: str, conversation_id: str,
               fn: Callable[[Conversation], Awaitable[Any]]) -> Any:
    conv = Conversation(request.app[STORE], _reviewer(request).name, account_id, conversation_id)
    try:
        return await fn(conv)
    except NotFound:
        raise ApiError(404, "no such conversation") from None
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    except NewerMessages as exc:
        raise ApiError(409, str(exc), extra={"status": "newer_messages",
                                             "newer_messages": [message_json(m) for m in exc.newer]}) from None
    except Conflict as exc:
        raise ApiError(409, str(exc), extra={"status": exc.status, **(
            {"newer_draft_id": exc.newer_draft_id} if exc.newer_draft_id else {})}) from None


@routes.post(CONV + "/reply")
async def reply(request: web.Request) -> web.Response:
    account_id, conversation_id = _target(request)
    body = await _json_body(request)
    text = _text(body, "text", request.app[CONFIG].app.review.max_text_chars, required=True)
    seen = _seen(body)
    doc = await _act(request, account_id, conversation_id, lambda c: c.reply(text, seen))
    return web.json_response({"draft": draft_json(doc)})


@routes.post(CONV + "/redraft")
async def redraft(request: web.Request) -> web.Response:
    account_id, conversation_id = _target(request)
    body = await _json_body(request)
    instruction = _text(body, "instruction", MAX_INSTRUCTION, required=True).strip()
    bad = markup_in(instruction)
    if bad is not None:
        raise ApiError(400, f"instruction must be plain words, without markup (found {bad!r})")
    seen = _seen(body)
    out = await _act(request, account_id, conversation_id, lambda c: c.request_draft(instruction, seen))
    return web.json_response(out, status=202)


@routes.post(CONV + "/retry-ai")
async def retry_ai(request: web.Request) -> web.Response:
    account_id, conversation_id = _target(request)
    seen = _seen(await _json_body(request))
    out = await _act(request, account_id, conversation_id, lambda c: c.request_draft(None, seen))
    return web.json_response(out, status=202)


@routes.post(CONV + "/close")
async def close(request: web.Request) -> web.Response:
    account_id, conversation_id = _target(request)
    seen = _seen(await _json_body(request))
    doc = await _act(request, account_id, conversation_id, lambda c: c.close(seen))
    return web.json_response({"conversation": summary_json(doc)})


@routes.get("/api/conversation-summary/{account_id}/{conversation_id:.+}")
async def summary(request: web.Request) -> web.Response:
    """One conversation's summary, its AI failure and its dead letters (the conversation pane)."""
    account_id, conversation_id = _target(request)
    store = request.app[STORE]
    doc, failure, dead = await asyncio.gather(
        store.summaries.get(account_id, conversation_id),
        store.ai_failures.get(account_id, conversation_id),
        store.dead_letters.of_conversation(account_id, conversation_id))
    if doc is None:
        raise ApiError(404, "no such conversation")
    return web.json_response({
        "conversation": summary_json(doc), "dead_letters": [dead_letter_json(d) for d in dead],
        "ai_failure": None if failure is None else {"reason": failure.get("reason"),
                                                    "at": _iso(failure.get("at"))}})


@routes.get("/api/dead-letters")
async def dead_letters(request: web.Request) -> web.Response:
    limit = _int(request, "limit", 100, 1, MAX_PAGE)
    consumer = _choice(request, "consumer", ("ai", "sheets", "notify", "send", "notify-dead"), None)
    who = _reviewer(request)
    docs = await request.app[STORE].dead_letters.recent(limit if who.accounts is None else MAX_PAGE * 5, consumer)
    docs = [d for d in docs if who.accounts is None or (d.get("account_id") and who.sees(d["account_id"]))]
    return web.json_response({"dead_letters": [dead_letter_json(d) for d in docs[:limit]]})


@routes.post("/api/dead-letters/{record_id}/retry")
async def retry_dead_letter(request: web.Request) -> web.Response:
    record_id = request.match_info["record_id"]
    await _json_body(request)
    doc = await request.app[STORE].dead_letters.get(record_id) if len(record_id) < 600 else None
    who = _reviewer(request)
    if doc is None or (who.accounts is not None and not who.sees(doc.get("account_id") or "")):
        raise ApiError(404, "no such dead letter")
    if not dead_letter_json(doc)["retryable"]:
        raise ApiError(409, f"a dead letter of the {doc.get('consumer')} consumer is not retried from "
                       f"the desk: replay it from the dead queue once its cause is fixed")
    out = await _act(request, doc["account_id"], doc["conversation_id"],
                     lambda c: c.request_draft(None, None))
    return web.json_response(out, status=202)
