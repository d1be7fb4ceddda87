"""A MeetMe-like chat site for tests and the demo: login form, popups, inbox, paged conversations,
a reply form, plus a JSON admin API (/_admin, localhost only, no auth) to inject messages, read
what the owner sent, switch faults on (slow pages, expired sessions, renamed or missing markup,
HTTP 500s, connection resets) and switch the markup theme.

Themes (`THEMES`) are whole markups of the same site (same URLs, same state), each described by a
site spec, standins/sites/<theme>.yaml (the real MeetMe app: conf/sites/meetme.yaml and the
`phoenix` stand-in).

- `classic`: the markup's ids/classes are the FIRST selectors of standins/sites/classic.yaml; every
  element also carries the data-testid / structural hooks the later fallbacks use, so the
  `renamed_classes` fault (ids and classes change) exercises the fallbacks and `broken` (all hooks
  of an element gone) exercises the no-match path (both faults: this theme only).
- `bubbles`: ids and plain classes, `data-id` message ids, `YYYY-MM-DD HH:MM` times.
- `items`: classes only, messages with no id at all, `HH:MM` times with the ISO time in `title`.
- `aria`: no class names at all (data-testid, roles, ARIA attributes), day separators with
  `HH:MM` clocks, a contenteditable reply box and an XHR (JSON) send without navigation.

Live pages (every theme but `items`, which has no live updates): an open inbox page subscribes
to `GET /_live/inbox`, and an open conversation (its latest page) to `GET /_live/chat/<id>`,
server-sent events streams (as real chat sites push over a websocket or SSE). Whenever a message
is added, the inbox page receives the inbox re-rendered and replaces its content in place, and
that conversation's open pages receive its message log and replace the log (the reply box is
left alone), without a reload, in the theme the page was loaded with. The `live` fault
(`faults(live=False)`) makes the channel stop silently: the streams stay open and send nothing,
as a dead push channel does. Streams are not page views. A page is rendered with its channel's
change count (`since`); a stream that opens after a change its page missed (between the
render and the subscription) sends the current state at once, as real chat clients sync on
connect.

`POST /_admin/theme {"theme": ...}` switches the theme for all later page loads (a redesign in the
middle of the day); `reset` restores the app's default (`make_app(theme=..., brand=...)`). Chat
text is hostile: everything dynamic is HTML-escaped.

Run alone: `python -m standins.chatsite --port 8301` (`CHATSITE_THEME` / `CHATSITE_BRAND` set the
default theme and brand).
"""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from html import escape
from typing import Any

from aiohttp import web

from contracts.ids import stable_hash
from standins.admin import AdminClient

SESSION_COOKIE = "mm_sid"
STATE = web.AppKey("state", "SiteState")
DEFAULT_PAGE_SIZE = 20
THEMES = ("classic", "bubbles", "items", "aria")


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
    challenge: str | None = None     # "captcha" | "2fa" | "device" | "unusual": a correct login
                                     # shows that challenge page instead of logging in
    send_render_stale: bool = False  # an XHR send is stored, but its answer re-renders the log
                                     # without it and the open page is not pushed it (a later
                                     # page load shows it)
    live: bool = True                # open inbox pages get new messages pushed (False: the
                                     # channel stays open and silently sends nothing)


class SiteState:
    """All state of one app instance, in memory."""

    def __init__(self, default_theme: str = "classic", brand: str = "MeetMe") -> None:
        if default_theme not in THEMES:
            raise ValueError(f"unknown theme {default_theme!r} (known: {', '.join(THEMES)})")
        self.default_theme = default_theme
        self.brand = brand
        self.reset()

    def reset(self) -> None:
        """Forget everything (the admin reset between tests), back to the default theme."""
        self.theme = self.default_theme
        self.accounts: dict[str, str] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.conversations: dict[str, Conversation] = {}
        self.sent: list[dict[str, Any]] = []
        self.faults = Faults()
        self.stats: dict[str, Any] = {"login_submissions": 0, "logins": 0, "page_views": 0,
                                      "views": {}, "sends": 0, "errors_500": 0, "resets": 0,
                                      "inbox_views": 0, "live_streams": 0, "live_pushes": 0}
        self.next_id = 1
        self.end_streams()   # the pages of before the reset reconnect
        self.listeners: set[tuple[str, asyncio.Queue]] = set()   # open live streams: (what, queue)
        # how many changes each live channel ("inbox", a conversation id) has had: a page is
        # rendered with it, and a stream that opens after a change the page missed (between the
        # render and the subscription) sends it at once, as real chat clients sync on connect
        self.versions: dict[str, int] = {}

    def end_streams(self) -> None:
        """End every open live stream (a reset, the site's shutdown)."""
        for _, q in getattr(self, "listeners", ()):
            q.put_nowait(None)

    def changed(self, conversation_id: str, *, conversation_pages: bool = True) -> None:
        """Tell the open live inboxes and that conversation's open pages (unless the channel is
        dead; `conversation_pages=False`: the open pages of that conversation are not told, so
        they keep showing what they had until they are loaded again)."""
        keys = ("inbox", conversation_id) if conversation_pages else ("inbox",)
        for key in keys:
            self.versions[key] = self.versions.get(key, 0) + 1
        if self.faults.live:
            for key, q in self.listeners:
                if key in keys:
                    q.put_nowait(conversation_id)

    def add_message(self, conversation_id: str, sender: str, text: str, direction: str,
                    when: str | None = None, title: str | None = None, *,
                    conversation_pages: bool = True) -> Message:
        conv = self.conversations.get(conversation_id)
        if conv is None:
            conv = self.conversations[conversation_id] = Conversation(conversation_id, title or sender)
        msg = Message(self.next_id, sender, text,
                      when or datetime.now(UTC).isoformat(timespec="seconds"), direction)
        self.next_id += 1
        conv.messages.append(msg)
        if direction == "in":
            conv.unread += 1
        self.changed(conversation_id, conversation_pages=conversation_pages)
        return msg

    def new_session(self, user: str) -> str:
        sid = secrets.token_urlsafe(24)
        self.sessions[sid] = {"user": user, "at": time.time()}
        self.stats["logins"] += 1
        return sid

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


# An open page keeps itself current, as a chat site's own client renders what its websocket or
# SSE channel brings: a pushed inbox replaces the inbox page's content (its scripts stay); a
# pushed log replaces a conversation's message log (the reply box and what is typed stay).
_LIVE_SCRIPT = """<script>(() => {
  const es = new EventSource(%s);
  es.addEventListener("inbox", (ev) => {
    const doc = new DOMParser().parseFromString(JSON.parse(ev.data).body, "text/html");
    const scripts = [...document.body.querySelectorAll(":scope > script")];
    document.body.replaceChildren(...doc.body.childNodes, ...scripts);
  });
  es.addEventListener("log", (ev) => {
    const log = document.querySelector(%s);
    if (log) log.innerHTML = JSON.parse(ev.data).log;
  });
})();</script>"""


def _live_script(stream: str, log_selector: str = "") -> str:
    return _LIVE_SCRIPT % (json.dumps(stream), json.dumps(log_selector or "none"))


def _page(title: str, body: str, *, modal: str, logged_in: bool, live: str = "") -> str:
    store = ("<script>if(!localStorage.getItem('mm.device'))"
             "localStorage.setItem('mm.device',Math.random().toString(36).slice(2));</script>"
             if logged_in else "")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title></head>"
            f"<body>{body}{modal}{store}{live}</body></html>")


# ---------------------------------------------------------------- the classic markup

def _login_body(m: Markup, error: str = "", brand: str = "MeetMe") -> str:
    user = (f'<div data-testid="login-email"><input type="email" {m.hooks("login_username", id="login-email")} name="email"></div>'
            if m.ok("login_username") else '<input type="text" name="user_identifier">')
    pw = (f'<div data-testid="login-password"><input type="password" {m.hooks("login_password", id="login-password")} name="password"></div>'
          if m.ok("login_password") else '<input type="password" name="pw_field">')
    submit = (f'<button type="submit" {m.hooks("login_submit", cls="login-submit", testid="login-submit")}>Log in</button>'
              if m.ok("login_submit") else '<input type="submit" value="Log in">')
    err = f'<p class="login-error" role="alert">{escape(error)}</p>' if error else ""
    return (f'<h1>Log in to {escape(brand)}</h1>{err}'
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


# ---------------------------------------------------------------- times as each theme shows them

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")


def _utc(iso: str) -> datetime | None:
    """A stored message time (ISO 8601; no zone means UTC) as an aware UTC datetime, or None."""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _shown(iso: str, fmt: str) -> str:
    """The time formatted in UTC (an unparseable stored time is shown as it is)."""
    moment = _utc(iso)
    return moment.strftime(fmt) if moment else iso


def _iso_utc(iso: str) -> str:
    moment = _utc(iso)
    return moment.isoformat(timespec="seconds") if moment else iso


def _day_label(day: date, today: date) -> str:
    """`Today`, `Yesterday`, else `Monday, 30 November 2026` (English whatever the locale)."""
    if day == today:
        return "Today"
    if (today - day).days == 1:
        return "Yesterday"
    return f"{_WEEKDAYS[day.weekday()]}, {day.day} {_MONTHS[day.month - 1]} {day.year}"


def _page_of(conv: Conversation, before: int | None, page_size: int) -> tuple[list[Message], str | None]:
    """The messages of one page (oldest first) and the escaped href of the older page, if any."""
    msgs = [x for x in conv.messages if before is None or x.id < before]
    page = msgs[-page_size:]
    older = (f"/chat/{escape(conv.id)}?before={page[0].site_id}" if len(msgs) > len(page) else None)
    return page, older


def _sorted_conversations(state: SiteState) -> list[Conversation]:
    return sorted(state.conversations.values(),
                  key=lambda c: c.messages[-1].id if c.messages else 0, reverse=True)


_OVERLAY_STYLE = "position:fixed;inset:0;z-index:1000;background:rgba(0,0,0,.6)"
_DIALOG_STYLE = "margin:20vh auto;width:300px;background:#fff;padding:1em"


# ---------------------------------------------------------------- themes

class Theme:
    """One markup of the site. `faults` matter to `classic` only (renamed/broken hooks)."""
    name = ""
    live = True              # open pages get changes pushed (see the module docstring)
    log_selector = ""        # the conversation page's message container (`log()` is its content)

    def title(self, title: str, brand: str) -> str:
        return f"{title} · {brand}"

    def popup(self, brand: str, faults: Faults) -> str:
        raise NotImplementedError

    def login(self, brand: str, faults: Faults, error: str = "") -> str:
        raise NotImplementedError

    def inbox(self, state: SiteState, faults: Faults) -> str:
        raise NotImplementedError

    def conversation(self, conv: Conversation, before: int | None, page_size: int, faults: Faults,
                     brand: str) -> str:
        raise NotImplementedError

    def log(self, conv: Conversation, page_size: int, faults: Faults) -> str:
        """The inner HTML of the message container for the latest page (the XHR send's answer)."""
        raise NotImplementedError


class ClassicTheme(Theme):
    """The markup MeetMe was first assumed to have (standins/sites/classic.yaml), with the renamed/broken fault hooks."""
    name = "classic"
    log_selector = "[role=log]"

    def title(self, title: str, brand: str) -> str:
        return title

    def popup(self, brand: str, faults: Faults) -> str:
        m = Markup(faults)
        hooks = m.hooks("popup_close", cls="modal-close", testid="popup-close", extra='aria-label="Close"')
        close = (f'<button type="button" {hooks} '
                 "onclick=\"this.closest('.mm-backdrop').remove()\">&times;</button>"
                 if m.ok("popup_close") else
                 "<span onclick=\"this.closest('.mm-backdrop').remove()\">later</span>")
        return (f'<div class="mm-backdrop" style="{_OVERLAY_STYLE}">'
                f'<div class="{m.name("modal-dialog")}" role="dialog" aria-modal="true" '
                f'style="{_DIALOG_STYLE}">'
                f'<p>Upgrade to {escape(brand)} VIP!</p>{close}</div></div>')

    def login(self, brand: str, faults: Faults, error: str = "") -> str:
        return _login_body(Markup(faults), error, brand)

    def inbox(self, state: SiteState, faults: Faults) -> str:
        return _inbox_body(state, Markup(faults))

    def conversation(self, conv: Conversation, before: int | None, page_size: int, faults: Faults,
                     brand: str) -> str:
        return _conversation_body(conv, before, page_size, Markup(faults))

    def log(self, conv: Conversation, page_size: int, faults: Faults) -> str:
        m = Markup(faults)
        return "".join(_message_html(x, m) for x in _page_of(conv, None, page_size)[0])


class BubblesTheme(Theme):
    """Ids and plain classes; `data-id` message ids, direction classes, `YYYY-MM-DD HH:MM` (UTC)."""
    name = "bubbles"
    log_selector = ".chat-window"

    def popup(self, brand: str, faults: Faults) -> str:
        return (f'<div class="overlay" style="{_OVERLAY_STYLE}">'
                f'<div class="modal" role="dialog" aria-modal="true" style="{_DIALOG_STYLE}">'
                f'<p>Go {escape(brand)} Premium today!</p>'
                '<button type="button" class="close-btn" aria-label="Close" '
                "onclick=\"this.closest('.overlay').remove()\">&times;</button></div></div>")

    def _topbar(self, brand: str) -> str:
        return f'<header class="topbar"><span class="brand">{escape(brand)}</span></header>'

    def login(self, brand: str, faults: Faults, error: str = "") -> str:
        err = f'<div class="alert error" role="alert">{escape(error)}</div>' if error else ""
        return (f'{self._topbar(brand)}<h1>Sign in to {escape(brand)}</h1>{err}'
                '<form id="login" method="post" action="/login">'
                '<label for="username">Username</label>'
                '<input id="username" name="username" type="text" autocomplete="username">'
                '<label for="password">Password</label>'
                '<input id="password" name="password" type="password" autocomplete="current-password">'
                '<button id="login-btn" type="submit">Sign in</button></form>')

    def inbox(self, state: SiteState, faults: Faults) -> str:
        items = []
        for c in _sorted_conversations(state):
            last = c.messages[-1] if c.messages else None
            preview = escape(last.text[:80]) if last else ""
            when = escape(_shown(last.time, "%Y-%m-%d %H:%M")) if last else ""
            badge = f'<span class="badge">{c.unread}</span>' if c.unread else ""
            items.append(f'<div class="conversation"><a href="/chat/{escape(c.id)}">'
                         f'<span class="name">{escape(c.title)}</span> <span class="snippet">{preview}</span> '
                         f'<span class="when">{when}</span></a>{badge}</div>')
        return f'{self._topbar(state.brand)}<h1>Messages</h1><div class="conversations">{"".join(items)}</div>'

    def _message(self, msg: Message) -> str:
        side = "sent" if msg.direction == "out" else "received"
        return (f'<div class="chat-message {side}" data-id="{msg.site_id}">'
                f'<span class="user-name">{escape(msg.sender)}</span>'
                f'<div class="message-text" style="white-space:pre-wrap">{escape(msg.text)}</div>'
                f'<span class="timestamp">{escape(_shown(msg.time, "%Y-%m-%d %H:%M"))}</span></div>')

    def _window(self, conv: Conversation, before: int | None, page_size: int) -> str:
        page, older = _page_of(conv, before, page_size)
        top = (f'<a class="older" href="{older}">Older messages</a>' if older
               else '<div class="conversation-start">This is the beginning of your chat</div>')
        return top + "".join(self._message(x) for x in page)

    def conversation(self, conv: Conversation, before: int | None, page_size: int, faults: Faults,
                     brand: str) -> str:
        return (f'{self._topbar(brand)}<h1 class="chat-title">{escape(conv.title)}</h1>'
                f'<div class="chat-window">{self._window(conv, before, page_size)}</div>'
                f'<form class="reply-form" method="post" action="/chat/{escape(conv.id)}/send">'
                '<textarea id="reply" name="message" placeholder="Write a reply"></textarea>'
                '<button class="send-btn" type="submit">Send</button></form>')

    def log(self, conv: Conversation, page_size: int, faults: Faults) -> str:
        return self._window(conv, None, page_size)


class ItemsTheme(Theme):
    """Classes only; messages carry no id of any kind; `HH:MM` text with the ISO time in `title`."""
    name = "items"
    live = False             # a site without live updates: its pages show what they loaded
    log_selector = ".message-list"

    def popup(self, brand: str, faults: Faults) -> str:
        return (f'<div class="popup-overlay" style="{_OVERLAY_STYLE}">'
                f'<div class="popup" role="dialog" aria-modal="true" style="{_DIALOG_STYLE}">'
                f'<p>Boost your {escape(brand)} profile!</p>'
                '<span class="popup-close" role="button" tabindex="0" '
                "onclick=\"this.closest('.popup-overlay').remove()\">No thanks</span></div></div>")

    def _bar(self, brand: str) -> str:
        return f'<nav class="app-bar"><span class="app-name">{escape(brand)}</span></nav>'

    def login(self, brand: str, faults: Faults, error: str = "") -> str:
        err = f'<p class="login-error">{escape(error)}</p>' if error else ""
        return (f'{self._bar(brand)}<h1>Welcome to {escape(brand)}</h1>{err}'
                '<form class="login-form" method="post" action="/login">'
                '<input id="login-username" name="login_username" type="text" placeholder="Username">'
                '<input id="login-password" name="login_password" type="password" placeholder="Password">'
                '<input type="submit" class="login-button" value="Log in"></form>')

    def inbox(self, state: SiteState, faults: Faults) -> str:
        items = []
        for c in _sorted_conversations(state):
            last = c.messages[-1] if c.messages else None
            preview = escape(last.text[:80]) if last else ""
            count = f'<em class="thread-count">{c.unread}</em>' if c.unread else ""
            items.append(f'<li class="thread{" unread" if c.unread else ""}"><a href="/chat/{escape(c.id)}">'
                         f'<strong class="thread-title">{escape(c.title)}</strong> '
                         f'<span class="thread-preview">{preview}</span></a>{count}</li>')
        return f'{self._bar(state.brand)}<h1>Inbox</h1><ul class="threads">{"".join(items)}</ul>'

    def _message(self, msg: Message) -> str:
        side = "outgoing" if msg.direction == "out" else "incoming"
        return (f'<div class="message-item {side}">'
                f'<div class="message-user">{escape(msg.sender)}</div>'
                f'<div class="message-content" style="white-space:pre-wrap">{escape(msg.text)}</div>'
                f'<span class="message-time" title="{escape(_iso_utc(msg.time))}">'
                f'{escape(_shown(msg.time, "%H:%M"))}</span></div>')

    def conversation(self, conv: Conversation, before: int | None, page_size: int, faults: Faults,
                     brand: str) -> str:
        page, older = _page_of(conv, before, page_size)
        top = (f'<a class="load-more" href="{older}">Load more</a>' if older
               else '<div class="thread-start">This is the start of your conversation</div>')
        return (f'{self._bar(brand)}<h1 class="thread-header">{escape(conv.title)}</h1>{top}'
                f'<div class="message-list">{"".join(self._message(x) for x in page)}</div>'
                f'<form class="message-form" method="post" action="/chat/{escape(conv.id)}/send">'
                '<textarea class="message-input" name="body" placeholder="Type a message"></textarea>'
                '<button class="message-send" type="submit">Send</button></form>')

    def log(self, conv: Conversation, page_size: int, faults: Faults) -> str:
        return "".join(self._message(x) for x in _page_of(conv, None, page_size)[0])


_SEND_ICON = ('<svg width="20" height="20" viewBox="0 0 24 24" aria-hidden="true" focusable="false">'
              '<path d="M2 21l21-9L2 3v7l15 2-15 2z" fill="currentColor"></path></svg>')
# The XHR send: POST JSON, put the re-rendered log in place, clear the box; no navigation. A 401
# (session gone) goes to the login page the server names; any other failure leaves the box as it is.
_ARIA_SEND_JS = """<script>(function(){
var c=document.querySelector('[data-testid=composer]');if(!c)return;
var box=c.querySelector('[role=textbox]'),btn=c.querySelector('button[aria-label=Send]'),
st=c.querySelector('[role=status]'),log=document.querySelector('[role=log]');
btn.addEventListener('click',function(){
var text=box.innerText;if(!text.trim()||btn.disabled)return;
btn.disabled=true;st.textContent='Sending';
fetch(c.getAttribute('data-send-url'),{method:'POST',headers:{'Content-Type':'application/json'},
body:JSON.stringify({message:text})}).then(function(r){
if(r.status===401)return r.json().then(function(d){location.href=d.login;});
if(!r.ok)throw new Error('HTTP '+r.status);
return r.json().then(function(d){log.innerHTML=d.log_html;box.innerHTML='';st.textContent='';});
}).catch(function(){st.textContent='Not sent';}).finally(function(){btn.disabled=false;});
});})();</script>"""


class AriaTheme(Theme):
    """No class names at all: data-testid, roles and ARIA attributes; day separators with `HH:MM`
    clocks (UTC); a contenteditable reply box and an XHR send (JSON, no navigation)."""
    name = "aria"
    log_selector = "[role=log]"

    def popup(self, brand: str, faults: Faults) -> str:
        return (f'<div data-testid="overlay" style="{_OVERLAY_STYLE}">'
                f'<div role="dialog" aria-modal="true" aria-label="Offer" style="{_DIALOG_STYLE}">'
                f'<p>Try {escape(brand)} Plus free for a month</p>'
                '<button type="button" aria-label="Dismiss" '
                "onclick=\"this.closest('[data-testid=overlay]').remove()\">"
                '<svg width="16" height="16" viewBox="0 0 16 16" aria-hidden="true">'
                '<path d="M3 3l10 10M13 3L3 13" stroke="currentColor"></path></svg></button></div></div>')

    def _header(self, brand: str) -> str:
        return f'<header><span data-testid="brand">{escape(brand)}</span></header>'

    def login(self, brand: str, faults: Faults, error: str = "") -> str:
        err = f'<p role="alert">{escape(error)}</p>' if error else ""
        return (f'{self._header(brand)}<main><h1>Sign in to {escape(brand)}</h1>{err}'
                '<form data-testid="signin-form" method="post" action="/login" aria-label="Sign in">'
                '<label>Email or username <input type="text" name="identifier" autocomplete="username"></label>'
                '<label>Password <input type="password" name="password" autocomplete="current-password">'
                '</label><button type="submit">Continue</button></form></main>')

    def inbox(self, state: SiteState, faults: Faults) -> str:
        items = []
        for c in _sorted_conversations(state):
            last = c.messages[-1] if c.messages else None
            preview = escape(last.text[:80]) if last else ""
            unread = (f'<span data-testid="unread" aria-label="{c.unread} unread">{c.unread}</span>'
                      if c.unread else "")
            items.append(f'<div role="listitem"><a href="/chat/{escape(c.id)}">'
                         f'<span data-testid="peer">{escape(c.title)}</span> '
                         f'<span data-testid="preview">{preview}</span></a>{unread}</div>')
        return (f'{self._header(state.brand)}<main><h1>Messages</h1>'
                f'<div role="list" aria-label="Conversations">{"".join(items)}</div></main>')

    def _log(self, conv: Conversation, before: int | None, page_size: int) -> str:
        page, older = _page_of(conv, before, page_size)
        parts = [f'<a data-testid="older" href="{older}">Show earlier messages</a>' if older
                 else '<div data-testid="conversation-start">This is the start of your conversation</div>']
        today = datetime.now(UTC).date()
        # a separator where the day changes in the conversation, as paged chat sites draw them:
        # a page that continues the day of the page before it starts without one
        shown_day: date | None = None
        if page:
            earlier = [x for x in conv.messages if x.id < page[0].id]
            if earlier and (moment := _utc(earlier[-1].time)) is not None:
                shown_day = moment.date()
        for msg in page:
            moment = _utc(msg.time)
            if moment is not None and moment.date() != shown_day:
                shown_day = moment.date()
                parts.append(f'<div role="separator" data-testid="day">{_day_label(shown_day, today)}</div>')
            author = "self" if msg.direction == "out" else "other"
            parts.append(f'<div role="article" data-testid="msg" data-author="{author}">'
                         f'<span data-testid="author">{escape(msg.sender)}</span>'
                         f'<div data-testid="body" style="white-space:pre-wrap">{escape(msg.text)}</div>'
                         f'<span data-testid="clock">{escape(_shown(msg.time, "%H:%M"))}</span></div>')
        return "".join(parts)

    def conversation(self, conv: Conversation, before: int | None, page_size: int, faults: Faults,
                     brand: str) -> str:
        return (f'{self._header(brand)}<main><h1>{escape(conv.title)}</h1>'
                f'<div role="log" aria-label="Messages" aria-live="polite">{self._log(conv, before, page_size)}</div>'
                f'<div data-testid="composer" data-send-url="/chat/{escape(conv.id)}/send">'
                '<div contenteditable="true" role="textbox" aria-label="Message" aria-multiline="true"></div>'
                f'<button aria-label="Send" type="button">{_SEND_ICON}</button>'
                f'<div role="status" aria-live="polite"></div></div></main>{_ARIA_SEND_JS}')

    def log(self, conv: Conversation, page_size: int, faults: Faults) -> str:
        return self._log(conv, None, page_size)


_THEMES: dict[str, Theme] = {t.name: t for t in (ClassicTheme(), BubblesTheme(), ItemsTheme(), AriaTheme())}
assert tuple(_THEMES) == THEMES


# ---------------------------------------------------------------- request handling

def _state(request: web.Request) -> SiteState:
    return request.app[STATE]


def _theme(request: web.Request) -> Theme:
    """The markup of this response: the theme current when the request is handled."""
    return _THEMES[_state(request).theme]


def _html(request: web.Request, title: str, body: str, *, logged_in: bool,
          live: str = "") -> web.Response:
    st = _state(request)
    f = st.faults
    n = st.stats["page_views"]
    popup = f.popup == "always" or (isinstance(f.popup, int) and f.popup > 0 and n % f.popup == 0)
    theme = _theme(request)
    modal = theme.popup(st.brand, f) if popup else ""
    return web.Response(text=_page(theme.title(title, st.brand), body, modal=modal,
                                   logged_in=logged_in, live=live),
                        content_type="text/html")


@web.middleware
async def _faults(request: web.Request, handler):
    """Page requests (not /_admin, not the live streams) get the configured slowness, resets
    and 500s."""
    if request.path.startswith(("/_admin", "/_live")):
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


# the login field names of every theme (classic, classic `broken`, bubbles, items, aria)
_USER_FIELDS = ("email", "user_identifier", "username", "login_username", "identifier")
_PASSWORD_FIELDS = ("password", "pw_field", "login_password")


async def login_page(request: web.Request) -> web.Response:
    st = _state(request)
    return _html(request, "Log in", _theme(request).login(st.brand, st.faults), logged_in=False)


async def login_submit(request: web.Request) -> web.Response:
    st = _state(request)
    st.stats["login_submissions"] += 1
    form = await request.post()
    user = next((str(form[k]) for k in _USER_FIELDS if form.get(k)), "")
    password = next((str(form[k]) for k in _PASSWORD_FIELDS if form.get(k)), "")
    if not user or st.accounts.get(user) != password:
        resp = _html(request, "Log in", _theme(request).login(st.brand, st.faults, "Wrong email or password"),
                     logged_in=False)
        resp.set_status(401)
        return resp
    if st.faults.challenge:  # a person must complete it; no session until then
        st.stats["challenges"] = st.stats.get("challenges", 0) + 1
        return _html(request, "Verify it's you", _challenge_body(st.faults.challenge), logged_in=False)
    sid = st.new_session(user)
    nxt = request.query.get("next", "/chat")
    resp = web.HTTPSeeOther(nxt if nxt.startswith("/") and not nxt.startswith("//") else "/chat")
    resp.set_cookie(SESSION_COOKIE, sid, httponly=True, path="/", samesite="Lax")
    raise resp


_CHALLENGES = {
    "captcha": "Please confirm you are not a robot.",
    "2fa": "Enter the 6-digit code we sent to your phone.",
    "device": "We don't recognise this device. Approve the sign-in from a device you have used before.",
    "unusual": "We noticed unusual activity on your account. Verify your identity to continue.",
}


def _challenge_body(kind: str) -> str:
    """The same on every theme: real sites serve these from a shared identity service."""
    text = _CHALLENGES.get(kind, _CHALLENGES["unusual"])
    return (f'<main data-testid="login-challenge" data-challenge="{escape(kind)}" role="alert">'
            f'<h1>Verify it\'s you</h1><p>{escape(text)}</p>'
            '<input name="code" autocomplete="one-time-code" aria-label="Code"></main>')


async def root(request: web.Request) -> web.Response:
    raise web.HTTPFound("/chat")


async def inbox(request: web.Request) -> web.Response:
    st = _state(request)
    if not st.session_user(request):
        raise _login_redirect(request)
    st.stats["inbox_views"] += 1
    theme = _theme(request)
    live = (_live_script(f"/_live/inbox?theme={theme.name}&since={st.versions.get('inbox', 0)}")
            if theme.live else "")
    return _html(request, "Messages", theme.inbox(st, st.faults), logged_in=True, live=live)


async def live_stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events after each change, rendered in the theme the page was loaded with:
    `inbox` (the inbox re-rendered) on /_live/inbox, `log` (the conversation's latest page of
    messages) on /_live/chat/<id>."""
    st = _state(request)
    if not st.session_user(request):
        raise web.HTTPUnauthorized(text="logged out")
    theme = _THEMES.get(request.query.get("theme", ""), _theme(request))
    cid = request.match_info.get("cid")
    conv = _conversation(request) if cid is not None else None
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache"})
    await resp.prepare(request)
    changes: asyncio.Queue = asyncio.Queue()
    listener = (cid if cid is not None else "inbox", changes)
    st.listeners.add(listener)
    st.stats["live_streams"] += 1
    try:
        since = int(request.query.get("since", ""))
    except ValueError:
        since = None
    if since is not None and st.versions.get(listener[0], 0) > since and st.faults.live:
        changes.put_nowait(listener[0])   # changed since the page was rendered: sync now
    try:
        while True:
            try:
                change = await asyncio.wait_for(changes.get(), 15)
            except asyncio.TimeoutError:
                await resp.write(b": keep-alive\n\n")
                continue
            if change is None:   # the site shuts down: end the stream (the page reconnects)
                return resp
            while not changes.empty():   # a burst is one update
                changes.get_nowait()
            if conv is None:
                event, data = "inbox", {"body": theme.inbox(st, st.faults)}
            else:
                event, data = "log", {"log": theme.log(conv, max(1, st.faults.page_size), st.faults)}
            await resp.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
            st.stats["live_pushes"] += 1
    finally:
        st.listeners.discard(listener)


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
    theme = _theme(request)
    body = theme.conversation(conv, before_id, max(1, st.faults.page_size), st.faults, st.brand)
    live = (_live_script(f"/_live/chat/{urllib.parse.quote(conv.id, safe='')}?theme={theme.name}"
                         f"&since={st.versions.get(conv.id, 0)}", theme.log_selector)
            if theme.live and before_id is None else "")   # an older page stays as it is
    return _html(request, conv.title, body, logged_in=True, live=live)


async def send(request: web.Request) -> web.Response:
    """A form post (`message` or `body`; answered with a redirect to the conversation) or, from the
    aria theme's script, JSON `{"message": ...}` answered with JSON holding the new message's id
    and the re-rendered log (latest page) of the current theme."""
    st = _state(request)
    is_json = request.content_type == "application/json"
    user = st.session_user(request)
    if not user:
        if is_json:
            nxt = urllib.parse.quote(f"/chat/{request.match_info['cid']}", safe="/")
            return web.json_response({"error": "logged out", "login": f"/login?next={nxt}"}, status=401)
        raise _login_redirect(request)
    conv = _conversation(request)
    if is_json:
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="bad JSON") from None
        raw = (body.get("message") or body.get("body")) if isinstance(body, dict) else None
        if raw is not None and not isinstance(raw, str):
            raise web.HTTPBadRequest(text="message must be a string")
    else:
        form = await request.post()
        raw = form.get("message") or form.get("body")
    text = str(raw or "").replace("\r\n", "\n")
    if not text.strip():
        raise web.HTTPBadRequest(text="empty message")
    before = list(conv.messages)
    # send_render_stale: the page never shows this send, neither in the XHR's answer nor pushed
    # into the open page (a later page load shows it)
    msg = st.add_message(conv.id, user, text, "out",
                         conversation_pages=not (is_json and st.faults.send_render_stale))
    st.sent.append(msg.as_json(conv.id))
    st.stats["sends"] += 1
    if is_json:
        shown = conv
        if st.faults.send_render_stale:
            shown = Conversation(conv.id, conv.title, before, conv.unread)
        log = _theme(request).log(shown, max(1, st.faults.page_size), st.faults)
        return web.json_response({"ok": True, "id": msg.site_id, "log_html": log})
    raise web.HTTPSeeOther(f"/chat/{conv.id}")


# ---------------------------------------------------------------- the contact's side (demo)

_CONTACT_SCRIPT = """
const cid = document.body.dataset.cid, log = document.getElementById("log");
async function load() {
  const r = await fetch(`/_admin/conversations/${encodeURIComponent(cid)}/messages`);
  if (!r.ok) return;
  const msgs = await r.json();
  log.replaceChildren(...msgs.map((m) => {
    const li = document.createElement("li");
    li.className = m.direction === "out" ? "reply" : "mine";
    li.dataset.direction = m.direction;
    li.textContent = `${m.direction === "out" ? "Reply from the account owner" : m.sender}: ${m.text}`;
    return li;
  }));
}
document.getElementById("say").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const text = document.getElementById("text");
  if (!text.value.trim()) return;
  await fetch(`/_admin/conversations/${encodeURIComponent(cid)}/messages`, {method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({sender: document.body.dataset.sender, text: text.value})});
  text.value = "";
  load();
});
load();
setInterval(load, 1000);
"""


async def contact_index(request: web.Request) -> web.Response:
    """The demo's other side: every conversation, as its contact sees it."""
    convs = _sorted_conversations(_state(request))
    items = "".join(f'<li><a href="/contact/{escape(urllib.parse.quote(c.id))}">{escape(c.title)}</a> '
                    f'({len(c.messages)} messages)</li>' for c in convs)
    return web.Response(text=f"<!doctype html><title>Contacts</title><h1>Talk as a contact</h1>"
                             f"<p>Pick a conversation, or start one at /contact/&lt;id&gt;?as=Name.</p>"
                             f"<ul>{items}</ul>", content_type="text/html")


async def contact_page(request: web.Request) -> web.Response:
    """One conversation as its contact sees it: the messages (live) and a box to write more."""
    st = _state(request)
    cid = request.match_info["cid"]
    conv = st.conversations.get(cid)
    sender = request.query.get("as") or (conv.title if conv else cid)
    return web.Response(text=(
        f'<!doctype html><html><head><meta charset="utf-8"><title>{escape(sender)} · {escape(cid)}</title>'
        '<style>body{font:15px sans-serif;max-width:40em;margin:2em auto}li{margin:.3em 0}'
        '.reply{color:#05603a;font-weight:bold}</style></head>'
        f'<body data-cid="{escape(cid)}" data-sender="{escape(sender)}">'
        f'<h1>You are {escape(sender)}, chatting with the account owner</h1>'
        '<ul id="log" aria-live="polite"></ul>'
        '<form id="say"><label>Your message <input id="text" size="50" autocomplete="off"></label>'
        '<button type="submit">Send</button></form>'
        f'<script>{_CONTACT_SCRIPT}</script></body></html>'), content_type="text/html")


# ---------------------------------------------------------------- admin API

async def admin_reset(request: web.Request) -> web.Response:
    _state(request).reset()
    return web.json_response({"ok": True})


async def admin_session(request: web.Request) -> web.Response:
    """A logged-in session for `username`, as a person who completed a challenge in their own
    browser has: its cookie, for a Playwright storage-state file."""
    body = await request.json()
    st = _state(request)
    if body.get("username") not in st.accounts:
        raise web.HTTPBadRequest(text="unknown username")
    return web.json_response({"cookie": SESSION_COOKIE, "value": st.new_session(str(body["username"]))})


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
    direction = body.get("direction", "in")
    if direction not in ("in", "out"):
        raise web.HTTPBadRequest(text="direction must be 'in' or 'out'")
    msg = _state(request).add_message(request.match_info["cid"], body["sender"], body["text"], direction,
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


async def admin_theme(request: web.Request) -> web.Response:
    """GET: the current theme; POST {"theme": name}: switch at once for all later page loads."""
    st = _state(request)
    if request.method == "POST":
        body = await request.json()
        name = body.get("theme") if isinstance(body, dict) else None
        if not isinstance(name, str) or name not in THEMES:
            raise web.HTTPBadRequest(text=f"unknown theme {name!r} (known: {', '.join(THEMES)})")
        st.theme = name
    return web.json_response({"theme": st.theme, "default": st.default_theme, "brand": st.brand,
                              "themes": list(THEMES)})


async def _end_live_streams(app: web.Application) -> None:
    """On shutdown, long-lived streams end at once instead of holding the server's exit."""
    app[STATE].end_streams()


def make_app(theme: str = "classic", brand: str = "MeetMe") -> web.Application:
    """The site with `theme` as its default markup (`reset` comes back to it) and `brand` in its
    titles and headings."""
    app = web.Application(middlewares=[_faults])
    app[STATE] = SiteState(theme, brand)
    app.on_shutdown.append(_end_live_streams)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_submit)
    app.router.add_get("/", root)
    app.router.add_get("/chat", inbox)
    app.router.add_get("/_live/inbox", live_stream)
    app.router.add_get("/_live/chat/{cid}", live_stream)
    app.router.add_get("/chat/{cid}", conversation)
    app.router.add_post("/chat/{cid}/send", send)
    app.router.add_get("/contact", contact_index)
    app.router.add_get("/contact/{cid}", contact_page)
    app.router.add_post("/_admin/reset", admin_reset)
    app.router.add_post("/_admin/accounts", admin_account)
    app.router.add_post("/_admin/sessions", admin_session)
    app.router.add_post("/_admin/conversations/{cid}/messages", admin_inject)
    app.router.add_get("/_admin/conversations/{cid}/messages", admin_messages)
    app.router.add_get("/_admin/sent", admin_sent)
    app.router.add_get("/_admin/stats", admin_stats)
    app.router.add_post("/_admin/faults", admin_faults)
    app.router.add_get("/_admin/theme", admin_theme)
    app.router.add_post("/_admin/theme", admin_theme)
    return app


class ChatSiteAdmin(AdminClient):
    """Blocking client for the chat site's admin API."""

    def reset(self) -> None:
        self._call("POST", "/reset", {})

    def add_account(self, username: str, password: str) -> None:
        self._call("POST", "/accounts", {"username": username, "password": password})

    def inject(self, conversation_id: str, sender: str, text: str, time: str | None = None,
               title: str | None = None, direction: str | None = None) -> str:
        """Deliver an incoming message (or, with direction="out", one the owner sent by hand
        from another device); returns the site's message id."""
        body = {"sender": sender, "text": text, "time": time, "title": title, "direction": direction}
        return self._call("POST", f"/conversations/{conversation_id}/messages",
                          {k: v for k, v in body.items() if v is not None})["id"]

    def session_cookie(self, username: str) -> dict[str, str]:
        """{"cookie": name, "value": sid} of a fresh logged-in session for `username`."""
        return self._call("POST", "/sessions", {"username": username})

    def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/conversations/{conversation_id}/messages")

    def sent(self) -> dict[str, Any]:
        return self._call("GET", "/sent")

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/stats")

    def faults(self, **faults: Any) -> dict[str, Any]:
        return self._call("POST", "/faults", faults)

    def theme(self, name: str) -> str:
        """Switch the markup theme (one of THEMES) for all later page loads; returns it."""
        return self._call("POST", "/theme", {"theme": name})["theme"]

    def current_theme(self) -> str:
        return self._call("GET", "/theme")["theme"]


if __name__ == "__main__":
    from functools import partial

    from standins.serve import main
    main(partial(make_app, theme=os.environ.get("CHATSITE_THEME", "classic"),
                 brand=os.environ.get("CHATSITE_BRAND", "MeetMe")), "chatsite", 8301)
