"""Anti-entropy: find what fell between the cracks of the event paths and drive it again.

Every message a contact writes must end in exactly one of: a draft that answers it (whatever a
person then decides), a classification that says it needs no reply, or a dead letter that says
why not. Events can still be lost where no retry sees them (a queue purged, a broker that lost
its disk, a process killed between two writes), so every `reconcile.interval_s` this looks at
the conversations with incoming messages first seen in the last `lookback_s` (and more than
`grace_s` ago, so their own path has had its time):

- a conversation whose newest message is the contact's and that has none of the three is
  drafted again (through the same AI dispatch as events, idempotent on the draft id);
- a draft whose `draft.created` event was never queued gets it queued (outbox, idempotent).

What it repaired is counted (`replydesk_reconciled_total{what}`) and logged; a healthy run
repairs nothing.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Callable

from actors.store import Store
from contracts.errors import DeadLetter, PermanentError, root_cause
from contracts.events import DraftCreated, utcnow
from contracts.ids import account_hash
from contracts.metrics import counter
from contracts.settings import Config

log = logging.getLogger("replydesk.reconciler")

RECONCILED = counter("replydesk_reconciled_total", "Answer paths repaired by the reconciler", ("what",))

# (account_id, conversation_id) -> the draft() result; raises what the AI worker raised
Redrive = Callable[[str, str], dict[str, Any]]


def iso(t: datetime) -> str:
    """The form ChatMessage.seen_at is stored in (UTC, Z)."""
    return t.isoformat().replace("+00:00", "Z")


class Reconciler:
    def __init__(self, config: Config, store: Store, redrive: Redrive,
                 clock: Callable[[], datetime] = utcnow):
        self.conf = config.app.supervisor.reconcile
        self.store = store
        self.redrive = redrive
        self.clock = clock
        self.totals = {"unanswered": 0, "draft_events": 0, "failed": 0}

    def run_once(self) -> dict[str, Any]:
        now = self.clock()
        upper = now - timedelta(seconds=self.conf.grace_s)
        lower = now - timedelta(seconds=self.conf.lookback_s)
        report: dict[str, Any] = {"unanswered": [], "draft_events": [], "failed": []}
        self._unanswered(lower, upper, report)
        self._unemitted_drafts(lower, upper, report)
        for what in ("unanswered", "draft_events"):
            if report[what]:
                RECONCILED.inc(len(report[what]), tags={"what": what})
        for what in self.totals:
            self.totals[what] += len(report[what])
        if report["unanswered"] or report["draft_events"] or report["failed"]:
            log.warning("reconciler repaired answer paths", extra={
                "unanswered": len(report["unanswered"]), "draft_events": len(report["draft_events"]),
                "failed": len(report["failed"])})
        return report

    def _unanswered(self, lower: datetime, upper: datetime, report: dict[str, Any]) -> None:
        store = self.store
        rows = store.messages.incoming_seen_between(iso(lower), iso(upper))
        conversations = sorted({(r["account_id"], r["conversation_id"]) for r in rows})
        for account_id, conversation_id in conversations:
            if len(report["unanswered"]) + len(report["failed"]) >= self.conf.max_per_run:
                break
            newest = store.messages.newest(account_id, conversation_id)
            if newest is None or newest.get("direction") != "in" or str(newest.get("seen_at")) >= iso(upper):
                continue        # answered by our reply, or its own path is still within its grace
            mid, seq = newest["_id"], newest.get("seq", 0)
            if store.drafts.covering(account_id, conversation_id, seq, mid):
                continue
            known = store.conversations.get(account_id, conversation_id)
            if known and (known.get("last_message_id") == mid or (known.get("seq") or 0) >= seq):
                continue
            if store.dead_letters.about([mid], "ai"):
                continue
            context = {"conversation_id": conversation_id, "account": account_hash(account_id),
                       "message_id": mid}
            try:
                result = self.redrive(account_id, conversation_id)
                report["unanswered"].append(mid)
                log.warning("reconciler: message had no answer path; drafted again",
                            extra={**context, "draft_id": result.get("draft_id"),
                                   "classification": result.get("classification")})
            except Exception as exc:
                cause = root_cause(exc)
                report["failed"].append(mid)
                if isinstance(cause, (DeadLetter, PermanentError)):   # decided: record why
                    reason = cause.reason if isinstance(cause, DeadLetter) else f"{type(cause).__name__}: {cause}"
                    store.dead_letters.record("ai", f"message.seen:{mid}", reason[:2000],
                                              routing_key="message.seen")
                log.error("reconciler could not draft a message with no answer path",
                          extra={**context, "error": f"{type(cause).__name__}: {str(cause)[:300]}"})

    def _unemitted_drafts(self, lower: datetime, upper: datetime, report: dict[str, Any]) -> None:
        drafts = self.store.drafts.created_between(lower, upper)
        if not drafts:
            return
        ids = [DraftCreated.event_id_of(d["_id"]) for d in drafts]
        queued = self.store.outbox.existing(ids)
        missing = [d for d in drafts if DraftCreated.event_id_of(d["_id"]) not in queued]
        events = [DraftCreated.of_draft(d) for d in missing]
        if events and self.store.outbox.add(events):
            report["draft_events"].extend(d["_id"] for d in missing)
            for d in missing:
                log.warning("reconciler: draft.created was never queued; queued it",
                            extra={"draft_id": d["_id"], "account": account_hash(d["account_id"])})
