"""One summary document per conversation, kept up to date on write (never aggregated at read
time): what the desk's conversations view lists and filters. The messages, drafts and decisions
stay the truth; a summary is derived from them by the repositories that write them
(Messages.insert, Drafts.insert/transition, Conversations.record_classification, DeadLetters /
AIFailures.record, and a person closing a conversation).

A conversation's `state`:
  new             the contact wrote; the AI has not answered yet
  draft           a draft waits for review (`draft_id`)
  ai_failed       the AI could not draft it (`reason`): "Retry AI"
  no_reply_needed / spam_or_scam / abusive   the AI's classification: no draft
  sending         a reply was approved and is on its way
  rejected        the draft was rejected and nothing was sent
  answered        our reply is the newest message
  closed          a person closed it without a reply (`closed_by`); the next incoming message
                  opens it again

Every update is guarded by the conversation's sequence number (`last_seq`): a draft or a
classification written from an older history than the summary knows does not overwrite what a
newer message said. Sorted by `last_at` (the newest message's time); `words` (the contact's name
and its prefixes, the newest message's words, lower-cased) is what search matches.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from pymongo import ASCENDING, DESCENDING, WriteConcern
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from contracts.draftstate import DraftStatus
from contracts.events import utcnow

STATES = ("new", "draft", "ai_failed", "no_reply_needed", "spam_or_scam", "abusive", "sending",
          "rejected", "answered", "closed")
EXCERPT = 200
MAX_WORDS = 60
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_FIRST_WINDOW = timedelta(minutes=10)
_SKEW = timedelta(seconds=5)          # last_at is never later than its writer's now (see _at)
_FLOOR = datetime(2020, 1, 1, tzinfo=timezone.utc)
_DRAFT_STATES = {DraftStatus.PENDING: "draft", DraftStatus.APPROVED: "sending", DraftStatus.EDITED: "sending",
                 DraftStatus.SENDING: "sending", DraftStatus.SENT: "answered", DraftStatus.REJECTED: "rejected"}


def words(*texts: str | None) -> list[str]:
    """Distinct lower-case words of the texts, in order, at most MAX_WORDS."""
    out: dict[str, None] = {}
    for t in texts:
        for w in _WORD.findall((t or "").lower()):
            out.setdefault(w[:40], None)
    return list(out)[:MAX_WORDS]


def index_words(contact: str | None, *texts: str | None) -> list[str]:
    """What search finds a conversation by: every prefix (2+ letters) of the contact's name's
    words, and the whole words of the texts. Equality lookups on a multikey index only: a
    range (prefix) query on it costs ~190 ms at 100k conversations on the wire server."""
    out: dict[str, None] = {}
    for w in words(contact):
        for n in range(2, len(w) + 1):
            out.setdefault(w[:n], None)
        out.setdefault(w, None)
    for w in words(*texts):
        out.setdefault(w, None)
    return list(out)[:MAX_WORDS * 2]


def _parse(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _at(sent_at: Any, fallback: Any) -> datetime:
    """When a message was sent (what the list sorts by; `fallback`, when it was stored, if the
    site's time does not parse), never later than now: a site's clock or a resolved "in 5 min"
    must not put a conversation above every newer one for good, nor make the newest-first scan
    start in the future."""
    value = _parse(sent_at) or _parse(fallback) or utcnow()
    return min(value, utcnow())


class Summaries:
    def __init__(self, db: AsyncDatabase):
        # derived state: rebuilt by the next write to the conversation, so no journal wait
        self.coll = db.get_collection("conversation_summaries", write_concern=WriteConcern(w=1))

    async def ensure_indexes(self) -> None:
        await self.coll.create_index([("last_at", DESCENDING)], name="last_at")
        await self.coll.create_index([("account_id", ASCENDING), ("last_at", DESCENDING)], name="account_last")
        await self.coll.create_index([("state", ASCENDING), ("last_at", DESCENDING)], name="state_last")
        await self.coll.create_index([("account_id", ASCENDING), ("state", ASCENDING), ("last_at", DESCENDING)],
                               name="account_state_last")
        if "words" in await self.coll.index_information():      # (words) alone: a common word cost seconds
            await self.coll.drop_index("words")
        await self.coll.create_index([("words", ASCENDING), ("last_at", DESCENDING)], name="words_last")

    @staticmethod
    def key(account_id: str, conversation_id: str) -> str:
        return f"{account_id}:{conversation_id}"

    async def get(self, account_id: str, conversation_id: str) -> dict[str, Any] | None:
        return await self.coll.find_one({"_id": self.key(account_id, conversation_id)})

    async def contacts(self, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """The contact's name of each (account, conversation) that has one (one _id lookup)."""
        if not pairs:
            return {}
        docs = self.coll.find({"_id": {"$in": [self.key(a, c) for a, c in pairs]}},
                              {"account_id": 1, "conversation_id": 1, "contact": 1})
        return {(d["account_id"], d["conversation_id"]): d["contact"] async for d in docs if d.get("contact")}

    # ------------------------------------------------------------------ writes
    async def on_message(self, newest: dict[str, Any], incoming: int, contact: str | None) -> None:
        """New messages stored; `newest` is the conversation's newest one (a stored document),
        `incoming` how many of the new ones the contact wrote, `contact` their name."""
        account_id, conversation_id = newest["account_id"], newest["conversation_id"]
        seq = newest.get("seq", 0)
        out = newest.get("direction") == "out"
        fields: dict[str, Any] = {
            "account_id": account_id, "conversation_id": conversation_id, "last_seq": seq,
            "last_text": (newest.get("text") or "")[:EXCERPT], "last_sender": newest.get("sender"),
            "last_direction": newest.get("direction", "in"), "last_sent_at": newest.get("sent_at"),
            "last_at": _at(newest.get("sent_at"), newest.get("seen_at") or utcnow()),
            "state": "answered" if out else "new", "reason": None, "updated_at": utcnow()}
        if contact:
            fields["contact"] = contact
        update: dict[str, Any] = {"$set": fields}
        if out:
            fields["unread"] = 0
        else:
            fields.update(closed_by=None, closed_at=None)
            update["$inc"] = {"unread": incoming}
        if contact:
            fields["words"] = index_words(contact, newest.get("text"))
        else:              # our reply, or a batch without the contact: keep the name known
            update["$setOnInsert"] = {"contact": None}
        try:
            await self.coll.update_one({"_id": self.key(account_id, conversation_id),
                                  "last_seq": {"$lt": seq}}, update, upsert=True)
        except DuplicateKeyError:
            return          # the summary already knows a newer message
        if not contact:
            await self._fix_words(account_id, conversation_id)

    async def _fix_words(self, account_id: str, conversation_id: str) -> None:
        doc = await self.get(account_id, conversation_id)
        if doc is not None:
            await self.coll.update_one({"_id": doc["_id"]}, {"$set": {"words": index_words(
                doc.get("contact"), doc.get("last_text"))}})

    async def on_draft(self, draft: dict[str, Any], seq: int | None) -> None:
        """A draft stored or moved on: the state follows the conversation's current draft."""
        state = _DRAFT_STATES.get(draft.get("status"))
        if state is None:
            return
        q: dict[str, Any] = {"_id": self.key(draft["account_id"], draft["conversation_id"])}
        fields: dict[str, Any] = {"state": state, "reason": None, "updated_at": utcnow()}
        if draft.get("status") == DraftStatus.PENDING:
            if seq is not None:
                q["last_seq"] = {"$lte": seq}
            fields.update(draft_id=draft["_id"], draft_text=(draft.get("text") or "")[:EXCERPT],
                          by_hand=bool(draft.get("by_hand")))
        else:
            q["draft_id"] = draft["_id"]           # only the conversation's current draft
            if state in ("sending", "rejected", "answered"):
                fields["unread"] = 0
            if state == "rejected":
                fields["reason"] = draft.get("reject_reason")
        await self.coll.update_one(q, {"$set": fields})

    async def on_classified(self, account_id: str, conversation_id: str, seq: int, classification: str) -> None:
        await self.coll.update_one({"_id": self.key(account_id, conversation_id), "last_seq": {"$lte": seq}},
                             {"$set": {"state": classification, "draft_id": None, "reason": None,
                                       "updated_at": utcnow()}})

    async def on_ai_failed(self, account_id: str, conversation_id: str, reason: str,
                     seq: int | None = None) -> None:
        """The AI gave up on the conversation (up to message `seq`, when known)."""
        q: dict[str, Any] = {"_id": self.key(account_id, conversation_id),
                             "state": {"$in": ["new", "ai_failed"]}}
        if seq is not None:
            q["last_seq"] = {"$lte": seq}
        await self.coll.update_one(q, {"$set": {"state": "ai_failed", "reason": reason[:500],
                                          "failed_at": utcnow(), "updated_at": utcnow()},
                                 "$inc": {"failures": 1}})

    async def close(self, account_id: str, conversation_id: str, by: str, seq: int) -> dict[str, Any] | None:
        """Closed by `by` having seen up to message `seq`; None when a newer message arrived."""
        res = await self.coll.update_one(
            {"_id": self.key(account_id, conversation_id), "last_seq": {"$lte": seq}},
            {"$set": {"state": "closed", "closed_by": by, "closed_at": utcnow(), "unread": 0,
                      "reason": None, "updated_at": utcnow()}})
        return await self.get(account_id, conversation_id) if res.matched_count else None

    # ------------------------------------------------------------------ reads
    @staticmethod
    def _windows(before: datetime | None):
        """`last_at` ranges newest first: 10 minutes below `before` (or now), then windows 4x
        wider each, down to the floor. The wire server sorts (and materialises) every document
        a query matches before it limits, so one query over 100k conversations costs seconds,
        while a window holds a few; a compound index (filter fields, last_at) serves each."""
        upper = before
        top = before or utcnow() + _SKEW
        width = _FIRST_WINDOW
        while True:
            lower = max(top - width, _FLOOR)
            yield {"$gte": lower, **({"$lt": upper} if upper is not None else {})}
            if lower <= _FLOOR:
                return
            upper, width = lower, width * 4

    async def page(self, *, accounts: list[str] | None, state: str | None, limit: int,
             before: tuple[datetime, str] | None = None) -> list[dict[str, Any]]:
        """Newest first (by the last message's time), keyset-paged like Drafts.page (see
        _windows). Several accounts are read one by one and merged: an `$in` makes the wire
        server scan them all (one after another, so the repository also runs inline, with no
        loop: actors/store/inline.py)."""
        if accounts is not None and len(accounts) != 1:
            pages = [await self.page(accounts=[a], state=state, limit=limit, before=before) for a in accounts]
            merged = [d for docs in pages for d in docs]
            merged.sort(key=lambda d: (d["last_at"], d["_id"]), reverse=True)
            return merged[:limit]
        q: dict[str, Any] = {}
        if accounts is not None:
            q["account_id"] = accounts[0]
        if state is not None:
            q["state"] = state
        out: list[dict[str, Any]] = []
        if before is not None:
            ties = self.coll.find({**q, "last_at": before[0]})
            out = sorted([d async for d in ties if d["_id"] < before[1]], key=lambda d: d["_id"], reverse=True)[:limit]
        for at in self._windows(before[0] if before else None):
            if len(out) >= limit:
                break
            out += await self.coll.find({**q, "last_at": at}).sort(
                [("last_at", DESCENDING), ("_id", DESCENDING)]).limit(limit - len(out)).to_list()
        return out

    async def search(self, term: str, *, accounts: list[str] | None, state: str | None, limit: int,
               before: tuple[datetime, str] | None = None,
               scan: int = 5000) -> tuple[list[dict[str, Any]], bool]:
        """Conversations matching every word of `term` (at most 5): a prefix of a word of the
        contact's name, or a whole word of the newest message (see index_words), newest first.
        Its longest word is looked up window by window on the (words, last_at) index; the other
        words and filters are applied to what it finds. Returns (page, complete): not complete
        when `scan` conversations were looked at before the page was full (add a word)."""
        wanted = words(term)[:5]
        if not wanted:
            return [], True
        probe = max(wanted, key=len)
        others = [w for w in wanted if w != probe]
        plain = not others and accounts is None and state is None

        def match(d: dict[str, Any]) -> bool:
            have = set(d.get("words") or [])
            return (all(w in have for w in others)
                    and (accounts is None or d.get("account_id") in accounts)
                    and (state is None or d.get("state") == state)
                    and (before is None or (d["last_at"], d["_id"]) < before))

        out: list[dict[str, Any]] = []
        seen = 0
        if before is not None:
            out = [d async for d in self.coll.find({"words": probe, "last_at": before[0]}) if match(d)]
        for at in self._windows(before[0] if before else None):
            if len(out) >= limit:
                break
            found = self.coll.find({"words": probe, "last_at": at}).sort(
                [("last_at", DESCENDING), ("_id", DESCENDING)])
            if plain:
                found = found.limit(limit - len(out))
            async for d in found:
                seen += 1
                if match(d):
                    out.append(d)
            if not plain and seen >= scan and len(out) < limit:
                out.sort(key=lambda d: (d["last_at"], d["_id"]), reverse=True)
                return out[:limit], False
        out.sort(key=lambda d: (d["last_at"], d["_id"]), reverse=True)
        return out[:limit], True
