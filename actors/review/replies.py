"""What a person does to a whole conversation, apart from HTTP: reply by hand, ask the AI for a
(new) draft, close without a reply.

A reply by hand is a draft authored by the reviewer (`by_hand`, `author`) and approved by them at
once (Reviewer.approve), so it takes the one exactly-once send path and the same supersede rule:
when the contact wrote after the newest message the reviewer saw, nothing is stored or sent and
the answer is a 409 naming the newer messages. Its id names the conversation's newest message and
the text, so a double submit stores and sends one reply.

"Retry AI" and "Redraft" queue a DraftRequested event (the AI consumer drafts it); its id names
the request, so two clicks give one event and one draft.
"""
from __future__ import annotations

import logging
import re
from typing import Any

from actors.review.decisions import Conflict, NotFound, Reviewer
from actors.store import AsyncStore
from actors.store.drafts import PENDING
from contracts.events import ChatMessage, DraftRequested, answered_messages
from contracts.ids import account_hash, draft_id, stable_hash

log = logging.getLogger("replydesk.review")

MAX_INSTRUCTION = 300
_MARKUP = re.compile(r"<\s*[/!?A-Za-z]|&[#A-Za-z0-9]+;|\{\{|\{%")


class NewerMessages(Conflict):
    """The contact wrote after the newest message the reviewer saw."""

    def __init__(self, newer: list[ChatMessage], action: str):
        n = len(newer)
        super().__init__("", "newer_messages", message=(
            f"{n} newer message{'s' if n != 1 else ''} from the contact arrived since you opened "
            f"the conversation; read {'it' if n == 1 else 'them'} first. Nothing was {action}"))
        self.newer = newer


def markup_in(text: str) -> str | None:
    """The first piece of markup (a tag, an entity, a template) in `text`, or None."""
    m = _MARKUP.search(text)
    return None if m is None else text[m.start():m.start() + 12]


class Conversation:
    """One conversation, acted on in the name of `who` (coroutines over an AsyncStore)."""

    def __init__(self, store: AsyncStore, who: str, account_id: str, conversation_id: str):
        self.store, self.who = store, who
        self.account_id, self.conversation_id = account_id, conversation_id

    async def _newest(self, seen: str | None, action: str) -> tuple[list[ChatMessage], int]:
        """The history (NotFound without one); NewerMessages when the contact wrote after
        message `seen`; ValueError when `seen` is not a message of this conversation."""
        history, seq = await self.store.messages.history(self.account_id, self.conversation_id, 50)
        if not history:
            raise NotFound(self.conversation_id)
        if seen is not None and seen != history[-1].message_id:
            doc = await self.store.messages.coll.find_one({"_id": seen}, {"account_id": 1, "conversation_id": 1,
                                                                    "seq": 1})
            if doc is None or (doc.get("account_id"), doc.get("conversation_id")) != (
                    self.account_id, self.conversation_id):
                raise ValueError("last_message_id is not a message of this conversation")
            at = doc.get("seq", 0)
            newer = await self.store.messages.newer_incoming(self.account_id, self.conversation_id, at)
            if newer:
                raise NewerMessages(newer, action)
        return history, seq

    async def reply(self, text: str, seen: str | None) -> dict[str, Any]:
        """Store the reviewer's reply as their approved draft; the send path sends it once."""
        history, seq = await self._newest(seen, "sent")
        last = history[-1]
        did = draft_id(self.account_id, self.conversation_id,
                       f"{last.message_id}|hand|{stable_hash(self.who, text)}")
        existing = await self.store.drafts.get(did)
        if existing is not None and existing.get("status") != PENDING:
            return existing                       # the same reply submitted twice: sent once
        summary = await self.store.summaries.get(self.account_id, self.conversation_id) or {}
        state = summary.get("state")
        await self.store.drafts.insert({
            "_id": did, "account_id": self.account_id, "conversation_id": self.conversation_id,
            "message_ids": answered_messages(history), "last_message_id": last.message_id, "answers_seq": seq,
            "classification": state if state in ("no_reply_needed", "spam_or_scam", "abusive") else "needs_reply",
            "text": text, "by_hand": True, "author": self.who, "model": None})
        for other in await self.store.drafts.of_conversation(self.account_id, self.conversation_id):
            if other["_id"] != did and other.get("status") == PENDING:
                await self.store.drafts.supersede(other["_id"], (PENDING,), did, f"answered by hand by {self.who}")
        doc = await Reviewer(self.store, self.who).approve(did)
        await self.store.drafts.record_decision(did, "written_by_hand", self.who)
        log.info("reply written by hand", extra={"draft_id": did, "account": account_hash(self.account_id)})
        return doc

    async def request_draft(self, instruction: str | None, seen: str | None) -> dict[str, Any]:
        """Queue a DraftRequested: with `instruction`, a redraft that supersedes the open draft;
        without, "Retry AI" (its id names the failure it retries: once per failure)."""
        history, _ = await self._newest(seen, "asked")
        last = history[-1]
        if history[-1].direction == "out" and instruction is None:
            raise Conflict("", "answered", message="our reply is the newest message: there is "
                           "nothing for the AI to answer. Nothing was queued")
        summary = await self.store.summaries.get(self.account_id, self.conversation_id) or {}
        open_draft = await self.store.drafts.open_for_conversation(self.account_id, self.conversation_id)
        replaces = open_draft["_id"] if open_draft is not None else None
        if instruction is None:
            request = f"retry-{summary.get('failures') or 0}"
        else:
            request = "redraft-" + stable_hash(replaces or "", instruction, self.who, length=16)
        event = DraftRequested.make(
            account_id=self.account_id, conversation_id=self.conversation_id,
            last_message_id=last.message_id, request=request, requested_by=self.who,
            instruction=instruction, replaces=replaces if instruction is not None else None)
        queued = await self.store.outbox.add([event])
        if instruction is not None:
            await self.store.drafts.record_decision(replaces or "", "redraft_requested", self.who,
                                              instruction=instruction, event_id=event.event_id,
                                              account_id=self.account_id,
                                              conversation_id=self.conversation_id)
        log.info("draft requested", extra={"event_id": event.event_id, "queued": bool(queued),
                                           "account": account_hash(self.account_id)})
        return {"event_id": event.event_id, "queued": bool(queued), "replaces": event.replaces}

    async def close(self, seen: str | None) -> dict[str, Any]:
        """Handled without a reply: closed in the reviewer's name; an open draft is superseded.
        A later incoming message opens the conversation again (summaries.py)."""
        _, seq = await self._newest(seen, "closed")
        open_draft = await self.store.drafts.open_for_conversation(self.account_id, self.conversation_id)
        if open_draft is not None:
            await self.store.drafts.supersede(open_draft["_id"], (PENDING,), None,
                                        f"closed without a reply by {self.who}")
        doc = await self.store.summaries.close(self.account_id, self.conversation_id, self.who, seq)
        if doc is None:
            history, _ = await self._newest(seen, "closed")      # a message arrived meanwhile
            raise NewerMessages(history[-1:], "closed")
        await self.store.drafts.record_decision(open_draft["_id"] if open_draft else "", "closed", self.who,
                                          account_id=self.account_id, conversation_id=self.conversation_id)
        return doc
