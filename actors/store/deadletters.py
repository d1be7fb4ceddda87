"""A record of every event given up on (its dead letter), by consumer and event id: what the
reconciler reads to tell "decided: dead-lettered" from "lost", and what ops count by reason.
The dead queue in RabbitMQ stays the place to read and replay the events themselves."""
from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, WriteConcern
from pymongo.database import Database

from contracts.events import utcnow


class DeadLetters:
    def __init__(self, db: Database):
        # a record lost in a crash only means the reconciler looks at that message again
        self.coll = db.get_collection("dead_letters", write_concern=WriteConcern(w=1))

    def ensure_indexes(self) -> None:
        self.coll.create_index([("subject", ASCENDING)], name="subject")

    def record(self, consumer: str, event_id: str, reason: str, *, routing_key: str | None = None,
               subject: str | None = None) -> None:
        """Idempotent per (consumer, event id); `subject` is what it was about (a message id)."""
        self.coll.update_one({"_id": f"{consumer}:{event_id}"}, {
            "$set": {"consumer": consumer, "event_id": event_id, "reason": reason,
                     "routing_key": routing_key, "subject": subject or _subject(event_id)},
            "$setOnInsert": {"at": utcnow()}}, upsert=True)

    def about(self, subjects: list[str], consumer: str) -> set[str]:
        """Which of these subjects (message ids) `consumer` dead-lettered."""
        if not subjects:
            return set()
        return {d["subject"] for d in self.coll.find({"subject": {"$in": subjects}, "consumer": consumer},
                                                     {"subject": 1})}

    def by_reason(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for d in self.coll.find({}, {"reason": 1, "consumer": 1}):
            key = f"{d.get('consumer')}: {str(d.get('reason'))[:120]}"
            out[key] = out.get(key, 0) + 1
        return out

    def count(self, query: dict[str, Any] | None = None) -> int:
        return self.coll.count_documents(query or {})


def _subject(event_id: str) -> str:
    """`message.seen:<message id>` -> the message id (other events: the event id itself)."""
    kind, _, rest = event_id.partition(":")
    return rest if kind == "message.seen" and rest else event_id
