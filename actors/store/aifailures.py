"""Conversations the AI could not draft, handed to a person: one record per conversation with
the reason (an answer still invalid or truncated after its corrective retry, a conversation that
cannot be made to fit the model's context), what it was about and when. The review desk reads
these to show "AI failed: <reason>" where a draft would be; a later draft of the conversation
clears it. The conversation's summary shows it (`ai_failed`, see summaries.py). The event itself
is also dead-lettered as before (the bus's record for ops/replay).

    store.ai_failures.record(account, conversation, reason, last_message_id=..., seq=...)
    store.ai_failures.get(account, conversation)   # {"reason", "kind", "at", "count", ...} | None
    store.ai_failures.clear(account, conversation, upto_seq=seq)
    store.ai_failures.list(account_ids=[...], limit=50)   # newest first
"""
from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, WriteConcern
from pymongo.asynchronous.database import AsyncDatabase

from actors.store.summaries import Summaries
from contracts.events import utcnow

COLLECTION = "ai_failures"
KINDS = ("invalid_answer", "context", "other")


class AIFailures:
    def __init__(self, db: AsyncDatabase):
        # what a person must look at: journaled like the drafts it stands in for
        self.coll = db.get_collection(COLLECTION, write_concern=WriteConcern(w=1, j=True))
        self._fast = self.coll.with_options(write_concern=WriteConcern(w=1))
        self.summaries = Summaries(db)

    async def ensure_indexes(self) -> None:
        await self.coll.create_index([("account_id", ASCENDING), ("at", DESCENDING)], name="account_at")
        await self.coll.create_index([("at", DESCENDING)], name="at")

    @staticmethod
    def key(account_id: str, conversation_id: str) -> str:
        return f"{account_id}:{conversation_id}"

    async def record(self, account_id: str, conversation_id: str, reason: str, *,
               kind: str = "invalid_answer", last_message_id: str | None = None,
               seq: int | None = None, message_ids: list[str] | None = None,
               model: str | None = None, attempts: int | None = None) -> None:
        """Upsert the conversation's failure (idempotent; `count` says how many times it failed,
        `first_at` when first). `reason` is shown to reviewers: it never quotes chat text."""
        if kind not in KINDS:
            raise ValueError(f"ai failure kind {kind!r}: must be one of {', '.join(KINDS)}")
        now = utcnow()
        await self.coll.update_one({"_id": self.key(account_id, conversation_id)}, {
            "$set": {"account_id": account_id, "conversation_id": conversation_id,
                     "reason": reason[:500], "kind": kind, "last_message_id": last_message_id,
                     "seq": seq, "message_ids": message_ids or [], "model": model,
                     "attempts": attempts, "at": now},
            "$setOnInsert": {"first_at": now}, "$inc": {"count": 1}}, upsert=True)
        await self.summaries.on_ai_failed(account_id, conversation_id, reason, seq)

    async def get(self, account_id: str, conversation_id: str) -> dict[str, Any] | None:
        return await self.coll.find_one({"_id": self.key(account_id, conversation_id)})

    async def clear(self, account_id: str, conversation_id: str, upto_seq: int | None = None) -> bool:
        """Forget the conversation's failure (a draft or a classification now answers it). With
        `upto_seq`, only a failure about messages up to that sequence number: a failure about a
        newer message stays."""
        query: dict[str, Any] = {"_id": self.key(account_id, conversation_id)}
        if upto_seq is not None:
            query["$or"] = [{"seq": None}, {"seq": {"$lte": upto_seq}}]
        # on every draft's path: not journaled (a clear lost in a crash shows a stale failure
        # beside the draft that answers it, until the next draft clears it)
        return (await self._fast.delete_one(query)).deleted_count == 1

    async def list(self, account_ids: list[str] | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first; `account_ids` limits them to those accounts (a reviewer's)."""
        query = {"account_id": {"$in": account_ids}} if account_ids is not None else {}
        return await self.coll.find(query).sort("at", DESCENDING).limit(limit).to_list()

    async def count(self, query: dict[str, Any] | None = None) -> int:
        return await self.coll.count_documents(query or {})
