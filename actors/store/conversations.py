"""Per-conversation state the AI decides: its latest classification, for which message, and the
draft it led to (if any). Keyed by account and conversation; also what makes a redelivered
`message.seen` for an already classified conversation cost no second AI call."""
from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING, WriteConcern
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from actors.store.summaries import Summaries
from contracts.events import utcnow


UNREAD = object()   # record_classification reads the state itself
_MAX_RACES = 100


class Conversations:
    def __init__(self, db: AsyncDatabase):
        # Derived state (the drafts and outbox rows are the journaled truth; losing this only
        # costs one repeated AI call), so it need not wait for the journal on the hot path.
        self.coll = db.get_collection("conversations", write_concern=WriteConcern(w=1))
        self.summaries = Summaries(db)

    async def ensure_indexes(self) -> None:
        await self.coll.create_index([("account_id", ASCENDING), ("classification", ASCENDING),
                                ("classified_at", DESCENDING)], name="account_classification")

    @staticmethod
    def key(account_id: str, conversation_id: str) -> str:
        return f"{account_id}:{conversation_id}"

    async def record_classification(self, *, account_id: str, conversation_id: str, last_message_id: str,
                              classification: str, draft_id: str | None, seq: int,
                              known: dict[str, Any] | None | object = UNREAD,
                              ) -> tuple[bool, dict[str, Any] | None]:
        """Record what the AI decided from the history up to message `seq`, unless a decision
        from a newer history is recorded already (two workers racing on one conversation).
        Returns (recorded, the state before: None for the first decision; when not recorded,
        the newer decision). This is also how a new draft learns which draft it supersedes, or
        that it is out of date itself.

        A compare-and-set on the state's revision, from `known` (the state the caller read
        before it asked the AI; read here when not given): one write when nobody raced, and
        one more read per lost race. Not a findAndModify: the MongoDB-wire server scans the
        whole collection for one (18 ms at 3,000 conversations, against 0.7 ms for this
        update), and a pool that doubles its drafts per second would wait on it."""
        key = self.key(account_id, conversation_id)
        fields = {"account_id": account_id, "conversation_id": conversation_id,
                  "last_message_id": last_message_id, "classification": classification,
                  "draft_id": draft_id, "classified_at": utcnow(), "seq": seq}
        before = await self.coll.find_one({"_id": key}) if known is UNREAD else known
        recorded = await self._record(key, fields, before, seq)
        if recorded[0] and draft_id is None:
            await self.summaries.on_classified(account_id, conversation_id, seq, classification)
        return recorded

    async def _record(self, key: str, fields: dict[str, Any], before: dict[str, Any] | None,
                seq: int) -> tuple[bool, dict[str, Any] | None]:
        for _ in range(_MAX_RACES):
            if before is None:
                try:
                    await self.coll.insert_one({"_id": key, **fields, "rev": 1})
                    return True, None
                except DuplicateKeyError:   # another decision was recorded first
                    pass
            elif (before.get("seq") or 0) > seq:   # no seq: recorded before states knew it
                return False, before
            elif (await self.coll.update_one({"_id": key, "rev": before.get("rev")},
                                             {"$set": fields, "$inc": {"rev": 1}})).matched_count:
                return True, before
            before = await self.coll.find_one({"_id": key})   # changed since read: decide again
        raise RuntimeError(f"conversation state {key!r} changed {_MAX_RACES} times while one "
                           f"decision was being recorded")

    async def get(self, account_id: str, conversation_id: str) -> dict[str, Any] | None:
        return await self.coll.find_one({"_id": self.key(account_id, conversation_id)})
