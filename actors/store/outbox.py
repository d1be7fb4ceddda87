"""Transactional outbox: an event is written here in the step that makes its effect durable, and a
relay publishes it to the broker (with confirms). A crash anywhere in between republishes at
worst; consumers deduplicate by event id.

Rows are never updated: on SecantusDB every update or delete of an existing row costs about a
millisecond, while reading the collection's change stream costs ~20 us per row. So the relay
reads new rows from the change stream (commit order, no holes) and, once a batch is confirmed,
saves ONE position document: the stream's resume token plus the newest `created_at` it
confirmed (the horizon). A restarted relay resumes after the token. When the token cannot be
resumed (none saved yet, or its oplog history pruned: `--oplog-retention-seconds` /
`--oplog-max-entries`), it opens a fresh stream and first scans rows created since
`horizon - rescan` (all rows when there is no horizon); rows committed more than `rescan` after
their `created_at` stamp would be missed by that scan, far beyond any write timeout.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, AsyncIterator, Mapping

from pymongo import ASCENDING, WriteConcern
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from actors.store.inserts import insert_new
from contracts.events import dump_event, utcnow

log = logging.getLogger("replydesk.store.outbox")

# ChangeStreamHistoryLost, ChangeStreamFatalError, InvalidResumeToken, CappedPositionLost: the
# saved token cannot be resumed, so the reader falls back to a scan.
POSITION_LOST_CODES = frozenset({286, 280, 260, 136})
RESCAN = timedelta(minutes=10)
STREAM_AWAIT_MS = 2          # a getMore with nothing new returns after this; idle waits are the relay's
RELAY_POSITION_ID = "relay"


@dataclass(frozen=True)
class Position:
    """How far the relay has confirmed: resume `token` (commit order) and newest `horizon` stamp."""
    token: Mapping[str, Any] | None
    horizon: datetime | None


class Outbox:
    def __init__(self, db: AsyncDatabase):
        self.coll = db["outbox"]
        # A position lost in a crash only means replaying from an older one (duplicates, which
        # consumers drop), so it is saved without waiting for the journal.
        self.positions = db.get_collection("outbox_relay", write_concern=WriteConcern(w=1))

    async def ensure_indexes(self) -> None:
        await self.coll.create_index([("created_at", ASCENDING)], name="created")
        if "pending" in await self.coll.index_information():  # (published, created_at) of the old relay
            await self.coll.drop_index("pending")

    async def add(self, events: list[Any], carrier: dict[str, str] | None = None) -> int:
        """Queue events (idempotent on event_id); returns how many were new."""
        now = utcnow()
        docs = [{"_id": e.event_id, "routing_key": e.type, "body": dump_event(e).decode("utf-8"),
                 "headers": dict(carrier or {}), "created_at": now, "schema_version": e.schema_version}
                for e in events]
        return len(await insert_new(self.coll, docs))

    async def existing(self, event_ids: list[str]) -> set[str]:
        """Which of these event ids were ever queued."""
        if not event_ids:
            return set()
        return {d["_id"] async for d in self.coll.find({"_id": {"$in": event_ids}}, {"_id": 1})}

    # ------------------------------------------------------------------ relay position
    async def position(self) -> Position | None:
        doc = await self.positions.find_one({"_id": RELAY_POSITION_ID})
        return None if doc is None else Position(doc.get("token"), doc.get("horizon"))

    async def save_position(self, position: Position) -> None:
        await self.positions.update_one({"_id": RELAY_POSITION_ID}, {"$set": {
            "token": position.token, "horizon": position.horizon, "saved_at": utcnow()}}, upsert=True)

    # ------------------------------------------------------------------ reading
    async def watch(self, after: Mapping[str, Any] | None, batch_size: int):
        """Inserts into the outbox in commit order, after resume token `after` (None: from now):
        an AsyncChangeStream (`await stream.try_next()`, `stream.resume_token`)."""
        return await self.coll.watch([{"$match": {"operationType": "insert"}}], resume_after=after,
                               batch_size=batch_size, max_await_time_ms=STREAM_AWAIT_MS)

    def created_since(self, horizon: datetime | None, batch_size: int):
        """Rows stamped at or after `horizon` (every row when None), oldest first."""
        query = {} if horizon is None else {"created_at": {"$gte": horizon}}
        return self.coll.find(query, batch_size=batch_size).sort("created_at", ASCENDING)

    async def reader(self, rescan: timedelta = RESCAN, batch_size: int = 500) -> "OutboxReader":
        """A reader of the rows after the saved relay position (opened: its stream is open)."""
        reader = OutboxReader(self, await self.position(), rescan, batch_size)
        await reader.open()
        return reader

    async def pending(self, limit: int = 500) -> list[dict[str, Any]]:
        """Rows the relay has not confirmed yet (after a lost position: the rows it would replay)."""
        async with await self.reader() as reader:
            return (await reader.read(limit))[0]

    async def count_pending(self) -> int:
        async with await self.reader() as reader:
            return sum([1 async for _ in reader.rows()])


class OutboxReader:
    """Outbox rows after a position, in batches, each with the position to save once confirmed.

    Opens the change stream BEFORE any fallback scan, so a row committed during the scan is read
    (perhaps twice: at-least-once) rather than missed. `Outbox.reader()` makes one and opens it.
    Not safe for concurrent use; close() when done."""

    def __init__(self, outbox: Outbox, position: Position | None, rescan: timedelta, batch_size: int):
        self._outbox, self._rescan, self._batch_size = outbox, rescan, batch_size
        self._token = position.token if position else None
        self._horizon = position.horizon if position else None
        self._scan: Any = None
        self._stream: Any = None

    async def open(self) -> None:
        if self._token is not None:
            try:
                self._stream = await self._outbox.watch(self._token, self._batch_size)
            except OperationFailure as exc:
                self._lost(exc)
        if self._stream is None:
            await self._fall_back()

    async def read(self, limit: int) -> tuple[list[dict[str, Any]], Position]:
        """Up to `limit` rows and the position that covers them (and everything before them)."""
        rows = await (self._read_scan(limit) if self._scan is not None else self._read_stream(limit))
        for row in rows:
            stamp = row.get("created_at")
            if stamp is not None and (self._horizon is None or stamp > self._horizon):
                self._horizon = stamp
        return rows, Position(self._token, self._horizon)

    async def rows(self) -> AsyncIterator[dict[str, Any]]:
        """Every row after the position that is already committed."""
        while True:
            batch, _ = await self.read(self._batch_size)
            if not batch:
                return
            for row in batch:
                yield row

    async def close(self) -> None:
        cursors, self._scan, self._stream = (self._scan, self._stream), None, None
        for cursor in cursors:
            if cursor is not None:
                await cursor.close()

    async def __aenter__(self) -> "OutboxReader":
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ internals
    async def _fall_back(self) -> None:
        await self.close()
        self._stream = await self._outbox.watch(None, self._batch_size)
        since = None if self._horizon is None else self._horizon - self._rescan
        self._scan = self._outbox.created_since(since, self._batch_size)

    def _lost(self, exc: OperationFailure) -> None:
        if exc.code not in POSITION_LOST_CODES:
            raise exc
        log.warning(
            "outbox relay position lost; rescanning recent rows", extra={
                "error": f"{exc.code}: {exc}", "horizon": str(self._horizon),
                "rescan_s": self._rescan.total_seconds()})

    async def _read_scan(self, limit: int) -> list[dict[str, Any]]:
        rows = await self._scan.to_list(limit)
        if len(rows) < limit:          # scan done: from here on the stream covers everything
            await self._scan.close()
            self._scan = None
            self._token = self._stream.resume_token
        return rows

    async def _read_stream(self, limit: int) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        try:
            while len(rows) < limit:
                change = await self._stream.try_next()
                if change is None:
                    break
                rows.append(change["fullDocument"])
                self._token = change["_id"]
        except OperationFailure as exc:
            self._lost(exc)
            await self._fall_back()
            return rows if rows else await self._read_scan(limit)
        if not rows and self._stream.resume_token is not None:
            self._token = self._stream.resume_token    # idle: the stream's position still moves on
        return rows
