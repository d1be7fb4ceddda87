"""Messages, keyed by their stable message id: inserting one twice is a no-op."""
from __future__ import annotations

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from actors.store.inserts import insert_new
from actors.store.summaries import Summaries
from contracts.events import ChatMessage


class Messages:
    def __init__(self, db: AsyncDatabase):
        self.coll = db["messages"]
        self.summaries = Summaries(db)

    async def ensure_indexes(self) -> None:
        await self.coll.create_index([("account_id", ASCENDING), ("conversation_id", ASCENDING),
                                ("seq", ASCENDING)], name="conversation_order")
        await self.coll.create_index([("account_id", ASCENDING), ("conversation_id", ASCENDING),
                                ("content_key", ASCENDING)], name="conversation_content")
        await self.coll.create_index([("account_id", ASCENDING), ("seen_at", ASCENDING)], name="account_seen")
        await self.coll.create_index([("seen_at", ASCENDING)], name="seen")   # the reconciler's window

    async def seen_since(self, account_id: str, since_iso: str) -> int:
        """How many messages of an account were first seen at or after `since_iso` (UTC)."""
        return await self.coll.count_documents({"account_id": account_id, "seen_at": {"$gte": since_iso}})

    async def insert(self, messages: list[ChatMessage], *, keep_known: bool = False) -> list[ChatMessage]:
        """Store the messages not stored before, known by id or, within their conversation, by
        content key (a markup change can give the same message a new id). `messages` are in
        conversation order: new ones continue the conversation's sequence (`seq`) in that order,
        whatever order the pages were read in. Returns the new ones; with `keep_known`, every
        message, the known ones under the id they were stored with."""
        if not messages:
            return []
        ids = [m.message_id for m in messages]
        stored = {d["_id"] async for d in self.coll.find({"_id": {"$in": ids}}, {"_id": 1})}
        known: dict[str, str] = {}  # message id -> the id it is stored under
        for (account, conv), group in _by_conversation(messages).items():
            keys = [m.content_key for m in group if m.content_key and m.message_id not in stored]
            if keys:
                by_key = {d["content_key"]: d async for d in self.coll.find(
                    {"account_id": account, "conversation_id": conv, "content_key": {"$in": keys}},
                    {"_id": 1, "content_key": 1, "site_message_id": 1})}
                for m in group:
                    d = by_key.get(m.content_key)
                    # two different site ids are two messages, whatever their content says
                    if m.message_id not in stored and d is not None and (
                            not m.site_message_id or not d.get("site_message_id")
                            or m.site_message_id == d["site_message_id"]):
                        known[m.message_id] = d["_id"]
        docs = []
        for (account, conv), group in _by_conversation(messages).items():
            fresh = [m for m in group if m.message_id not in stored and m.message_id not in known]
            if not fresh:
                continue
            top = await self.coll.find_one({"account_id": account, "conversation_id": conv},
                                     {"seq": 1}, sort=[("seq", DESCENDING)])
            base = (top or {}).get("seq", 0)
            for i, m in enumerate(fresh):
                d = m.model_dump(mode="json")
                d["_id"] = m.message_id
                d["seq"] = base + 1 + i
                docs.append(d)
        new = await insert_new(self.coll, docs)
        await self._summarise([d for d in docs if d["_id"] in new])
        if not keep_known:
            return [m for m in messages if m.message_id in new]
        return [m.model_copy(update={"message_id": known[m.message_id]}) if m.message_id in known else m
                for m in messages]

    async def _summarise(self, docs: list[dict]) -> None:
        """Each conversation's summary learns its newest message (see summaries.py)."""
        groups: dict[tuple[str, str], list[dict]] = {}
        for d in docs:
            groups.setdefault((d["account_id"], d["conversation_id"]), []).append(d)
        for group in groups.values():
            incoming = [d for d in group if d.get("direction", "in") == "in"]
            newest = max(group, key=lambda d: d["seq"])
            await self.summaries.on_message(newest, len(incoming),
                                      incoming[-1].get("sender") if incoming else None)

    async def get(self, message_id: str) -> ChatMessage | None:
        d = await self.coll.find_one({"_id": message_id})
        return _to_model(d) if d else None

    async def conversation(self, account_id: str, conversation_id: str, limit: int = 50) -> list[ChatMessage]:
        """The newest `limit` messages of a conversation, oldest first."""
        docs = await (self.coll.find({"account_id": account_id, "conversation_id": conversation_id})
                      .sort("seq", DESCENDING).limit(limit).to_list())
        return [_to_model(d) for d in reversed(docs)]

    async def history(self, account_id: str, conversation_id: str,
                limit: int = 50) -> tuple[list[ChatMessage], int]:
        """`conversation()` and the sequence number of its newest message (0: none)."""
        docs = await (self.coll.find({"account_id": account_id, "conversation_id": conversation_id})
                      .sort("seq", DESCENDING).limit(limit).to_list())
        return [_to_model(d) for d in reversed(docs)], (docs[0].get("seq", 0) if docs else 0)

    async def newer_incoming(self, account_id: str, conversation_id: str, seq: int) -> list[ChatMessage]:
        """The contact's messages stored after sequence number `seq`, oldest first."""
        docs = self.coll.find({"account_id": account_id, "conversation_id": conversation_id,
                               "seq": {"$gt": seq}}).sort("seq", ASCENDING)
        return [_to_model(d) async for d in docs if d.get("direction") == "in"]

    async def newer_than_draft(self, draft: dict) -> list[ChatMessage]:
        """The contact's messages stored after the history a draft was written from (by its
        `answers_seq`; for drafts written before drafts knew it, by its newest message's)."""
        seq = draft.get("answers_seq")
        if seq is None:
            candidates = [draft.get("last_message_id"), *reversed(draft.get("message_ids") or [])]
            seq = None
            for m in candidates:
                seq = await self.seq_of(m) if m else None
                if seq is not None:
                    break
            if seq is None:
                return []     # nothing it answers is stored: nothing to compare with
        return await self.newer_incoming(draft["account_id"], draft["conversation_id"], seq)

    async def seq_of(self, message_id: str) -> int | None:
        d = await self.coll.find_one({"_id": message_id}, {"seq": 1})
        return None if d is None else d.get("seq", 0)

    async def incoming_seen_between(self, lower: str, upper: str, limit: int = 5000) -> list[dict]:
        """Incoming messages first seen in [lower, upper) (ISO UTC stamps): what the reconciler
        checks for an answer path."""
        docs = self.coll.find({"seen_at": {"$gte": lower, "$lt": upper}},   # index `seen` only
                              {"account_id": 1, "conversation_id": 1, "seq": 1, "seen_at": 1,
                               "direction": 1}).limit(limit)
        return [d async for d in docs if d.get("direction", "in") == "in"]

    async def newest(self, account_id: str, conversation_id: str) -> dict | None:
        return await self.coll.find_one({"account_id": account_id, "conversation_id": conversation_id},
                                  sort=[("seq", DESCENDING)])

    async def count(self, query: dict | None = None) -> int:
        return await self.coll.count_documents(query or {})

    async def unemitted(self, message_ids: list[str]) -> set[str]:
        """Which of these stored messages have not been flagged emitted yet (a producer that
        crashed between storing a message and queueing its event finds them here)."""
        if not message_ids:
            return set()
        return {d["_id"] async for d in self.coll.find({"_id": {"$in": message_ids},
                                                  "emitted": {"$ne": True}}, {"_id": 1})}

    async def mark_emitted(self, message_ids: list[str]) -> None:
        if message_ids:
            await self.coll.update_many({"_id": {"$in": message_ids}}, {"$set": {"emitted": True}})


def _by_conversation(messages: list[ChatMessage]) -> dict[tuple[str, str], list[ChatMessage]]:
    groups: dict[tuple[str, str], list[ChatMessage]] = {}
    for m in messages:
        groups.setdefault((m.account_id, m.conversation_id), []).append(m)
    return groups


def _to_model(d: dict) -> ChatMessage:
    d = dict(d)
    d.pop("_id", None)
    d.pop("seq", None)
    d.pop("emitted", None)
    return ChatMessage.model_validate(d)
