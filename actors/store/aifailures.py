"""AI failures per conversation: why the AI could not draft it (an answer truncated or invalid
after one retry, a context too long, ...). One record per conversation, replaced by the next
failure and cleared when a draft is made; the conversation's summary shows it (`ai_failed`)."""
from __future__ import annotations

from typing import Any

from pymongo import WriteConcern
from pymongo.database import Database

from actors.store.summaries import Summaries
from contracts.events import utcnow


class AIFailures:
    def __init__(self, db: Database):
        self.coll = db.get_collection("ai_failures", write_concern=WriteConcern(w=1))
        self.summaries = Summaries(db)

    def ensure_indexes(self) -> None:
        pass            # read by _id (account:conversation) only

    @staticmethod
    def key(account_id: str, conversation_id: str) -> str:
        return f"{account_id}:{conversation_id}"

    def record(self, account_id: str, conversation_id: str, reason: str, *, seq: int | None = None,
               **details: Any) -> None:
        self.coll.update_one({"_id": self.key(account_id, conversation_id)}, {
            "$set": {"account_id": account_id, "conversation_id": conversation_id,
                     "reason": reason[:2000], "seq": seq, "at": utcnow(), **details},
            "$inc": {"count": 1}}, upsert=True)
        self.summaries.on_ai_failed(account_id, conversation_id, reason, seq)

    def get(self, account_id: str, conversation_id: str) -> dict[str, Any] | None:
        return self.coll.find_one({"_id": self.key(account_id, conversation_id)})

    def clear(self, account_id: str, conversation_id: str) -> None:
        self.coll.delete_one({"_id": self.key(account_id, conversation_id)})
