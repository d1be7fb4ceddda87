"""A record of every event given up on (its dead letter), by consumer and event id: what the
reconciler reads to tell "decided: dead-lettered" from "lost", and what ops count by reason.
The dead queue in RabbitMQ stays the place to read and replay the events themselves."""
from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, WriteConcern
from pymongo.asynchronous.database import AsyncDatabase

from actors.store.summaries import Summaries
from contracts.events import utcnow


class DeadLetters:
    def __init__(self, db: AsyncDatabase):
        # a record lost in a crash only means the reconciler looks at that message again
        self.coll = db.get_collection("dead_letters", write_concern=WriteConcern(w=1))
        self.messages = db["messages"]
        self.drafts = db["drafts"]
        self.summaries = Summaries(db)

    async def ensure_indexes(self) -> None:
        await self.coll.create_index([("subject", ASCENDING)], name="subject")
        await self.coll.create_index([("at", DESCENDING)], name="at")
        await self.coll.create_index([("account_id", ASCENDING), ("conversation_id", ASCENDING)],
                               name="conversation")

    async def record(self, consumer: str, event_id: str, reason: str, *, routing_key: str | None = None,
               subject: str | None = None) -> None:
        """Idempotent per (consumer, event id); `subject` is what it was about (a message id).
        The conversation it was about is recorded too (the desk lists them by conversation), and
        an AI dead letter marks the conversation's summary `ai_failed` with the reason."""
        subject = subject or _subject(event_id)
        message = await self.messages.find_one({"_id": subject}, {"account_id": 1, "conversation_id": 1, "seq": 1})
        about = message or await self._draft_of(event_id)
        where = ({"account_id": about["account_id"], "conversation_id": about["conversation_id"]}
                 if about else {})
        await self.coll.update_one({"_id": f"{consumer}:{event_id}"}, {
            "$set": {"consumer": consumer, "event_id": event_id, "reason": reason,
                     "routing_key": routing_key, "subject": subject, **where},
            "$setOnInsert": {"at": utcnow()}}, upsert=True)
        if consumer == "ai" and message is not None:
            await self.summaries.on_ai_failed(message["account_id"], message["conversation_id"],
                                        reason, message.get("seq"))

    async def _draft_of(self, event_id: str) -> dict[str, Any] | None:
        """The draft an event about a draft names (`draft.approved:<draft id>`, `reply.sent:...`)."""
        kind, _, rest = event_id.partition(":")
        if kind not in _DRAFT_EVENTS or not rest:
            return None
        return await self.drafts.find_one({"_id": rest}, {"account_id": 1, "conversation_id": 1})

    async def recent(self, limit: int = 100, consumer: str | None = None) -> list[dict[str, Any]]:
        """The newest dead letters (of one consumer, if given), newest first."""
        q: dict[str, Any] = {} if consumer is None else {"consumer": consumer}
        return await self.coll.find(q).sort("at", DESCENDING).limit(limit).to_list()

    async def of_conversation(self, account_id: str, conversation_id: str, limit: int = 20) -> list[dict[str, Any]]:
        docs = await self.coll.find({"account_id": account_id, "conversation_id": conversation_id}).limit(limit).to_list()
        return sorted(docs, key=lambda d: d.get("at") or utcnow(), reverse=True)

    async def get(self, record_id: str) -> dict[str, Any] | None:
        return await self.coll.find_one({"_id": record_id})

    async def about(self, subjects: list[str], consumer: str) -> set[str]:
        """Which of these subjects (message ids) `consumer` dead-lettered."""
        if not subjects:
            return set()
        return {d["subject"] async for d in self.coll.find({"subject": {"$in": subjects}, "consumer": consumer},
                                                     {"subject": 1})}

    async def by_reason(self) -> dict[str, int]:
        out: dict[str, int] = {}
        async for d in self.coll.find({}, {"reason": 1, "consumer": 1}):
            key = f"{d.get('consumer')}: {str(d.get('reason'))[:120]}"
            out[key] = out.get(key, 0) + 1
        return out

    async def count(self, query: dict[str, Any] | None = None) -> int:
        return await self.coll.count_documents(query or {})


_DRAFT_EVENTS = ("draft.created", "draft.approved", "draft.rejected", "reply.sent", "conversation.classified")


def _subject(event_id: str) -> str:
    """`message.seen:<message id>` -> the message id; `draft.requested:<message id>|<request>`
    -> the message id; other events: the event id itself."""
    kind, _, rest = event_id.partition(":")
    if kind == "draft.requested" and "|" in rest:
        return rest.split("|", 1)[0]
    return rest if kind == "message.seen" and rest else event_id
