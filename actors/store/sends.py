"""Replies actually posted on the site, keyed by the send's idempotency key: one per draft."""
from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database

from actors.store.messages import insert_new
from contracts.events import utcnow


class Sends:
    def __init__(self, db: Database):
        self.coll = db["sends"]

    def ensure_indexes(self) -> None:
        self.coll.create_index([("account_id", ASCENDING), ("conversation_id", ASCENDING),
                                ("sent_at", DESCENDING)], name="conversation_sends")

    def record(self, *, idempotency_key: str, draft_id: str, account_id: str, conversation_id: str,
               site_message_id: str | None, text: str) -> bool:
        """Record a confirmed send; False if it was recorded before (a redelivery)."""
        doc = {"_id": idempotency_key, "draft_id": draft_id, "account_id": account_id,
               "conversation_id": conversation_id, "site_message_id": site_message_id,
               "text": text, "sent_at": utcnow()}
        return bool(insert_new(self.coll, [doc]))

    def get(self, idempotency_key: str) -> dict[str, Any] | None:
        return self.coll.find_one({"_id": idempotency_key})

    def count(self, query: dict | None = None) -> int:
        return self.coll.count_documents(query or {})
