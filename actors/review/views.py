"""The JSON shapes the API returns. Chat and draft text is passed through verbatim as JSON
strings: it is data, and the page renders it with textContent only."""
from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from contracts.draftstate import DraftStatus
from contracts.events import ChatMessage

# Status timestamps a draft may carry (`<status>_at`, set by Drafts.transition).
STATUSES = tuple(s.value for s in DraftStatus)


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


EXCERPT_CHARS = 280


def excerpt(text: str | None, limit: int = EXCERPT_CHARS) -> str | None:
    """The first `limit` characters of `text`, with an ellipsis when there was more."""
    if text is None or len(text) <= limit:
        return text
    return text[:limit - 1].rstrip() + "…"


def draft_json(doc: dict[str, Any], *, brief: bool = False) -> dict[str, Any]:
    """A draft; `brief` (the inbox list) sends excerpts of its texts, never a whole long text:
    the full text comes with the draft itself and in the conversation view."""
    text, original = doc.get("text", ""), doc.get("original_text")
    out = {
        "id": doc["_id"],
        "account_id": doc.get("account_id"),
        "conversation_id": doc.get("conversation_id"),
        "classification": doc.get("classification"),
        "status": doc.get("status"),
        "text": excerpt(text) if brief else text,
        "original_text": excerpt(original) if brief else original,
        "message_ids": doc.get("message_ids", []),
        "decided_by": doc.get("decided_by"),
        "reject_reason": doc.get("reject_reason"),
        "superseded_by": doc.get("superseded_by"),
        "superseded_reason": doc.get("superseded_reason"),
        "send_error": doc.get("send_error") or doc.get("error"),
        "site_message_id": doc.get("site_message_id"),
        "by_hand": bool(doc.get("by_hand")), "author": doc.get("author"),
        "instruction": doc.get("instruction"),
        "created_at": _iso(doc.get("created_at")),
        "release_at": _iso(doc.get("release_at")),
        "times": {s: _iso(doc[f"{s}_at"]) for s in STATUSES if doc.get(f"{s}_at")},
    }
    if brief:
        out["text_truncated"] = out["text"] != text
    return out


def message_json(m: ChatMessage) -> dict[str, Any]:
    return {"message_id": m.message_id, "site_message_id": m.site_message_id, "sender": m.sender,
            "text": m.text, "sent_at": m.sent_at, "direction": m.direction}


def encode_cursor(doc: dict[str, Any]) -> str:
    """An opaque cursor naming the last draft of a page: its creation time and id."""
    raw = json.dumps([doc["created_at"].isoformat(), doc["_id"]]).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Raises ValueError with a reason when the cursor was not made by `encode_cursor`."""
    try:
        at, draft_id = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
        return datetime.fromisoformat(at), str(draft_id)
    except (ValueError, TypeError, binascii.Error, UnicodeError) as exc:
        raise ValueError("cursor is not valid (use next_cursor from the previous page)") from exc
