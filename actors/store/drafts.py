"""Drafts and their life cycle: the only code that writes a draft's status. Every move is checked
against the state machine (contracts.draftstate) and is one atomic find_one_and_update guarded on
the current status, so two approvals (or an approval racing a send) can never both win.

An approval may be held for `review.undo_s` (the draft carries `release_at`): until `release()`
takes it (a conditional update that removes `release_at`), `undo()` may put it back to pending,
and nothing may start sending it. Exactly one of the two wins.

Drafts belong to conversations: a draft answers the contact's messages up to `answers_seq` (the
conversation's sequence number of the newest message it was written from). A newer draft of the
conversation, or a newer classification, supersedes the pending one (kept, marked, shown in the
desk); approving or sending a draft older than the conversation is refused.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from actors.store.summaries import Summaries
from contracts.draftstate import SENDABLE, DraftStatus, check
from contracts.events import utcnow

PENDING = DraftStatus.PENDING
SUPERSEDED = DraftStatus.SUPERSEDED
__all__ = ["PENDING", "SENDABLE", "SUPERSEDED", "DraftStatus", "Drafts"]

_FIRST_WINDOW = timedelta(minutes=10)                 # see Drafts.page
_FLOOR = datetime(2020, 1, 1, tzinfo=timezone.utc)    # no draft is older than the project


class Drafts:
    def __init__(self, db: AsyncDatabase):
        self.coll = db["drafts"]
        self.decisions = db["decisions"]
        self.summaries = Summaries(db)

    async def ensure_indexes(self) -> None:
        await self.coll.create_index([("status", ASCENDING), ("created_at", DESCENDING)], name="status_created")
        await self.coll.create_index([("account_id", ASCENDING), ("status", ASCENDING),
                                ("created_at", DESCENDING)], name="account_status_created")
        await self.coll.create_index([("classification", ASCENDING), ("status", ASCENDING),
                                ("created_at", DESCENDING)], name="class_status_created")
        await self.coll.create_index([("account_id", ASCENDING), ("classification", ASCENDING),
                                ("status", ASCENDING), ("created_at", DESCENDING)],
                               name="account_class_status_created")
        await self.coll.create_index([("account_id", ASCENDING), ("conversation_id", ASCENDING),
                                ("created_at", DESCENDING)], name="conversation_drafts")
        await self.coll.create_index([("account_id", ASCENDING), ("conversation_id", ASCENDING),
                                ("answers_seq", ASCENDING)], name="conversation_answers")
        await self.coll.create_index([("created_at", ASCENDING)], name="created")   # the reconciler's window
        await self.coll.create_index([("status", ASCENDING), ("release_at", ASCENDING)], name="status_release")
        await self.decisions.create_index([("draft_id", ASCENDING), ("at", ASCENDING)], name="draft_decisions")

    async def insert(self, draft: dict[str, Any]) -> bool:
        """Insert a new draft (its `_id` is deterministic). False if it already existed."""
        doc = {"status": PENDING.value, "created_at": utcnow(), **draft}
        try:
            await self.coll.insert_one(doc)
        except DuplicateKeyError:
            return False
        await self._summarise(doc)
        return True

    async def get(self, draft_id: str) -> dict[str, Any] | None:
        return await self.coll.find_one({"_id": draft_id})

    async def transition(self, draft_id: str, from_status: tuple[str, ...] | str, to_status: str,
                   **fields: Any) -> dict[str, Any] | None:
        """Move a draft to `to_status` only if it is in `from_status`; the new doc, or None (it
        was not in `from_status`: another move won). IllegalTransition for a move the state
        machine does not allow. A held approval (`release_at` set) cannot start sending."""
        return await self._move(draft_id, from_status, to_status, fields)

    async def _move(self, draft_id: str, from_status: tuple[str, ...] | str, to_status: str,
              fields: dict[str, Any], *, where: dict[str, Any] | None = None,
              unset: tuple[str, ...] = ()) -> dict[str, Any] | None:
        allowed = (from_status,) if isinstance(from_status, str) else tuple(from_status)
        check(allowed, to_status)
        to = DraftStatus(to_status)
        query: dict[str, Any] = {"_id": draft_id, "status": {"$in": [DraftStatus(s).value for s in allowed]},
                                 **(where or {})}
        if to is DraftStatus.SENDING:
            query["release_at"] = {"$exists": False}
        update: dict[str, Any] = {"$set": {"status": to.value, f"{to.value}_at": utcnow(), **fields}}
        if unset:
            update["$unset"] = {name: "" for name in unset}
        doc = await self.coll.find_one_and_update(query, update, return_document=ReturnDocument.AFTER)
        if doc is not None:
            await self._summarise(doc)
        return doc

    async def _summarise(self, doc: dict[str, Any]) -> None:
        """The conversation's summary follows its current draft (see summaries.py)."""
        seq = doc.get("answers_seq")
        if seq is None and doc.get("status") == PENDING:     # drafts written before answers_seq
            last = doc.get("last_message_id") or (doc.get("message_ids") or [None])[-1]
            found = await self.coll.database["messages"].find_one({"_id": last}, {"seq": 1}) if last else None
            seq = None if found is None else found.get("seq")
        await self.summaries.on_draft(doc, seq)

    # ------------------------------------------------------------------ the undo window
    async def due_for_release(self, now: datetime, limit: int = 500) -> list[dict[str, Any]]:
        """Held approvals whose undo window has passed (index status_release)."""
        return await self.coll.find({"status": {"$in": [s.value for s in SENDABLE]},
                                     "release_at": {"$lte": now}}).limit(limit).to_list()

    async def release(self, draft_id: str, now: datetime) -> dict[str, Any] | None:
        """End a held approval's undo window (if it is due and still held); the draft, or None
        when an undo (or another releaser) won."""
        return await self.coll.find_one_and_update(
            {"_id": draft_id, "status": {"$in": [s.value for s in SENDABLE]}, "release_at": {"$lte": now}},
            {"$set": {"released_at": now}, "$unset": {"release_at": ""}},
            return_document=ReturnDocument.AFTER)

    async def undo(self, draft_id: str, by: str) -> dict[str, Any] | None:
        """Put a held approval of `by` back to pending review (the text as approved stays); None
        when it is no longer held (released to be sent, or not approved at all) or not theirs."""
        return await self._move(draft_id, SENDABLE, DraftStatus.PENDING, {"undone_by": by},
                          where={"release_at": {"$exists": True}, "decided_by": by},
                          unset=("release_at", "decided_by", "approved_at", "edited_at"))

    async def unsend(self, draft_id: str) -> dict[str, Any] | None:
        """A send stopped before anything was clicked (no anchor recorded): approved again."""
        return await self._move(draft_id, DraftStatus.SENDING, DraftStatus.APPROVED, {},
                          where={"send_anchor": {"$exists": False}})

    async def supersede_older(self, account_id: str, conversation_id: str, seq: int, by: str | None,
                        reason: str) -> int:
        """Mark the conversation's pending drafts written from an older history superseded."""
        older = [d["_id"] for d in await self.of_conversation(account_id, conversation_id)
                 if d.get("status") == PENDING and (d.get("answers_seq") is None or d["answers_seq"] < seq)]
        if not older:
            return 0
        check((PENDING,), SUPERSEDED)
        res = await self.coll.update_many(
            {"_id": {"$in": older}, "status": PENDING},
            {"$set": {"status": SUPERSEDED, "superseded_at": utcnow(), "superseded_by": by,
                      "superseded_reason": reason}})
        return res.modified_count

    async def of_conversation(self, account_id: str, conversation_id: str) -> list[dict[str, Any]]:
        """A conversation's drafts (id, status, answers_seq, last message): a handful each. One
        indexed query; filters beyond the index are applied here (on the wire server an `$or`
        or a field outside the index makes it scan the whole collection)."""
        return await self.coll.find({"account_id": account_id, "conversation_id": conversation_id},
                                    {"_id": 1, "status": 1, "answers_seq": 1, "last_message_id": 1}).to_list()

    async def supersede(self, draft_id: str, from_status: tuple[str, ...], by: str | None,
                  reason: str) -> dict[str, Any] | None:
        return await self.transition(draft_id, from_status, SUPERSEDED, superseded_by=by,
                               superseded_reason=reason)

    async def open_for_conversation(self, account_id: str, conversation_id: str) -> dict[str, Any] | None:
        """The conversation's pending draft (at most one is open), newest first."""
        return await self.coll.find_one({"account_id": account_id, "conversation_id": conversation_id,
                                   "status": PENDING}, sort=[("created_at", DESCENDING)])

    async def created_between(self, lower: datetime, upper: datetime, limit: int = 5000) -> list[dict[str, Any]]:
        return await self.coll.find({"created_at": {"$gte": lower, "$lt": upper}}).limit(limit).to_list()

    async def covering(self, account_id: str, conversation_id: str, seq: int, message_id: str) -> bool:
        """Does a draft (any status) answer the conversation up to `seq` or beyond?"""
        return any((d.get("answers_seq") or 0) >= seq or d.get("last_message_id") == message_id
                   for d in await self.of_conversation(account_id, conversation_id))

    async def sent_since(self, account_id: str, conversation_id: str, since: datetime | None,
                   exclude: str) -> list[dict[str, Any]]:
        """Drafts of a conversation sent after `since` (their texts), other than `exclude`."""
        q: dict[str, Any] = {"account_id": account_id, "conversation_id": conversation_id,
                             "status": DraftStatus.SENT.value, "_id": {"$ne": exclude}}
        if since is not None:
            q["sent_at"] = {"$gt": since}
        return await self.coll.find(q, {"text": 1, "sent_at": 1}).to_list()

    async def record_decision(self, draft_id: str, decision: str, by: str, **extra: Any) -> None:
        await self.decisions.insert_one({"draft_id": draft_id, "decision": decision, "by": by,
                                   "at": utcnow(), **extra})

    async def list(self, *, status: str = PENDING, account_id: str | None = None,
             classification: str | None = None, skip: int = 0, limit: int = 50) -> list[dict[str, Any]]:
        q: dict[str, Any] = {"status": status}
        if account_id:
            q["account_id"] = account_id
        if classification:
            q["classification"] = classification
        return await self.coll.find(q).sort("created_at", DESCENDING).skip(skip).limit(limit).to_list()

    async def count(self, query: dict | None = None) -> int:
        return await self.coll.count_documents(query or {})

    async def page(self, *, status: str = PENDING, account_id: str | list[str] | None = None,
             classification: str | None = None, limit: int = 50,
             after: tuple[datetime, str] | None = None) -> list[dict[str, Any]]:
        """Newest first, keyset-paged: `after` is the (created_at, _id) of the previous page's last
        draft, so a page costs the same however deep it is and nothing is shown twice or skipped
        while new drafts arrive.

        The wire server sorts every document matching the filter before applying the limit (it
        does not walk the index in order), so one sorted query over 10k pending drafts costs
        ~130 ms. Scanning back in time windows that grow 4x (10 min, 40 min, ... until the page
        is full) keeps each query to the few documents of a window. Every filter combination
        has an index holding all its fields (else the server scans the collection)."""
        q: dict[str, Any] = {"status": status}
        if isinstance(account_id, list):      # a reviewer restricted to some accounts
            q["account_id"] = {"$in": account_id}
        elif account_id:
            q["account_id"] = account_id
        if classification:
            q["classification"] = classification
        newest_first = [("created_at", DESCENDING), ("_id", DESCENDING)]
        out: list[dict[str, Any]] = []
        upper: datetime | None = None
        if after is not None:
            upper, last_id = after
            # drafts sharing the boundary's timestamp (rare): _id filtered here, because a
            # filter field that no index holds makes the wire server scan the whole collection
            ties = self.coll.find({**q, "created_at": upper}).sort("_id", DESCENDING)
            out = [d async for d in ties if d["_id"] < last_id][:limit]
        top = upper or utcnow()
        width = _FIRST_WINDOW
        while len(out) < limit:
            lower = max(top - width, _FLOOR)
            created: dict[str, Any] = {"$gte": lower}
            if upper is not None:
                created["$lt"] = upper
            out += await self.coll.find({**q, "created_at": created}).sort(newest_first).limit(limit - len(out)).to_list()
            if lower <= _FLOOR:
                break
            upper, width = lower, width * 4
        return out

    async def latest_for_conversation(self, account_id: str, conversation_id: str) -> dict[str, Any] | None:
        """The newest draft of a conversation, whatever its status (uses conversation_drafts)."""
        return await self.coll.find_one({"account_id": account_id, "conversation_id": conversation_id},
                                  sort=[("created_at", DESCENDING)])

    async def in_status(self, statuses: tuple[str, ...], limit: int = 1000,
                  account_id: str | None = None) -> list[dict[str, Any]]:
        """Drafts in any of `statuses` (of one account, if given), oldest first (for
        reconciliation sweeps)."""
        q: dict[str, Any] = {"status": {"$in": list(statuses)}}
        if account_id is not None:
            q["account_id"] = account_id
        return await self.coll.find(q).sort("created_at", ASCENDING).limit(limit).to_list()
