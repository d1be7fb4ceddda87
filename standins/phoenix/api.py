"""The JSON API the page's script talks to: login on the www host; the handoff, the account, the
inbox, a conversation's messages, sending and the live stream on the app host. Reads the page
renders from are answered after the `render_delay_ms` fault (a client-rendered page is empty
until then)."""
from __future__ import annotations

import asyncio
import json
import secrets

from aiohttp import web

from standins.chatsite import (
    _CHALLENGES,
    SESSION_COOKIE,
    STATE,
    Conversation,
    _sorted_conversations,
)
from standins.phoenix.state import PhoenixState, now_iso


def state(request: web.Request) -> PhoenixState:
    return request.app[STATE]


async def _render_delay(st: PhoenixState) -> None:
    st.stats["api_reads"] += 1
    if st.faults.render_delay_ms > 0:
        await asyncio.sleep(st.faults.render_delay_ms / 1000)


def _logged_out(st: PhoenixState) -> web.Response:
    return web.json_response({"error": "logged out", "login": f"{st.www_origin}/#home"}, status=401)


def _user(request: web.Request) -> str | None:
    return state(request).session_user(request)


# ---------------------------------------------------------------- www host

async def www_config(request: web.Request) -> web.Response:
    st = state(request)
    await _render_delay(st)
    return web.json_response({"brand": st.brand, "rename": st.faults.rename})


async def www_login(request: web.Request) -> web.Response:
    """JSON {email, password} -> {"error"} (401), {"challenge", "text"}, or {"redirect": URL}:
    the app host's one-time handoff, or (login_bounce) back to the start page."""
    st = state(request)
    st.stats["login_submissions"] += 1
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="login body must be JSON {email, password}") from None
    user = str(body.get("email") or "") if isinstance(body, dict) else ""
    password = str(body.get("password") or "") if isinstance(body, dict) else ""
    if not user or st.accounts.get(user) != password:
        return web.json_response({"error": "Invalid email or password"}, status=401)
    if st.faults.login_bounce > 0:
        st.faults.login_bounce -= 1
        st.stats["login_bounces"] += 1
        return web.json_response({"redirect": "/login/bounce"})
    if st.faults.challenge:
        st.stats["challenges"] += 1
        kind = st.faults.challenge
        return web.json_response({"challenge": kind,
                                  "text": _CHALLENGES.get(kind, _CHALLENGES["unusual"])})
    token = secrets.token_urlsafe(18)
    st.handoffs[token] = user
    return web.json_response({"redirect": f"{st.app_origin}/auth?t={token}"})


async def www_bounce(request: web.Request) -> web.Response:
    """Where a bounced login lands: a full load of the start page."""
    raise web.HTTPFound("/#home")


# ---------------------------------------------------------------- app host

async def app_auth(request: web.Request) -> web.Response:
    """The one-time handoff from the www host: sets the app's session cookie, lands on #meet."""
    st = state(request)
    user = st.handoffs.pop(request.query.get("t", ""), None)
    if user is None:
        raise web.HTTPFound(f"{st.www_origin}/#home")
    resp = web.HTTPFound("/#meet")
    resp.set_cookie(SESSION_COOKIE, st.new_session(user), httponly=True, path="/", samesite="Lax")
    raise resp


def _unread_conversations(st: PhoenixState) -> int:
    return sum(1 for c in st.conversations.values() if c.unread)


async def app_me(request: web.Request) -> web.Response:
    st = state(request)
    user = _user(request)
    if not user:
        return _logged_out(st)
    await _render_delay(st)
    return web.json_response({"user": user, "brand": st.brand, "push_modal": st.faults.push_modal,
                              "rename": st.faults.rename,
                              "unread_conversations": _unread_conversations(st)})


async def app_meet(request: web.Request) -> web.Response:
    st = state(request)
    if not _user(request):
        return _logged_out(st)
    await _render_delay(st)
    return web.json_response({"people": []})


def _item(st: PhoenixState, c: Conversation) -> dict:
    last = c.messages[-1] if c.messages else None
    if last is None:
        preview = ""
    elif last.direction == "in":
        preview = last.text
    elif st.seen_upto.get(c.id, 0) >= last.id:
        preview = "Seen"
    else:
        preview = f"Sent: {last.text}"
    return {"id": c.id, "name": c.title, "preview": preview, "unread": c.unread,
            "typing": c.id in st.typing, "ts": st.message_json(last)["ts"] if last else None}


async def app_conversations(request: web.Request) -> web.Response:
    st = state(request)
    if not _user(request):
        return _logged_out(st)
    await _render_delay(st)
    if not request.query.get("live"):      # a render of the inbox, not a live refresh
        st.stats["inbox_views"] += 1
    return web.json_response({"conversations": [_item(st, c) for c in _sorted_conversations(st)],
                              "unread_conversations": _unread_conversations(st),
                              "version": st.versions.get("inbox", 0)})


def _int_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"query parameter {name!r} must be an integer, got {raw!r}") from None


async def app_messages(request: web.Request) -> web.Response:
    """A page of a conversation, oldest first: the newest `page_size` (no parameter), the
    `page_size` before message `before`, or every message after message `after` (live sync)."""
    st = state(request)
    if not _user(request):
        return _logged_out(st)
    before, after = _int_param(request, "before"), _int_param(request, "after")
    await _render_delay(st)
    conv = st.conversations.get(request.match_info["cid"])
    if conv is None:
        return web.json_response({"error": "no such conversation"}, status=404)
    size = max(1, int(st.faults.page_size))
    if after is not None:
        page, more = [m for m in conv.messages if m.id > after], None
    else:
        msgs = [m for m in conv.messages if before is None or m.id < before]
        page, more = msgs[-size:], len(msgs) > size
        if before is None:
            conv.unread = 0
            st.stats["conversation_views"] += 1
    return web.json_response({"id": conv.id, "name": conv.title, "has_more": more,
                              "messages": [st.message_json(m) for m in page],
                              "version": st.versions.get(conv.id, 0)})


async def app_send(request: web.Request) -> web.Response:
    """JSON {text, client_id}: stored as the owner's message and answered with it, as the send
    faults allow (slow, never answered, stored then 500)."""
    st = state(request)
    user = _user(request)
    if not user:
        return _logged_out(st)
    conv = st.conversations.get(request.match_info["cid"])
    if conv is None:
        return web.json_response({"error": "no such conversation"}, status=404)
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="send body must be JSON {text, client_id}") from None
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise web.HTTPBadRequest(text="text must be a non-blank string")
    client_id = body.get("client_id")
    f = st.faults
    if f.send_slow > 0:
        await asyncio.sleep(f.send_slow / 1000)
    if f.send_pending_forever:
        if f.send_pending_forever == "stored":
            _store(st, conv, user, text, client_id, pushed=False)
        fut = asyncio.get_running_loop().create_future()
        st.held.add(fut)
        st.stats["held_sends"] += 1
        try:
            await fut      # until a reset or the shutdown cancels it: the request just ends
        finally:
            st.held.discard(fut)
    fail = f.send_fail_after_store
    msg = _store(st, conv, user, text, client_id, pushed=not fail)
    if fail:
        return web.json_response({"error": "Something went wrong"}, status=500)
    return web.json_response({"ok": True, "message": st.message_json(msg)})


def _store(st: PhoenixState, conv: Conversation, user: str, text: str, client_id, *, pushed: bool):
    msg = st.add_message(conv.id, user, text.replace("\r\n", "\n"), "out", now_iso(),
                         conversation_pages=pushed)
    if isinstance(client_id, str) and client_id:
        st.client_ids[msg.id] = client_id
    st.sent.append(msg.as_json(conv.id))
    st.stats["sends"] += 1
    return msg


async def app_live(request: web.Request) -> web.StreamResponse:
    """Server-sent `change` events on a channel (`inbox` or a conversation id) after each change
    (new message, typing, seen). `since`: the channel version the page rendered; a stream that
    opens after a change the page missed sends one at once."""
    st = state(request)
    if not _user(request):
        return _logged_out(st)
    channel = request.query.get("channel") or "inbox"
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    changes: asyncio.Queue = asyncio.Queue()
    listener = (channel, changes)
    st.listeners.add(listener)
    st.stats["live_streams"] += 1
    since = _int_param(request, "since")
    if since is not None and st.versions.get(channel, 0) > since and st.faults.live:
        changes.put_nowait(channel)
    try:
        while True:
            try:
                change = await asyncio.wait_for(changes.get(), 15)
            except TimeoutError:
                await resp.write(b": keep-alive\n\n")
                continue
            if change is None:
                return resp
            while not changes.empty():
                changes.get_nowait()
            await resp.write(f"event: change\ndata: {json.dumps({'channel': channel})}\n\n".encode())
            st.stats["live_pushes"] += 1
    finally:
        st.listeners.discard(listener)
