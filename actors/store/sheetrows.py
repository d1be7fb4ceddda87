"""Which row ids are confirmed present in the sheet: the writer's guard against duplicates."""
from __future__ import annotations

from typing import Any, Iterator

from pymongo import ASCENDING
from pymongo.collection import Collection
from pymongo.database import Database

from actors.store.messages import insert_new
from contracts.events import utcnow


class SheetRows:
    def __init__(self, db: Database):
        self.coll = db["sheet_rows"]

    def ensure_indexes(self) -> None:  # _id is the row id
        return None

    def present(self, row_ids: list[str]) -> set[str]:
        if not row_ids:
            return set()
        return {d["_id"] for d in self.coll.find({"_id": {"$in": row_ids}}, {"_id": 1})}

    def pages(self, source: Collection, page: int = 1000) -> Iterator[list[dict[str, Any]]]:
        """Pages of `source` documents in _id order, by _id range (no skip, so on MongoDB a page
        costs the same however deep it is). Callers filter in Python: a filter on another field
        would make the query planner give up the _id index."""
        after: Any = None
        while True:
            docs = list(source.find({"_id": {"$gt": after}} if after is not None else {})
                        .sort("_id", ASCENDING).limit(page))
            if not docs:
                return
            after = docs[-1]["_id"]
            yield docs

    def mark(self, row_ids: list[str]) -> None:
        now = utcnow()
        insert_new(self.coll, [{"_id": r, "at": now} for r in row_ids])

    def count(self) -> int:
        return self.coll.count_documents({})
