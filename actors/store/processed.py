"""Processed-event keys: (consumer, event id) is unique, so a redelivered event is recognised."""
from __future__ import annotations

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from contracts.events import utcnow


class Processed:
    def __init__(self, db: Database):
        self.coll = db["processed_events"]

    def ensure_indexes(self) -> None:  # _id is the unique key
        return None

    def seen(self, consumer: str, event_id: str) -> bool:
        return self.coll.find_one({"_id": f"{consumer}|{event_id}"}, {"_id": 1}) is not None

    def mark(self, consumer: str, event_id: str) -> bool:
        """Record the event as processed by `consumer`; False if it already was."""
        try:
            self.coll.insert_one({"_id": f"{consumer}|{event_id}", "at": utcnow()})
            return True
        except DuplicateKeyError:
            return False
