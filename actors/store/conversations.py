"""Per-conversation state the AI decides: its latest classification, for which message, and the
draft it led to (if any). Keyed by account and conversation; also what makes a redelivered
`message.seen` for an already classified conversation cost no second AI call."""
from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, WriteConcern
from pymongo.database import Database

from contracts.events import utcnow


class Conversations:
    def __init__(self, db: Database):
        # Derived state (the drafts and outbox rows are the journaled truth; losing this only
        # costs one repeated AI call), so it need not wait for the journal on the hot path.
        self.coll = db.get_collection("conversations", write_concern=WriteConcern(w=1))

    def ensure_indexes(self) -> None:
        self.coll.create_index([("account_id", ASCENDING), ("classification", ASCENDING),
                                ("classified_at", DESCENDING)], name="account_classification")

    @staticmethod
    def key(account_id: str, conversation_id: str) -> str:
        return f"{account_id}:{conversation_id}"

    def record_classification(self, *, account_id: str, conversation_id: str, last_message_id: str,
                              classification: str, draft_id: str | None, seq: int | None = None) -> None:
        self.coll.update_one(
            {"_id": self.key(account_id, conversation_id)},
            {"$set": {"account_id": account_id, "conversation_id": conversation_id,
                      "last_message_id": last_message_id, "classification": classification,
                      "draft_id": draft_id, "classified_at": utcnow(),
                      **({"seq": seq} if seq is not None else {})}},
            upsert=True)

    def get(self, account_id: str, conversation_id: str) -> dict[str, Any] | None:
        return self.coll.find_one({"_id": self.key(account_id, conversation_id)})
