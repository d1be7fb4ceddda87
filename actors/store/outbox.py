"""Transactional outbox: an event is written here in the step that makes its effect durable, and a
relay publishes it to the broker (with confirms) and marks it published. A crash anywhere in
between republishes at worst; consumers deduplicate by event id."""
from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.database import Database

from actors.store.messages import insert_new
from contracts.events import dump_event, utcnow


class Outbox:
    def __init__(self, db: Database):
        self.coll = db["outbox"]

    def ensure_indexes(self) -> None:
        self.coll.create_index([("published", ASCENDING), ("created_at", ASCENDING)], name="pending")

    def add(self, events: list[Any], carrier: dict[str, str] | None = None) -> int:
        """Queue events (idempotent on event_id); returns how many were new."""
        now = utcnow()
        docs = [{"_id": e.event_id, "routing_key": e.type, "body": dump_event(e).decode("utf-8"),
                 "headers": dict(carrier or {}), "created_at": now, "published": False}
                for e in events]
        return len(insert_new(self.coll, docs))

    def pending(self, limit: int = 500) -> list[dict[str, Any]]:
        return list(self.coll.find({"published": False}).sort("created_at", ASCENDING).limit(limit))

    def mark_published(self, ids: list[str]) -> None:
        if ids:
            self.coll.update_many({"_id": {"$in": ids}},
                                  {"$set": {"published": True, "published_at": utcnow()}})
