"""Helpers shared by the review desk tests: drafts and messages put in the store the way the AI
worker and the browser actor put them there."""
from __future__ import annotations

from typing import Any

from actors.review import make_app
from contracts.events import ChatMessage
from contracts.ids import draft_id as make_draft_id
from contracts.ids import message_id
from standins.serve import ServedApp

ACCOUNT = "meetme-main"


def add_conversation(store, conversation_id: str, texts: list[str], *, account_id: str = ACCOUNT,
                     classification: str = "needs_reply", draft: str = "Thanks, sounds good!",
                     ) -> dict[str, Any]:
    """Store the conversation's messages and a pending draft for it; returns the draft doc."""
    msgs = [ChatMessage(message_id=message_id(account_id, conversation_id, f"s{i}", "alex", f"t{i}", t),
                        account_id=account_id, site="meetme", conversation_id=conversation_id,
                        site_message_id=f"s{i}", sender="alex", text=t, sent_at=f"2026-11-25T10:0{i % 10}:00Z")
            for i, t in enumerate(texts)]
    store.messages.insert(msgs)
    did = make_draft_id(account_id, conversation_id, msgs[-1].message_id if msgs else "none")
    store.drafts.insert({"_id": did, "account_id": account_id, "conversation_id": conversation_id,
                         "message_ids": [m.message_id for m in msgs], "classification": classification,
                         "text": draft})
    return store.drafts.get(did)


def serve(config, store) -> ServedApp:
    return ServedApp(make_app(config, store)).start()


def send_as_browser(store, draft_id: str) -> None:
    """What the browser actor does once it has sent an approved reply."""
    assert store.drafts.transition(draft_id, ("approved", "edited"), "sending") is not None
    assert store.drafts.transition(draft_id, "sending", "sent", site_message_id="m-1") is not None
