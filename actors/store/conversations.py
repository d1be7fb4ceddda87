"""Per-conversation state the AI decides: its latest classification, for which message, and the
draft it led to (if any). Keyed by account and conversation; also what makes a redelivered
`message.seen` for an already classified conversation cost no second AI call."""
from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument, WriteConcern
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

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
                              classification: str, draft_id: str | None,
                              seq: int) -> tuple[bool, dict[str, Any] | None]:
        """Record what the AI decided from the history up to message `seq`, unless a decision
        from a newer history is recorded already (two workers racing on one conversation).
        Returns (recorded, the state before: None for the first decision; when not recorded,
        the newer decision). One round trip: this is also how a new draft learns which draft it
        supersedes, or that it is out of date itself."""
        key = self.key(account_id, conversation_id)
        update = {"$set": {"account_id": account_id, "conversation_id": conversation_id,
                           "last_message_id": last_message_id, "classification": classification,
                           "draft_id": draft_id, "classified_at": utcnow(), "seq": seq}}
        try:
            return True, self.coll.find_one_and_update(
                {"_id": key, "seq": {"$lte": seq}}, update, upsert=True,
                return_document=ReturnDocument.BEFORE)
        except DuplicateKeyError:   # the state exists and did not match: a newer seq, or none
            before = self.coll.find_one({"_id": key})
            if before is not None and (before.get("seq") or 0) > seq:
                return False, before
            # recorded before states knew their seq (or removed meanwhile): ours is the newest
            return True, self.coll.find_one_and_update({"_id": key}, update, upsert=True,
                                                       return_document=ReturnDocument.BEFORE)

    def get(self, account_id: str, conversation_id: str) -> dict[str, Any] | None:
        return self.coll.find_one({"_id": self.key(account_id, conversation_id)})
