"""Which row ids are confirmed present in the sheet: the writer's guard against duplicates."""
from __future__ import annotations

from typing import Any, AsyncIterator

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from actors.store.inserts import insert_new
from contracts.events import utcnow


class SheetRows:
    def __init__(self, db: AsyncDatabase):
        self.coll = db["sheet_rows"]

    async def ensure_indexes(self) -> None:  # _id is the row id
        return None

    async def present(self, row_ids: list[str]) -> set[str]:
        if not row_ids:
            return set()
        return {d["_id"] async for d in self.coll.find({"_id": {"$in": row_ids}}, {"_id": 1})}

    async def pages(self, source: AsyncCollection, page: int = 1000) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of `source` documents in _id order, by _id range (no skip, so on MongoDB a page
        costs the same however deep it is). Callers filter in Python: a filter on another field
        would make the query planner give up the _id index."""
        after: Any = None
        while True:
            docs = await (source.find({"_id": {"$gt": after}} if after is not None else {})
                          .sort("_id", ASCENDING).limit(page).to_list())
            if not docs:
                return
            after = docs[-1]["_id"]
            yield docs

    async def mark(self, row_ids: list[str]) -> None:
        now = utcnow()
        await insert_new(self.coll, [{"_id": r, "at": now} for r in row_ids])

    async def count(self) -> int:
        return await self.coll.count_documents({})
