"""A session's sending: one approved draft sent exactly once, proven on the page.

- the draft moves approved|edited -> sending atomically (actors/store/drafts.py, checked against
  contracts/draftstate.py); what the contact wrote since the last pass is read and stored first;
  a draft that no longer answers the conversation is `superseded`, nothing clicked;
- before clicking, the fingerprint of the last messages on the page (`send_anchor`, anchors.py) is
  persisted; a draft found in `sending` with an anchor is only re-sent when no outgoing message
  with its text appears AFTER that anchor (an identical earlier reply never suppresses a new one);
- a send is confirmed only by reading the new outgoing message after the anchor; a page whose
  messages' direction cannot be proven is never sent on, and an earlier attempt whose outcome
  cannot be proven is refused (`SendUnproven`, the draft stays `sending`);
- a send that meets a login challenge waits for the person (`waiting_for_login`) and is sent
  when the session resumes (`send_waiting`).
"""
from __future__ import annotations

import logging
import os

from actors.browser import anchors
from actors.browser.errors import LoggedOut, NeedsLogin, SendUnproven
from actors.browser.extract import norm_text
from actors.browser.lifecycle import SessionLife
from actors.browser.limits import SlidingWindowLimiter
from actors.browser.reading import SessionReader
from actors.browser.site import Site
from actors.store.outofdate import supersede_out_of_date
from contracts import telemetry
from contracts.draftstate import SENDABLE, DraftStatus
from contracts.events import ChatMessage, DraftApproved, ReplySent, utcnow
from contracts.metrics import counter

log = logging.getLogger(__name__)

SENDS_OUT_OF_DATE = counter("replydesk_send_out_of_date_total",
                            "Approved replies not sent because newer messages arrived", ("site",))
SENDS_UNPROVEN = counter("replydesk_send_unproven_total",
                         "Sends refused because an earlier attempt's outcome could not be proven", ("site",))

# Fault-injection point for the exactly-once send test: exit the process right after the click.
EXIT_AFTER_SEND_CLICK = "REPLYDESK_FAULT_EXIT_AFTER_SEND_CLICK"


class SessionSender:
    def __init__(self, life: SessionLife, reader: SessionReader):
        self.life = life
        self.reader = reader
        self.account = life.account
        self.site = life.site
        self.hash = life.hash
        self.store = life.store
        self.sends = SlidingWindowLimiter(self.account.sends_per_minute)

    async def send(self, event: dict, carrier: dict | None = None) -> dict:
        """Send one approved draft exactly once; see the module docstring for the rules."""
        ev = DraftApproved.model_validate(event)
        with telemetry.span("browser.send", carrier, account=self.hash, draft_id=ev.draft_id,
                            conversation_id=ev.conversation_id):
            try:
                adapter = await self.life.site_now()
                async with self.life.page_lock:
                    try:
                        return await self._send(adapter, ev)
                    except LoggedOut:  # the session expired as we submitted: log in, check, resend
                        await adapter.login()
                        return await self._send(adapter, ev)
                    finally:   # a live site's inbox page was left: the waiting pass goes back
                        self.life.changed.set()
            except NeedsLogin as exc:  # kept, not dead-lettered: sent when the session resumes
                await self._defer_send(ev, exc)
                return {"status": "waiting_for_login", "site_message_id": None}

    async def _defer_send(self, ev: DraftApproved, exc: NeedsLogin) -> None:
        """A send met a login challenge (or came while waiting for one). Nothing was clicked (the
        challenge comes before the page is read), so a draft taken to `sending` without an anchor
        goes back to approved; the session sends its approved drafts once it resumes."""
        await self.store.drafts.unsend(ev.draft_id)
        if self.life.needs_login is None:
            await self.life.stop()
            await self.life.hand_to_person(exc)
        log.warning("send waits for a person to log in", extra={"draft_id": ev.draft_id, "account": self.hash})

    async def send_waiting(self) -> None:
        """After a login handoff: send the approved drafts of this account that waited for it."""
        docs = await self.store.drafts.in_status(SENDABLE, account_id=self.account.id)
        for doc in docs:
            if "release_at" in doc:    # still in its undo window: the releaser's event sends it
                continue
            ev = DraftApproved.of_draft(doc)
            try:
                result = await self.send(ev.model_dump(mode="json"))
                log.info("waiting reply handled after the login", extra={"draft_id": ev.draft_id,
                                                                         "status": result["status"]})
            except Exception:  # logged with context; its own event's redelivery may still come
                log.exception("waiting reply not sent after the login", extra={"draft_id": ev.draft_id})

    async def _send(self, adapter: Site, ev: DraftApproved) -> dict:
        drafts = self.store.drafts
        draft = await drafts.get(ev.draft_id)
        status = (draft or {}).get("status")
        if status == DraftStatus.SENT:
            return await self._acked(ev, draft.get("site_message_id"), "already_sent")
        if status in SENDABLE:   # (a held approval, still in its undo window, does not move)
            draft = await drafts.transition(ev.draft_id, SENDABLE, DraftStatus.SENDING)
        elif status != DraftStatus.SENDING:
            log.warning("not sending a draft that is not approved",
                        extra={"draft_id": ev.draft_id, "status": status})
            return {"status": "not_approved", "site_message_id": None}
        if draft is None:  # lost a race with another transition
            return {"status": "not_approved", "site_message_id": None}

        # what the contact wrote since the last pass is stored (and emitted) first: the draft
        # must still answer the conversation as it is now
        cursor = await self.store.accounts.cursor(self.account.id, ev.conversation_id)
        # the recorded inbox signature is cleared: the next pass reads this conversation once
        # more, so a message that came between this read and the submit is never hidden behind
        # our reply's preview ("Sent: ...", inbox_status)
        await self.reader.read_conversation(adapter, ev.conversation_id, cursor, "")
        if not adapter.on_newest_page(ev.conversation_id):  # the read paged back by links
            await adapter.open_conversation(ev.conversation_id)
        # read_seen proves every message's direction or raises: no send on an unprovable page
        on_page = await adapter.read_seen()
        if "send_anchor" in draft:  # an earlier attempt may have clicked before a crash
            done = await self._earlier_attempt(adapter, ev, draft, on_page)
            if done is not None:
                return await self._acked(ev, done.site_message_id, "already_sent", done)
        newer, _ = await supersede_out_of_date(
            self.store, draft, (DraftStatus.SENDING, *SENDABLE),
            "before it was sent; a new draft answers the whole conversation")
        if newer:
            return self._out_of_date(ev, newer)
        anchor = anchors.anchor(on_page, ev.text, self.site.anchor_messages)
        await drafts.transition(ev.draft_id, DraftStatus.SENDING, DraftStatus.SENDING,
                                send_anchor=anchor, send_anchor_at=utcnow())
        await self.sends.acquire()
        sent = await adapter.send(ev.conversation_id, ev.text, anchor, after_click=_fault_exit_hook)
        return await self._acked(ev, sent.site_message_id, "sent", sent)

    def _out_of_date(self, ev: DraftApproved, newer: list[ChatMessage]) -> dict:
        """Newer messages arrived after the draft was written: it was not sent (nothing was
        clicked) but marked superseded, and the new messages' own drafts answer them all."""
        n = len(newer)
        SENDS_OUT_OF_DATE.inc(tags={"site": self.site.name})
        log.warning("approved reply not sent: newer messages arrived", extra={
            "draft_id": ev.draft_id, "account": self.hash, "newer": n,
            "conversation_id": ev.conversation_id})
        return {"status": DraftStatus.SUPERSEDED.value, "site_message_id": None, "newer": n}

    async def _earlier_attempt(self, adapter: Site, ev: DraftApproved, draft: dict,
                               on_page: list) -> ChatMessage | None:
        """Did an earlier attempt of this draft send it? The reply found after its anchor, beyond
        the replies of the same text that other drafts sent since, means yes; none means no; an
        outgoing message after the anchor that no draft explains, or an anchor not found once on
        the page, means it cannot be proven: refuse (SendUnproven), never send twice."""
        previous = draft["send_anchor"]
        after = anchors.after_anchor(on_page, previous) if isinstance(previous, list) else None
        if after is None:
            why = ("the messages before it (its anchor) are not found exactly once on the page"
                   if isinstance(previous, list) else "its anchor has an old format")
            self._unproven(ev, adapter, why)
        since = draft.get("send_anchor_at") or draft.get("sending_at")
        others = await self.store.drafts.sent_since(ev.account_id,
                                         ev.conversation_id, since, ev.draft_id)
        outs = [m for m in after if m.direction == "out"]
        mine = [i for i, m in enumerate(after)
                if m.direction == "out" and norm_text(m.text) == norm_text(ev.text)]
        same = sum(1 for d in others if norm_text(d.get("text", "")) == norm_text(ev.text))
        if len(mine) > same:
            msgs = adapter.identify(ev.conversation_id, on_page)
            return msgs[len(on_page) - len(after) + mine[same]]
        if len(outs) > len(others):
            self._unproven(ev, adapter, f"{len(outs) - len(others)} outgoing message(s) after its "
                           "anchor are not replies of other drafts (re-rendered text, or sent by hand)")
        return None

    def _unproven(self, ev: DraftApproved, adapter: Site, why: str) -> None:
        SENDS_UNPROVEN.inc(tags={"site": self.site.name})
        msg = (f"site {self.site.name!r}, conversation {ev.conversation_id} at {adapter.location()}: "
               f"draft {ev.draft_id} may have been sent by an earlier attempt, and {why}: not sending "
               "again without proof; a person must check the conversation (the draft stays 'sending')")
        log.error(msg, extra={"draft_id": ev.draft_id, "site": self.site.name})
        raise SendUnproven(msg)

    async def _acked(self, ev: DraftApproved, site_message_id: str | None, status: str,
                     reply: ChatMessage | None = None) -> dict:
        """Record the reply (the send, the reply as the conversation's newest message, its outbox
        event, then the draft), idempotently."""
        if reply is not None:   # so a draft written after this send starts after this reply
            await self.reader.record([reply])
        await self.store.sends.record(idempotency_key=ev.idempotency_key,
                                draft_id=ev.draft_id, account_id=ev.account_id,
                                conversation_id=ev.conversation_id,
                                site_message_id=site_message_id, text=ev.text)
        event = ReplySent.make(draft_id=ev.draft_id, account_id=ev.account_id,
                               conversation_id=ev.conversation_id,
                               idempotency_key=ev.idempotency_key, site_message_id=site_message_id,
                               text=ev.text)
        await self.store.outbox.add([event], telemetry.inject())
        await self.store.drafts.transition(ev.draft_id, DraftStatus.SENDING,
                                DraftStatus.SENT, site_message_id=site_message_id)
        log.info("reply %s", status, extra={"draft_id": ev.draft_id, "account": self.hash})
        return {"status": status, "site_message_id": site_message_id}


def _fault_exit_hook() -> None:
    if os.environ.get(EXIT_AFTER_SEND_CLICK) == "1":
        os._exit(17)
