"""The phoenix site's state: chatsite's `SiteState` (conversations, messages, sends, sessions,
live channels) plus what the single-page app adds: its faults, one-time login handoff tokens,
typing and seen marks, the client ids of sent messages, and held (never answered) sends."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from standins.chatsite import Faults, Message, SiteState

# The hooks the `rename` fault can change: key -> the id, class or placeholder the shipped markup
# uses. Every one of these elements also carries a stable alternative (a data-testid, and an
# aria-label where it has a name) that a rename leaves alone.
RENAMEABLE: dict[str, str] = {
    "login_open": "marketing-header-login",        # id of the header's login wrapper
    "login_username": "site-login-modal-email",    # id
    "login_password": "site-login-modal-password",  # id
    "login_submit": "site-login-modal-submit-group",  # id of the submit button's group
    "logged_in": "user-menu",                      # id inside #phoenix-topbar
    "push_modal": "enable-push-notifications",     # id of the push-notification modal
    "inbox_section": "chat-section",               # id (the inbox's ready marker)
    "inbox_list": "chat-list",                     # class of the inbox's <ol>
    "inbox_link": "media-body",                    # class of an item's link
    "inbox_name": "media-heading",                 # class of an item's name <h5>
    "inbox_preview": "messages-chats-item-preview",  # class of an item's preview <p>
    "inbox_typing": "messages-chats-item-typing",  # class of the typing indicator
    "inbox_unread": "chat-unread",                 # class of an item's unread badge
    "conversation_contact": "media-heading",       # class of the header's name <h4>
    "message_list": "chat-messages",               # id of the scroll container
    "message_in": "messages-chat-media-them",      # class of an incoming <li>
    "message_out": "messages-chat-media-me",       # class of an outgoing <li>
    "message_text": "chat-message",                # class of a message's text wrapper
    "pending": "is-pending",                       # class of an unconfirmed outgoing <li>
    "chat_start": "chat-start",                    # class of the beginning-of-conversation <li>
    "reply_form": "chat-form",                     # class of the reply form
    "reply_box": "Type something\u2026",           # the reply box's placeholder
}


@dataclass
class PhoenixFaults(Faults):
    """chatsite's switches that apply here (`slow_ms` on every page and API request, `http500` on
    the next N shell loads, `session_ttl_s`, `challenge`, `page_size`, `live`; the others are
    refused, see admin.UNSUPPORTED) plus the phoenix ones."""
    render_delay_ms: int = 300         # every JSON read the page renders from is answered this late
    push_modal: bool = True            # the push-notification modal on every full app load
    login_bounce: int = 0              # the next N correct logins end on www #home, no error
    send_pending_forever: bool | str = False  # True/"lost": the send is never answered nor
                                              # stored; "stored": stored, never answered
    send_fail_after_store: bool = False  # stored, answered 500 (the open page is not pushed it)
    send_slow: int = 0                 # ms before a send is stored and answered
    rename: dict[str, str] = field(default_factory=dict)   # RENAMEABLE key, ".class" or "#id"
                                                            # -> new name


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def epoch(iso: str) -> float:
    """A stored message time (ISO 8601; no zone means UTC) in epoch seconds (0.0 if unparseable)."""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return 0.0
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


class PhoenixState(SiteState):
    """One phoenix site (both hosts). `www_origin` / `app_origin` are set once the server is bound
    and survive `reset()`."""

    def __init__(self, brand: str = "MeetMe") -> None:
        self.www_origin = "http://localhost:0"
        self.app_origin = "http://127.0.0.1:0"
        super().__init__("classic", brand)

    def reset(self) -> None:
        self.release_held()
        super().reset()
        self.faults: PhoenixFaults = PhoenixFaults()
        self.handoffs: dict[str, str] = {}        # one-time login token -> user
        self.typing: set[str] = set()             # conversations whose contact is typing
        self.seen_upto: dict[str, int] = {}       # conversation -> last message id the contact read
        self.client_ids: dict[int, str] = {}      # message id -> the page's client id of a send
        self.held: set[asyncio.Future] = set()    # sends never answered (send_pending_forever)
        self.stats.update({"api_reads": 0, "login_bounces": 0, "challenges": 0,
                           "held_sends": 0, "conversation_views": 0})

    def release_held(self) -> None:
        """Drop the never-answered sends (a reset, the shutdown): their requests end."""
        for fut in getattr(self, "held", ()):
            if not fut.done():
                fut.cancel()

    def message_json(self, msg: Message) -> dict[str, Any]:
        """A message as the page's API gives it: no sender (the page never shows one)."""
        return {"id": msg.id, "direction": msg.direction, "text": msg.text,
                "ts": round(epoch(msg.time), 3), "client_id": self.client_ids.get(msg.id)}
