"""What a reviewer's decision does, apart from HTTP: one atomic status transition, the decision
record, and its event in the outbox: `draft.approved` (the browser actor sends) or `draft.rejected`
(the sheet logs it).

With an undo window (`review.undo_s` > 0) an approval is held: the draft carries `release_at`
and its `draft.approved` event is queued only by the releaser (actors/review/releaser.py) once
the window has passed; `undo()` meanwhile puts it back to pending. Both are conditional updates
of the draft, so exactly one wins, and a restart loses nothing (the hold is in the draft).

The transition comes first so that only the winner of two concurrent approvals queues an event
(with its own text). Should the process die between the transition and the outbox write, the
event is queued again idempotently (same event id) by the next loser of the race and by
`requeue_approved()` at start-up, so an approved draft is never stranded.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Callable

from actors.store import AsyncStore
from actors.store.outofdate import supersede_out_of_date
from contracts.draftstate import DECIDED, SENDABLE, DraftStatus
from contracts import telemetry
from contracts.events import DraftApproved, DraftRejected, utcnow
from contracts.ids import account_hash
from contracts.metrics import counter

log = logging.getLogger("replydesk.review")

DECISIONS = counter("replydesk_review_decisions_total", "Reviewer decisions", ("decision",))
CONFLICTS = counter("replydesk_review_conflicts_total", "Decisions on drafts no longer pending")


class NotFound(LookupError):
    pass


class Conflict(Exception):
    """The draft is no longer pending review: someone (or something) decided first, or newer
    messages made it out of date (then `newer_draft_id` names the draft that replaces it)."""

    def __init__(self, draft_id: str, status: str, by: str | None = None, *,
                 message: str | None = None, newer_draft_id: str | None = None):
        who = f" by {by}" if by and status in DECIDED else ""
        super().__init__(message or f"draft {draft_id} is no longer pending review: it was already "
                         f"{status}{who}; reload to see its current state")
        self.status = status
        self.newer_draft_id = newer_draft_id


def approved_event(doc: dict[str, Any]) -> DraftApproved:
    return DraftApproved.of_draft(doc)


def rejected_event(doc: dict[str, Any]) -> DraftRejected:
    return DraftRejected.of_draft(doc)


def held(doc: dict[str, Any]) -> bool:
    """Is this approval still in its undo window (not yet released to be sent)?"""
    return doc.get("release_at") is not None


class Reviewer:
    """Decisions taken in the name of `who` (config.app.review.token_name); approvals are held
    `undo_s` seconds of `clock` before they are released to be sent. Coroutines over an
    AsyncStore (synchronous code: `store.sync(Reviewer(store.inline, ...))`)."""

    def __init__(self, store: AsyncStore, who: str, *, undo_s: float = 0.0,
                 clock: Callable[[], datetime] = utcnow):
        self.store = store
        self.who = who
        self.undo_s = undo_s
        self.clock = clock

    async def approve(self, draft_id: str, text: str | None = None) -> dict[str, Any]:
        """Approve as drafted, or (with `text`) edit-and-approve: status "edited", new text."""
        current = await self._pending(draft_id)
        to = DraftStatus.APPROVED if text is None else DraftStatus.EDITED
        now = self.clock()
        fields: dict[str, Any] = {"decided_by": self.who}
        if self.undo_s > 0:
            fields["release_at"] = now + timedelta(seconds=self.undo_s)
        else:
            fields["released_at"] = now
        if text is not None:
            fields.update(text=text, original_text=current.get("original_text") or current.get("text", ""))
        with telemetry.span("review.approve", draft_id=draft_id, decision=to,
                            account=account_hash(current["account_id"])):
            doc = await self.store.drafts.transition(draft_id, DraftStatus.PENDING, to, **fields)
            if doc is None:
                raise await self._conflict(draft_id)
            if not held(doc):
                await self.store.outbox.add([approved_event(doc)], telemetry.inject())
            await self.store.drafts.record_decision(draft_id, to, self.who,
                                              **({"text": text} if text is not None else {}))
        DECISIONS.inc(tags={"decision": to})
        log.info("draft approved", extra={"draft_id": draft_id, "decision": to,
                                          "account": account_hash(doc["account_id"])})
        return doc

    async def reject(self, draft_id: str, reason: str | None) -> dict[str, Any]:
        current = await self._pending(draft_id, current=False)   # an out-of-date draft may be rejected
        with telemetry.span("review.reject", draft_id=draft_id,
                            account=account_hash(current["account_id"])):
            doc = await self.store.drafts.transition(draft_id, DraftStatus.PENDING, DraftStatus.REJECTED, decided_by=self.who,
                                               reject_reason=reason)
            if doc is None:
                raise await self._conflict(draft_id)
            await self.store.outbox.add([rejected_event(doc)], telemetry.inject())
            await self.store.drafts.record_decision(draft_id, DraftStatus.REJECTED, self.who, reason=reason)
        DECISIONS.inc(tags={"decision": DraftStatus.REJECTED})
        log.info("draft rejected", extra={"draft_id": draft_id,
                                          "account": account_hash(doc["account_id"])})
        return doc

    async def undo(self, draft_id: str) -> dict[str, Any]:
        """Take back an approval still in its undo window: the draft is pending review again
        (with the text as approved) and nothing is sent. Conflict once it was released."""
        doc = await self.store.drafts.get(draft_id)
        if doc is None:
            raise NotFound(draft_id)
        with telemetry.span("review.undo", draft_id=draft_id, account=account_hash(doc["account_id"])):
            undone = await self.store.drafts.undo(draft_id, self.who)
            if undone is None:
                raise await self._too_late(draft_id)
            await self.store.drafts.record_decision(draft_id, "undone", self.who)
        DECISIONS.inc(tags={"decision": "undone"})
        log.info("approval undone", extra={"draft_id": draft_id,
                                           "account": account_hash(doc["account_id"])})
        return undone

    async def requeue_approved(self) -> int:
        """Queue (idempotently) the send event of every approved draft released to be sent but
        not yet being sent (held ones are the releaser's)."""
        docs = [d for d in await self.store.drafts.in_status(SENDABLE) if not held(d)]
        return await self.store.outbox.add([approved_event(d) for d in docs]) if docs else 0

    async def _too_late(self, draft_id: str) -> Conflict:
        doc = await self.store.drafts.get(draft_id) or {"status": "gone"}
        status = doc["status"]
        CONFLICTS.inc()
        if held(doc) and doc.get("decided_by") != self.who:
            return Conflict(draft_id, status, message=(
                f"draft {draft_id} was approved by {doc.get('decided_by')}: only they can undo it"))
        if status in (*SENDABLE, DraftStatus.SENDING, DraftStatus.SENT):
            return Conflict(draft_id, status, message=(
                f"too late to undo: draft {draft_id} was already released to be sent (now "
                f"{status}); it is sent once"))
        return Conflict(draft_id, status, message=(
            f"draft {draft_id} has no approval to undo: it is {status}"))

    async def _pending(self, draft_id: str, *, current: bool = True) -> dict[str, Any]:
        doc = await self.store.drafts.get(draft_id)
        if doc is None:
            raise NotFound(draft_id)
        if doc.get("status") == DraftStatus.SUPERSEDED:
            raise await self._superseded(doc)
        if doc.get("status") != DraftStatus.PENDING:
            raise await self._conflict(draft_id, doc)
        if current:
            await self._check_current(doc)
        return doc

    async def _check_current(self, doc: dict[str, Any]) -> None:
        """Refuse a draft written before the contact's newest messages: it does not answer them,
        and a new draft (made from the whole history) will. The draft is marked superseded."""
        _, reason = await supersede_out_of_date(self.store, doc, (DraftStatus.PENDING,),
                                                "since this draft was written")
        if reason is not None:
            raise await self._superseded({**doc, "status": DraftStatus.SUPERSEDED, "superseded_reason": reason})

    async def _superseded(self, doc: dict[str, Any]) -> Conflict:
        newer = await self.store.drafts.open_for_conversation(doc["account_id"], doc["conversation_id"])
        newer_id = newer["_id"] if newer is not None and newer["_id"] != doc["_id"] else None
        offer = (f"; the new draft {newer_id} answers them" if newer_id
                 else "; a new draft is being written")
        CONFLICTS.inc()
        return Conflict(doc["_id"], DraftStatus.SUPERSEDED, newer_draft_id=newer_id, message=(
            f"draft {doc['_id']} is out of date: {doc.get('superseded_reason') or 'newer messages arrived'}"
            f"{offer}. Nothing was sent"))

    async def _conflict(self, draft_id: str, doc: dict[str, Any] | None = None) -> Conflict:
        """The loser's answer; if the winner approved, make sure its event is queued."""
        doc = doc or await self.store.drafts.get(draft_id) or {"status": "gone"}
        if doc.get("status") in SENDABLE and not held(doc):
            await self.store.outbox.add([approved_event(doc)])
        CONFLICTS.inc()
        return Conflict(draft_id, doc["status"], doc.get("decided_by"))
