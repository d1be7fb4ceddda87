"""Processed-event keys: (consumer, event id) is unique, so a redelivered event is recognised."""
from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from actors.store.inserts import insert_new
from contracts.events import utcnow


class Processed:
    def __init__(self, db: AsyncDatabase):
        self.coll = db["processed_events"]

    async def ensure_indexes(self) -> None:  # _id is the unique key
        return None

    async def seen(self, consumer: str, event_id: str) -> bool:
        return await self.coll.find_one({"_id": f"{consumer}|{event_id}"}, {"_id": 1}) is not None

    async def mark(self, consumer: str, event_id: str) -> bool:
        """Record the event as processed by `consumer`; False if it already was."""
        try:
            await self.coll.insert_one({"_id": f"{consumer}|{event_id}", "at": utcnow()})
            return True
        except DuplicateKeyError:
            return False

    async def seen_many(self, consumer: str, event_ids: list[str]) -> set[str]:
        """The ids among `event_ids` already processed by `consumer` (one query per batch)."""
        if not event_ids:
            return set()
        prefix = f"{consumer}|"
        docs = self.coll.find({"_id": {"$in": [prefix + e for e in event_ids]}}, {"_id": 1})
        return {d["_id"][len(prefix):] async for d in docs}

    async def mark_many(self, consumer: str, event_ids: list[str]) -> set[str]:
        """Record a batch as processed in one write; returns the ids that were not marked before."""
        prefix = f"{consumer}|"
        now = utcnow()
        new = await insert_new(self.coll, [{"_id": prefix + e, "at": now} for e in event_ids])
        return {i[len(prefix):] for i in new}
