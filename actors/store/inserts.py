"""insert_many(ordered=False) where a duplicate _id is skipped, not an error: how every
repository stores documents keyed by their idempotency key (synchronous callers run it inline,
actors/store/inline.py)."""
from __future__ import annotations

from pymongo.errors import BulkWriteError


async def insert_new(coll, docs: list[dict]) -> set[str]:
    """Insert the documents whose _id is new; returns the _ids inserted."""
    if not docs:
        return set()
    try:
        await coll.insert_many(docs, ordered=False)
        return {d["_id"] for d in docs}
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if exc.details.get("writeConcernErrors") or any(e.get("code") != 11000 for e in errors):
            raise  # not durable, or a real failure: the caller must not treat these as stored
        dup = {docs[e["index"]]["_id"] for e in errors}
        return {d["_id"] for d in docs} - dup
