"""insert_many(ordered=False) where a duplicate _id is skipped, not an error: how every
repository stores documents keyed by their idempotency key. `insert_new` for the repositories
(AsyncMongoClient); `insert_new_sync` for raw use of the synchronous `Store.db` (backup restore,
benchmarks)."""
from __future__ import annotations

from pymongo.errors import BulkWriteError


def _inserted(docs: list[dict], exc: BulkWriteError) -> set[str]:
    errors = exc.details.get("writeErrors", [])
    if exc.details.get("writeConcernErrors") or any(e.get("code") != 11000 for e in errors):
        raise exc  # not durable, or a real failure: the caller must not treat these as stored
    dup = {docs[e["index"]]["_id"] for e in errors}
    return {d["_id"] for d in docs} - dup


async def insert_new(coll, docs: list[dict]) -> set[str]:
    """Insert the documents whose _id is new; returns the _ids inserted."""
    if not docs:
        return set()
    try:
        await coll.insert_many(docs, ordered=False)
        return {d["_id"] for d in docs}
    except BulkWriteError as exc:
        return _inserted(docs, exc)


def insert_new_sync(coll, docs: list[dict]) -> set[str]:
    """`insert_new` on a synchronous pymongo collection."""
    if not docs:
        return set()
    try:
        coll.insert_many(docs, ordered=False)
        return {d["_id"] for d in docs}
    except BulkWriteError as exc:
        return _inserted(docs, exc)
