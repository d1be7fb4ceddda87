"""Conversation summaries for a database written before summaries existed (an upgrade): built
once, from the messages, drafts, AI decisions and dead letters already stored. The review desk
runs it in the background at start when there are messages and no summaries; a summary the live
write path made meanwhile is newer and is kept (the backfill only inserts)."""
from __future__ import annotations

import logging
from typing import Any

from pymongo.errors import DuplicateKeyError

from actors.store.client import AsyncStore
from actors.store.summaries import _DRAFT_STATES, EXCERPT, _at, index_words
from contracts.events import utcnow

log = logging.getLogger("replydesk.store.backfill")
NO_REPLY = ("no_reply_needed", "spam_or_scam", "abusive")


async def needed(store: AsyncStore) -> bool:
    return (await store.summaries.coll.estimated_document_count() == 0
            and await store.messages.coll.estimated_document_count() > 0)


async def backfill(store: AsyncStore) -> int:
    """Summaries for every stored conversation that has none; returns how many were made."""
    if not await needed(store):
        return 0
    newest: dict[tuple[str, str], int] = {}
    async for d in store.messages.coll.find({}, {"account_id": 1, "conversation_id": 1, "seq": 1}):
        k = (d["account_id"], d["conversation_id"])
        newest[k] = max(newest.get(k, 0), d.get("seq", 0))
    made = 0
    for (account_id, conversation_id) in newest:
        try:
            await store.summaries.coll.insert_one(await summary(store, account_id, conversation_id))
            made += 1
        except DuplicateKeyError:
            pass              # the live write path made it meanwhile: it is newer
    log.info("conversation summaries backfilled", extra={"summaries": made})
    return made


async def summary(store: AsyncStore, account_id: str, conversation_id: str) -> dict[str, Any]:
    docs = await store.messages.coll.find({"account_id": account_id, "conversation_id": conversation_id}
                                          ).sort("seq", -1).limit(20).to_list()
    last = docs[0]
    contact = next((d.get("sender") for d in docs if d.get("direction", "in") == "in"), None)
    seq = last.get("seq", 0)
    state, reason, draft_id = "new", None, None
    draft = await store.drafts.latest_for_conversation(account_id, conversation_id)
    known = await store.conversations.get(account_id, conversation_id)
    if last.get("direction") == "out":
        state = "answered"
    elif draft is not None and ((draft.get("answers_seq") or 0) >= seq or draft.get("last_message_id") == last["_id"]
                                or last["_id"] in (draft.get("message_ids") or [])):
        state = _DRAFT_STATES.get(draft.get("status"), "new")
        draft_id = draft["_id"]
        reason = draft.get("reject_reason") if state == "rejected" else None
    elif known and known.get("last_message_id") == last["_id"] and known.get("classification") in NO_REPLY:
        state = known["classification"]
    else:
        dead = await store.dead_letters.coll.find_one({"subject": last["_id"], "consumer": "ai"})
        if dead is not None:
            state, reason = "ai_failed", dead.get("reason")
    return {"_id": store.summaries.key(account_id, conversation_id), "account_id": account_id,
            "conversation_id": conversation_id, "contact": contact, "state": state, "reason": reason,
            "draft_id": draft_id, "last_seq": seq, "last_text": (last.get("text") or "")[:EXCERPT],
            "last_sender": last.get("sender"), "last_direction": last.get("direction", "in"),
            "last_sent_at": last.get("sent_at"), "last_at": _at(last.get("sent_at"), last.get("seen_at") or utcnow()),
            "unread": 0, "words": index_words(contact, last.get("text")), "updated_at": utcnow()}
