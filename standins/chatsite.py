"""A MeetMe-like chat site for tests and the demo: login form, popups, inbox, paged conversations,
a reply form, plus a JSON admin API (/_admin, localhost only, no auth) to inject messages, read
what the owner sent and switch faults on (slow pages, expired sessions, renamed or missing
markup, HTTP 500s, connection resets).

The markup's ids/classes are the FIRST selectors of conf/sites/meetme.yaml; every element also
carries the data-testid / structural hooks the later fallbacks use, so the `renamed_classes`
fault (ids and classes change) exercises the fallbacks and `broken` (all hooks of an element
gone) exercises the no-match path. Chat text is hostile: everything dynamic is HTML-escaped.

Run alone: `python -m standins.chatsite --port 8301`.
"""
from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html import escape
from typing import Any

from aiohttp import web

from contracts.ids import stable_hash
from standins.admin import AdminClient

SESSION_COOKIE = "mm_sid"
STATE = web.AppKey("state", "SiteState")
DEFAULT_PAGE_SIZE = 20


@dataclass
class Message:
    id: int
    sender: str
    text: str
    time: str
    direction: str  # "in" | "out"

    @property
    def site_id(self) -> str:
        return f"m{self.id}"

    def as_json(self, conversation_id: str) -> dict[str, Any]:
        return {"id": self.site_id, "conversation_id": conversation_id, "sender": self.sender,
                "text": self.text, "time": self.time, "direction": self.direction}


@dataclass
class Conversation:
    id: str
    title: str
    messages: list[Message] = field(default_factory=list)
    unread: int = 0


@dataclass
class Faults:
    """Behaviour switches set through POST /_admin/faults (merged; reset clears them)."""
    slow_ms: int = 0
    session_ttl_s: float | None = None
    renamed_classes: bool = False
    broken: list[str] = field(default_factory=list)
    http500: int = 0             # the next N page responses are 500
    crash_after: int | None = None  # after N more page responses, `crash_burst` connections reset
    crash_burst: int = 2
    popup: str | int = "never"   # "never" | "always" | N (every Nth page view)
    page_size: int = DEFAULT_PAGE_SIZE


class SiteState:
    """All state of one app instance, in memory."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything (the admin reset between tests)."""
        self.accounts: dict[str, str] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.conversations: dict[str, Conversation] = {}
        self.sent: list[dict[str, Any]] = []
        self.faults = Faults()
        self.stats: dict[str, Any] = {"login_submissions": 0, "logins": 0, "page_views": 0,
                                      "views": {}, "sends": 0, "errors_500": 0, "resets": 0}
        self.next_id = 1

    def add_message(self, conversation_id: str, sender: str, text: str, direction: str,
                    when: str | None = None, title: str | None = None) -> Message:
        conv = self.conversations.get(conversation_id)
        if conv is None:
            conv = self.conversations[conversation_id] = Conversation(conversation_id, title or sender)
        msg = Message(self.next_id, sender, text,
                      when or datetime.now(timezone.utc).isoformat(timespec="seconds"), direction)
        self.next_id += 1
        conv.messages.append(msg)
        if direction == "in":
            conv.unread += 1
        return msg

    def session_user(self, request: web.Request) -> str | None:
        sess = self.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
        if not sess:
            return None
        if self.faults.session_ttl_s is not None and time.time() - sess["at"] > self.faults.session_ttl_s:
            return None
        return sess["user"]


# ---------------------------------------------------------------- markup hooks per element

class Markup:
    """Ids/classes/test ids for one page render, honouring the renamed/broken faults."""

    def __init__(self, faults: Faults):
        self.renamed = faults.renamed_classes
        self.broken = set(faults.broken)

    def name(self, value: str) -> str:
        """A class or id as the site currently spells it."""
        return "x" + stable_hash("renamed", value, length=8) if self.renamed else value

    def hooks(self, element: str, *, cls: str = "", id: str = "", testid: str = "", extra: str = "") -> str:
        """The attribute string for an element: nothing identifying when the element is broken."""
        if element in self.broken:
            return ""
        parts = []
        if id:
            parts.append(f'id="{self.name(id)}"')
        if cls:
            parts.append('class="' + " ".join(self.name(c) for c in cls.split()) + '"')
        if testid:
            parts.append(f'data-testid="{testid}"')
        if extra:
            parts.append(extra)
        return " ".join(parts)

    def ok(self, element: str) -> bool:
        return element not in self.broken


def _page(title: str, body: str, *, popup: bool, m: Markup, logged_in: bool) -> str:
    store = ("<script>if(!localStorage.getItem('mm.device'))"
             "localStorage.setItem('mm.device',Math.random().toString(36).slice(2));</script>"
             if logged_in else "")
    modal = ""
    if popup:
        hooks = m.hooks("popup_close", cls="modal-close", testid="popup-close", extra='aria-label="Close"')
        close = (f'<button type="button" {hooks} '
                 "onclick=\"this.closest('.mm-backdrop').remove()\">&times;</button>"
                 if m.ok("popup_close") else
                 "<span onclick=\"this.closest('.mm-backdrop').remove()\">later</span>")
        modal = ('<div class="mm-backdrop" style="position:fixed;inset:0;z-index:1000;'
                 'background:rgba(0,0,0,.6)">'
                 f'<div class="{m.name("modal-dialog")}" role="dialog" aria-modal="true" '
                 'style="margin:20vh auto;width:300px;background:#fff;padding:1em">'
                 f'<p>Upgrade to MeetMe VIP!</p>{close}</div></div>')
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title></head>"
            f"<body>{body}{modal}{store}</body></html>")


def _login_body(m: Markup, error: str = "") -> str:
    user = (f'<div data-testid="login-email"><input type="email" {m.hooks("login_username", id="login-email")} name="email"></div>'
            if m.ok("login_username") else '<input type="text" name="user_identifier">')
    pw = (f'<div data-testid="login-password"><input type="password" {m.hooks("login_password", id="login-password")} name="password"></div>'
          if m.ok("login_password") else '<input type="password" name="pw_field">')
    submit = (f'<button type="submit" {m.hooks("login_submit", cls="login-submit", testid="login-submit")}>Log in</button>'
              if m.ok("login_submit") else '<input type="submit" value="Log in">')
    err = f'<p class="login-error" role="alert">{escape(error)}</p>' if error else ""
    return (f'<h1>Log in to MeetMe</h1>{err}'
            f'<form id="{m.name("login-form")}" data-testid="login-form" method="post" action="/login">'
            f'{user}{pw}{submit}</form>')


def _inbox_body(state: SiteState, m: Markup) -> str:
    items = []
    convs = sorted(state.conversations.values(),
                   key=lambda c: c.messages[-1].id if c.messages else 0, reverse=True)
    for c in convs:
        last = c.messages[-1] if c.messages else None
        preview = escape(last.text[:80]) if last else ""
        when = escape(last.time) if last else ""
        unread = f'<span class="{m.name("unread-badge")}">{c.unread}</span>' if c.unread else ""
        href = f"/chat/{escape(c.id)}" if m.ok("inbox_item") else f"chat/{escape(c.id)}"
        items.append(f'<li {m.hooks("inbox_item", cls="chat-list-item", testid="conversation-item")} '
                     f'data-conversation-id="{escape(c.id)}"><a href="{href}">'
                     f'<b>{escape(c.title)}</b> <span>{preview}</span> <small>{when}</small></a>{unread}</li>')
    return f'<h1>Messages</h1><ul class="{m.name("chat-list")}">{"".join(items)}</ul>'


def _message_html(msg: Message, m: Markup) -> str:
    out = " is-outgoing" if msg.direction == "out" else ""
    wrap = (m.hooks("message", cls="chat-message" + out, testid="message",
                    extra=f'data-message-id="{msg.site_id}" data-direction="{msg.direction}"')
            if m.ok("message") else f'data-mid="{msg.site_id}"')
    sender = f'<span {m.hooks("message_sender", cls="chat-message-sender", testid="message-sender")}>{escape(msg.sender)}</span>'
    text = (f'<div {m.hooks("message_text", cls="chat-message-text", testid="message-text")} '
            f'style="white-space:pre-wrap">{escape(msg.text)}</div>')
    shown = escape(msg.time[11:16] or msg.time)
    when = (f'<time {m.hooks("message_time", cls="chat-message-time", testid="message-time")} '
            f'datetime="{escape(msg.time)}">{shown}</time>' if m.ok("message_time")
            else f'<span title="{escape(msg.time)}">{shown}</span>')
    return f"<div {wrap}>{sender}{text}{when}</div>"


def _conversation_body(conv: Conversation, before: int | None, page_size: int, m: Markup) -> str:
    msgs = [x for x in conv.messages if before is None or x.id < before]
    page = msgs[-page_size:]
    older = ""
    if len(msgs) > len(page):
        href = f"/chat/{escape(conv.id)}?before={page[0].site_id}"
        hooks = m.hooks("older_messages", cls="load-older", testid="load-older", extra='rel="prev"')
        older = (f'<a {hooks} href="{href}">Load older</a>'
                 if m.ok("older_messages") else f'<a href="{href}">Older</a>')
    log = (f'<div role="log" class="{m.name("chat-log")}">' if m.ok("message") else '<div>')
    box = (f'<textarea {m.hooks("reply_box", cls="chat-compose-input")} name="message"></textarea>'
           if m.ok("reply_box") else '<textarea name="body"></textarea>')
    send = (f'<button type="submit" {m.hooks("send_button", cls="chat-compose-send", testid="compose-send")}>Send</button>'
            if m.ok("send_button") else '<input type="submit" value="Send">')
    form_hooks = m.hooks("reply_box", cls="compose", testid="compose")
    return (f'<h1>{escape(conv.title)}</h1>{older}{log}{"".join(_message_html(x, m) for x in page)}</div>'
            f'<form {form_hooks} method="post" action="/chat/{escape(conv.id)}/send">{box}{send}</form>')


# ---------------------------------------------------------------- request handling

def _state(request: web.Request) -> SiteState:
    return request.app[STATE]


def _html(request: web.Request, title: str, body: str, *, logged_in: bool) -> web.Response:
    st = _state(request)
    f = st.faults
    n = st.stats["page_views"]
    popup = f.popup == "always" or (isinstance(f.popup, int) and f.popup > 0 and n % f.popup == 0)
    return web.Response(text=_page(title, body, popup=popup, m=Markup(f), logged_in=logged_in),
                        content_type="text/html")


@web.middleware
async def _faults(request: web.Request, handler):
    """Page requests (not /_admin) get the configured slowness, resets and 500s."""
    if request.path.startswith("/_admin"):
        return await handler(request)
    st = _state(request)
    f = st.faults
    if f.slow_ms:
        await asyncio.sleep(f.slow_ms / 1000)
    if f.crash_after is not None:
        if f.crash_after <= 0 and f.crash_burst > 0:
            f.crash_burst -= 1
            st.stats["resets"] += 1
            if request.transport is not None:
                request.transport.abort()  # the browser sees a reset / empty response
            raise web.HTTPInternalServerError(text="connection reset")
        f.crash_after -= 1
    if f.http500 > 0 and request.method == "GET":
        f.http500 -= 1
        st.stats["errors_500"] += 1
        return web.Response(status=500, text="<h1>500 Internal Server Error</h1>", content_type="text/html")
    if request.method == "GET":
        st.stats["page_views"] += 1
        kind = request.path.split("/")[1] or "root"
        st.stats["views"][kind] = st.stats["views"].get(kind, 0) + 1
    return await handler(request)


def _login_redirect(request: web.Request) -> web.HTTPFound:
    return web.HTTPFound(f"/login?next={request.path_qs}")


async def login_page(request: web.Request) -> web.Response:
    return _html(request, "Log in", _login_body(Markup(_state(request).faults)), logged_in=False)


async def login_submit(request: web.Request) -> web.Response:
    st = _state(request)
    st.stats["login_submissions"] += 1
    form = await request.post()
    user = str(form.get("email") or form.get("user_identifier") or "")
    password = str(form.get("password") or form.get("pw_field") or "")
    if not user or st.accounts.get(user) != password:
        resp = _html(request, "Log in", _login_body(Markup(st.faults), "Wrong email or password"),
                     logged_in=False)
        resp.set_status(401)
        return resp
    sid = secrets.token_urlsafe(24)
    st.sessions[sid] = {"user": user, "at": time.time()}
    st.stats["logins"] += 1
    nxt = request.query.get("next", "/chat")
    resp = web.HTTPSeeOther(nxt if nxt.startswith("/") and not nxt.startswith("//") else "/chat")
    resp.set_cookie(SESSION_COOKIE, sid, httponly=True, path="/", samesite="Lax")
    raise resp


async def root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/chat")


async def inbox(request: web.Request) -> web.Response:
    st = _state(request)
    if not st.session_user(request):
        raise _login_redirect(request)
    return _html(request, "Messages", _inbox_body(st, Markup(st.faults)), logged_in=True)


def _conversation(request: web.Request) -> Conversation:
    conv = _state(request).conversations.get(request.match_info["cid"])
    if conv is None:
        raise web.HTTPNotFound(text="no such conversation")
    return conv


async def conversation(request: web.Request) -> web.Response:
    st = _state(request)
    if not st.session_user(request):
        raise _login_redirect(request)
    conv = _conversation(request)
    before = request.query.get("before", "")
    try:
        before_id = int(before[1:]) if before else None
    except ValueError:
        raise web.HTTPBadRequest(text="bad before id") from None
    conv.unread = 0
    body = _conversation_body(conv, before_id, max(1, st.faults.page_size), Markup(st.faults))
    return _html(request, conv.title, body, logged_in=True)


async def send(request: web.Request) -> web.Response:
    st = _state(request)
    user = st.session_user(request)
    if not user:
        raise _login_redirect(request)
    conv = _conversation(request)
    form = await request.post()
    text = str(form.get("message") or form.get("body") or "").replace("\r\n", "\n")
    if not text.strip():
        raise web.HTTPBadRequest(text="empty message")
    msg = st.add_message(conv.id, user, text, "out")
    st.sent.append(msg.as_json(conv.id))
    st.stats["sends"] += 1
    raise web.HTTPSeeOther(f"/chat/{conv.id}")


# ---------------------------------------------------------------- admin API

async def admin_reset(request: web.Request) -> web.Response:
    _state(request).reset()
    return web.json_response({"ok": True})


async def admin_account(request: web.Request) -> web.Response:
    body = await request.json()
    if not body.get("username") or not body.get("password"):
        raise web.HTTPBadRequest(text="username and password are required")
    _state(request).accounts[str(body["username"])] = str(body["password"])
    return web.json_response({"ok": True})


async def admin_inject(request: web.Request) -> web.Response:
    body = await request.json()
    if not isinstance(body.get("sender"), str) or not isinstance(body.get("text"), str):
        raise web.HTTPBadRequest(text="sender and text (strings) are required")
    msg = _state(request).add_message(request.match_info["cid"], body["sender"], body["text"], "in",
                                      body.get("time"), body.get("title"))
    return web.json_response({"id": msg.site_id})


async def admin_messages(request: web.Request) -> web.Response:
    conv = _conversation(request)
    return web.json_response([x.as_json(conv.id) for x in conv.messages])


async def admin_sent(request: web.Request) -> web.Response:
    sent = _state(request).sent
    counts: dict[str, int] = {}
    for s in sent:
        counts[s["conversation_id"]] = counts.get(s["conversation_id"], 0) + 1
    return web.json_response({"messages": sent, "counts": counts})


async def admin_stats(request: web.Request) -> web.Response:
    st = _state(request)
    return web.json_response({**st.stats, "sessions": len(st.sessions)})


async def admin_faults(request: web.Request) -> web.Response:
    st = _state(request)
    body = await request.json()
    if body.pop("logged_out", False):
        st.sessions.clear()
    known = set(Faults.__dataclass_fields__)
    unknown = set(body) - known
    if unknown:
        raise web.HTTPBadRequest(text=f"unknown faults: {sorted(unknown)}")
    for k, v in body.items():
        setattr(st.faults, k, v)
    return web.json_response(st.faults.__dict__)


def make_app() -> web.Application:
    app = web.Application(middlewares=[_faults])
    app[STATE] = SiteState()
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_submit)
    app.router.add_get("/", root)
    app.router.add_get("/chat", inbox)
    app.router.add_get("/chat/{cid}", conversation)
    app.router.add_post("/chat/{cid}/send", send)
    app.router.add_post("/_admin/reset", admin_reset)
    app.router.add_post("/_admin/accounts", admin_account)
    app.router.add_post("/_admin/conversations/{cid}/messages", admin_inject)
    app.router.add_get("/_admin/conversations/{cid}/messages", admin_messages)
    app.router.add_get("/_admin/sent", admin_sent)
    app.router.add_get("/_admin/stats", admin_stats)
    app.router.add_post("/_admin/faults", admin_faults)
    return app


class ChatSiteAdmin(AdminClient):
    """Blocking client for the chat site's admin API."""

    def reset(self) -> None:
        self._call("POST", "/reset", {})

    def add_account(self, username: str, password: str) -> None:
        self._call("POST", "/accounts", {"username": username, "password": password})

    def inject(self, conversation_id: str, sender: str, text: str, time: str | None = None,
               title: str | None = None) -> str:
        """Deliver an incoming message; returns the site's message id."""
        body = {"sender": sender, "text": text, "time": time, "title": title}
        return self._call("POST", f"/conversations/{conversation_id}/messages",
                          {k: v for k, v in body.items() if v is not None})["id"]

    def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/conversations/{conversation_id}/messages")

    def sent(self) -> dict[str, Any]:
        return self._call("GET", "/sent")

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/stats")

    def faults(self, **faults: Any) -> dict[str, Any]:
        return self._call("POST", "/faults", faults)


if __name__ == "__main__":
    from standins.serve import main
    main(make_app, "chatsite", 8301)
