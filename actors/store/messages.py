"""Messages, keyed by their stable message id: inserting one twice is a no-op."""
from __future__ import annotations

from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from contracts.events import ChatMessage


def insert_new(coll, docs: list[dict]) -> set[str]:
    """insert_many(ordered=False) where duplicate _ids are skipped; returns the _ids inserted."""
    if not docs:
        return set()
    try:
        coll.insert_many(docs, ordered=False)
        return {d["_id"] for d in docs}
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if exc.details.get("writeConcernErrors") or any(e.get("code") != 11000 for e in errors):
            raise  # not durable, or a real failure: the caller must not treat these as stored
        dup = {docs[e["index"]]["_id"] for e in errors}
        return {d["_id"] for d in docs} - dup


class Messages:
    def __init__(self, db: Database):
        self.coll = db["messages"]

    def ensure_indexes(self) -> None:
        self.coll.create_index([("account_id", ASCENDING), ("conversation_id", ASCENDING),
                                ("seq", ASCENDING)], name="conversation_order")

    def insert(self, messages: list[ChatMessage]) -> list[ChatMessage]:
        """Store messages; return only those not stored before (in the given order)."""
        docs = []
        for m in messages:
            d = m.model_dump(mode="json")
            d["_id"] = m.message_id
            d["seq"] = m.seen_at.timestamp()
            docs.append(d)
        new = insert_new(self.coll, docs)
        return [m for m in messages if m.message_id in new]

    def get(self, message_id: str) -> ChatMessage | None:
        d = self.coll.find_one({"_id": message_id})
        return _to_model(d) if d else None

    def conversation(self, account_id: str, conversation_id: str, limit: int = 50) -> list[ChatMessage]:
        """The newest `limit` messages of a conversation, oldest first."""
        docs = list(self.coll.find({"account_id": account_id, "conversation_id": conversation_id})
                    .sort("seq", DESCENDING).limit(limit))
        return [_to_model(d) for d in reversed(docs)]

    def count(self, query: dict | None = None) -> int:
        return self.coll.count_documents(query or {})

    def unemitted(self, message_ids: list[str]) -> set[str]:
        """Which of these stored messages have not been flagged emitted yet (a producer that
        crashed between storing a message and queueing its event finds them here)."""
        if not message_ids:
            return set()
        return {d["_id"] for d in self.coll.find({"_id": {"$in": message_ids},
                                                  "emitted": {"$ne": True}}, {"_id": 1})}

    def mark_emitted(self, message_ids: list[str]) -> None:
        if message_ids:
            self.coll.update_many({"_id": {"$in": message_ids}}, {"$set": {"emitted": True}})


def _to_model(d: dict) -> ChatMessage:
    d = dict(d)
    d.pop("_id", None)
    d.pop("seq", None)
    d.pop("emitted", None)
    return ChatMessage.model_validate(d)
