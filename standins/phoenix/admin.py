"""The phoenix admin API (on the app host, under /_admin like chatsite's: chatsite's handlers for
reset, accounts, sessions, messages, sent and stats run on phoenix's state unchanged) and its
blocking client."""
from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from standins import chatsite
from standins.chatsite import ChatSiteAdmin
from standins.phoenix.api import state
from standins.phoenix.state import RENAMEABLE, PhoenixFaults, now_iso

# chatsite faults phoenix does not implement (refused rather than silently ignored)
UNSUPPORTED = frozenset({"renamed_classes", "broken", "crash_after", "crash_burst", "popup",
                         "send_render_stale"})
_TOKEN = re.compile(r"[.#][A-Za-z_][-A-Za-z0-9_]*")   # a class or id of the markup: ".chat-list"


async def admin_inject(request: web.Request) -> web.Response:
    """chatsite's inject, with a millisecond time when none is given (the page shows epoch seconds
    with a fraction). Conversation ids are numeric member ids."""
    cid = request.match_info["cid"]
    if not cid.isdigit():
        raise web.HTTPBadRequest(text=f"conversation id must be a numeric member id, got {cid!r}")
    body = await request.json()
    if not isinstance(body, dict) or not isinstance(body.get("sender"), str) \
            or not isinstance(body.get("text"), str):
        raise web.HTTPBadRequest(text="sender and text (strings) are required")
    direction = body.get("direction", "in")
    if direction not in ("in", "out"):
        raise web.HTTPBadRequest(text="direction must be 'in' or 'out'")
    st = state(request)
    msg = st.add_message(cid, body["sender"], body["text"], direction, body.get("time") or now_iso(),
                         body.get("title"))
    if direction == "in":
        st.typing.discard(cid)    # the contact stopped typing: the message is there
    return web.json_response({"id": msg.site_id})


async def admin_faults(request: web.Request) -> web.Response:
    st = state(request)
    body = await request.json()
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="faults must be a JSON object")
    if body.pop("logged_out", False):
        st.sessions.clear()
    known = set(PhoenixFaults.__dataclass_fields__) - UNSUPPORTED
    unknown = set(body) - known
    if unknown:
        raise web.HTTPBadRequest(text=f"unknown faults: {sorted(unknown)} (phoenix knows: "
                                      f"{sorted(known)}; chatsite's {sorted(UNSUPPORTED)} have "
                                      "no phoenix meaning: use rename / push_modal)")
    rename = body.get("rename")
    if rename is not None:
        if not isinstance(rename, dict) or not all(isinstance(v, str) and v for v in rename.values()):
            raise web.HTTPBadRequest(text="rename must map element keys to non-empty strings")
        bad = {k for k in rename if k not in RENAMEABLE and not _TOKEN.fullmatch(k)}
        if bad:
            raise web.HTTPBadRequest(text=f"rename: unknown keys {sorted(bad)} (known: "
                                          f"{sorted(RENAMEABLE)}, or '.class' / '#id')")
    for k, v in body.items():
        setattr(st.faults, k, v)
    return web.json_response(st.faults.__dict__)


def _known(request: web.Request) -> str:
    cid = request.match_info["cid"]
    if cid not in state(request).conversations:
        raise web.HTTPNotFound(text=f"no conversation {cid!r}")
    return cid


async def admin_typing(request: web.Request) -> web.Response:
    """{"on": bool}: the contact starts or stops typing (the inbox shows it; not a new message)."""
    st = state(request)
    cid = _known(request)
    body = await request.json()
    on = bool(body.get("on", True)) if isinstance(body, dict) else True
    (st.typing.add if on else st.typing.discard)(cid)
    st.changed(cid, conversation_pages=False)
    return web.json_response({"typing": on})


async def admin_seen(request: web.Request) -> web.Response:
    """The contact read everything so far: an inbox preview of our last message becomes "Seen"."""
    st = state(request)
    cid = _known(request)
    conv = st.conversations[cid]
    st.seen_upto[cid] = conv.messages[-1].id if conv.messages else 0
    st.changed(cid, conversation_pages=False)
    return web.json_response({"seen_upto": st.seen_upto[cid]})


def add_admin_routes(app: web.Application) -> None:
    app.router.add_post("/_admin/reset", chatsite.admin_reset)
    app.router.add_post("/_admin/accounts", chatsite.admin_account)
    app.router.add_post("/_admin/sessions", chatsite.admin_session)
    app.router.add_post("/_admin/conversations/{cid}/messages", admin_inject)
    app.router.add_get("/_admin/conversations/{cid}/messages", chatsite.admin_messages)
    app.router.add_post("/_admin/conversations/{cid}/typing", admin_typing)
    app.router.add_post("/_admin/conversations/{cid}/seen", admin_seen)
    app.router.add_get("/_admin/sent", chatsite.admin_sent)
    app.router.add_get("/_admin/stats", chatsite.admin_stats)
    app.router.add_post("/_admin/faults", admin_faults)


class PhoenixAdmin(ChatSiteAdmin):
    """chatsite's admin client (inject, sent, stats, reset, faults, session_cookie, ...) on the
    app host, with the phoenix extras; `.www_url` / `.app_url` are the two origins (`.url` is
    the app origin, where /_admin lives)."""

    def __init__(self, app_url: str, www_url: str):
        super().__init__(app_url)
        self.app_url = self.url
        self.www_url = www_url.rstrip("/")

    @property
    def env(self) -> dict[str, str]:
        """The site spec's host overrides for this site (conf/sites/meetme.yaml reads them)."""
        return {"MEETME_URL": self.www_url, "MEETME_APP_URL": self.app_url}

    def typing(self, conversation_id: str, on: bool = True) -> None:
        self._call("POST", f"/conversations/{conversation_id}/typing", {"on": on})

    def seen(self, conversation_id: str) -> None:
        self._call("POST", f"/conversations/{conversation_id}/seen", {})

    def rename(self, names: dict[str, str] | None = None, **keys: str) -> dict[str, Any]:
        """Rename hooks for all later renders: keys of RENAMEABLE (as keyword arguments or in
        `names`), or in `names` any class (".chat-list") or id ("#chat-section") of the markup,
        renamed wherever it appears."""
        return self.faults(rename={**(names or {}), **keys})

    def theme(self, name: str) -> str:
        raise NotImplementedError("phoenix has one markup; it has no themes")

    def current_theme(self) -> str:
        return "phoenix"
