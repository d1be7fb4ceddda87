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

    def pages(self, source: Collection, query: dict[str, Any] | None = None,
              page: int = 1000) -> Iterator[list[dict[str, Any]]]:
        """Pages of `source` documents matching `query`, in _id order by range (no skip), so a
        walk stays fast on large collections."""
        after: Any = None
        while True:
            where = {**(query or {}), **({"_id": {"$gt": after}} if after is not None else {})}
            docs = list(source.find(where).sort("_id", ASCENDING).limit(page))
            if not docs:
                return
            after = docs[-1]["_id"]
            yield docs

    def missing(self, source: Collection, page: int = 1000) -> Iterator[list[dict[str, Any]]]:
        """Pages of `source` documents whose _id is not marked present."""
        for docs in self.pages(source, page=page):
            done = self.present([d["_id"] for d in docs])
            todo = [d for d in docs if d["_id"] not in done]
            if todo:
                yield todo

    def mark(self, row_ids: list[str]) -> None:
        now = utcnow()
        insert_new(self.coll, [{"_id": r, "at": now} for r in row_ids])

    def count(self) -> int:
        return self.coll.count_documents({})
