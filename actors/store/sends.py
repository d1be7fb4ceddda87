"""Replies actually posted on the site, keyed by the send's idempotency key: one per draft."""
from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from actors.store.inserts import insert_new
from contracts.events import utcnow


class Sends:
    def __init__(self, db: AsyncDatabase):
        self.coll = db["sends"]

    async def ensure_indexes(self) -> None:
        await self.coll.create_index([("account_id", ASCENDING), ("conversation_id", ASCENDING),
                                ("sent_at", DESCENDING)], name="conversation_sends")

    async def record(self, *, idempotency_key: str, draft_id: str, account_id: str, conversation_id: str,
               site_message_id: str | None, text: str) -> bool:
        """Record a confirmed send; False if it was recorded before (a redelivery)."""
        doc = {"_id": idempotency_key, "draft_id": draft_id, "account_id": account_id,
               "conversation_id": conversation_id, "site_message_id": site_message_id,
               "text": text, "sent_at": utcnow()}
        return bool(await insert_new(self.coll, [doc]))

    async def get(self, idempotency_key: str) -> dict[str, Any] | None:
        return await self.coll.find_one({"_id": idempotency_key})

    async def count(self, query: dict | None = None) -> int:
        return await self.coll.count_documents(query or {})
