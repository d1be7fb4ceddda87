"""Deterministic ids: the same input always gives the same id, on any node."""
from __future__ import annotations

import hashlib


def stable_hash(*parts: object, length: int = 24) -> str:
    """sha256 over the parts, separated so that ("ab", "c") != ("a", "bc")."""
    h = hashlib.sha256()
    for p in parts:
        b = str(p).encode("utf-8")
        h.update(len(b).to_bytes(8, "big"))
        h.update(b)
    return h.hexdigest()[:length]


def content_key(sender: str, sent_at: str, text: str, occurrence: int = 0) -> str:
    """What a message is when the site gives it no id: who, when (to the minute, as most sites
    show it), what (whitespace-insensitive: markups render it differently), and its occurrence index among identical messages (two "ok" in one minute are
    occurrences 0 and 1, never one message)."""
    return "h" + stable_hash(" ".join(sender.split()), sent_at, " ".join(text.split()), occurrence)


def message_id(account_id: str, conversation_id: str, site_id: str | None,
               sender: str, sent_at: str, text: str, occurrence: int = 0) -> str:
    """The site's own id when it has one, else the content key."""
    if site_id:
        return f"{account_id}:{conversation_id}:{site_id}"
    return f"{account_id}:{conversation_id}:{content_key(sender, sent_at, text, occurrence)}"


def draft_id(account_id: str, conversation_id: str, last_message_id: str) -> str:
    """One draft per state of a conversation (its newest message)."""
    return "d" + stable_hash(account_id, conversation_id, last_message_id)


def account_hash(account_id: str) -> str:
    """What traces and logs carry instead of the account name."""
    return stable_hash("account", account_id, length=12)
