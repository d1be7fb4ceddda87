"""One chat account's browser session: extracts only NEW messages and sends only APPROVED replies.

`AccountSession` is the plain async class (tests drive it in-process); `BrowserSession` is the
same class as a Ray actor (num_cpus=0). The supervisor creates it, one per account:

    BrowserSession.options(name=f"browser:{site}:{account_id}", namespace=cfg.settings.namespace,
                           resources={"browser": 0.01}, max_restarts=0, max_task_retries=0,
                           max_concurrency=8).remote(cfg, account_id)

and restarts it itself. Exactly-once rules:
- poll: messages and their MessageSeen outbox rows are stored BEFORE the conversation cursor
  moves; messages are flagged `emitted` once their outbox row exists, so a crash anywhere
  re-extracts, the store drops what it has (by id, and by content key when a markup change gave
  the same messages new ids) and the un-emitted ones are emitted. Stored order is the
  conversation's order (a per-conversation sequence), whatever order pages were read in.
- send: the draft moves approved|edited -> sending atomically; before clicking, the fingerprint
  of the last messages on the page (`send_anchor`) is persisted; a draft found in `sending` with
  an anchor is only re-sent when no outgoing message with its text appears AFTER that anchor (an
  identical earlier reply never suppresses a new one). A send is confirmed only by reading the new
  outgoing message after the anchor; a page whose messages' direction cannot be proven is never
  sent on (the send could not be proven to have happened once).
- status: `degraded` while any element of the site spec misses (named in `ping()`).
- live sites (`live: true` in the spec): the inbox page stays open between passes and its own
  content changes (pushed by the site) wake the pass, which reads that page as it is and then
  only the conversations whose items changed; the inbox is reloaded only when the page was left
  (to read or send) or every `safety_poll_s`, which finds whatever a dead push channel missed.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from datetime import datetime, timezone
from typing import Awaitable, Callable

import ray
from playwright.async_api import Browser

from actors.browser.adapter import WATCH_BINDING, LoggedOut, LoginFailed, NeedsLogin, SendUnproven, SiteAdapter
from actors.browser.extract import norm_text
from actors.browser.launcher import BrowserSessionHandle, open_context, open_session, scratch_root, session_dir
from actors.browser.limits import NodeSlots, SlidingWindowLimiter
from actors.browser.selectors import Health, SelectorNotFound, Selectors
from actors.store import Store
from actors.store.outofdate import supersede_if_out_of_date
from contracts import telemetry
from contracts.draftstate import SENDABLE, DraftStatus
from contracts.events import ChatMessage, DraftApproved, MessageSeen, ReplySent, utcnow
from contracts.events import NeedsLogin as NeedsLoginEvent
from contracts.metrics import counter, gauge
from contracts.ids import account_hash
from contracts.settings import Config, resolve

log = logging.getLogger(__name__)

NEEDS_LOGIN = gauge("replydesk_needs_login", "1 while an account waits for a person to log in", ("account",))
SENDS_OUT_OF_DATE = counter("replydesk_send_out_of_date_total",
                            "Approved replies not sent because newer messages arrived", ("site",))
SENDS_UNPROVEN = counter("replydesk_send_unproven_total",
                         "Sends refused because an earlier attempt's outcome could not be proven", ("site",))
BROWSER_REOPENED = counter("replydesk_browser_reopened_total",
                           "Sessions opened again because their browser disconnected", ("site",))

# Fault-injection point for the exactly-once send test: exit the process right after the click.
EXIT_AFTER_SEND_CLICK = "REPLYDESK_FAULT_EXIT_AFTER_SEND_CLICK"


class AccountSession:
    def __init__(self, config: Config, account_id: str, clock: Callable[[], datetime] = utcnow,
                 browser_source: Callable[[], Awaitable[Browser]] | None = None):
        """`browser_source`: the hosted layout's shared browser (hosted.SessionHost), on which
        the session opens only its own context; without it the layout decides."""
        telemetry.setup_from(config, f"browser:{account_id}")
        self.config = config
        self.account = config.account(account_id)
        self.site = config.site(self.account.site)
        self.hash = account_hash(account_id)
        self.store = Store.from_config(config)
        browser = config.app.browser
        self.health = Health()
        self.selectors = Selectors(self.site, resolve(browser.artifacts_dir), browser.selector_timeout_s,
                                   self.health)
        self.navigations = SlidingWindowLimiter(self.account.navigations_per_minute)
        self.sends = SlidingWindowLimiter(self.account.sends_per_minute)
        self.slots = NodeSlots(browser.max_concurrent_navigations, scratch_root() / "nav-slots")
        self.clock = clock  # poll time: resolves times of day, decides revisits
        self.handle: BrowserSessionHandle | None = None
        self.adapter: SiteAdapter | None = None
        self.last_poll_at: float | None = None
        self.needs_login: str | None = None   # why a person must log in (a challenge page)
        self._state_seen = None               # the stored login state's saved_at at that time
        self._checked_stored_wait = False
        self._resumed = False
        self._page_lock = asyncio.Lock()  # one page: poll and send take turns
        self._changed = asyncio.Event()   # a live site's open inbox changed, or a pass is asked for
        self._reload_at = 0.0             # a live site's inbox is reloaded no later than this
        self._start_lock = asyncio.Lock()
        self.browser_source = browser_source
        self._on_disconnect: Callable | None = None

    # ------------------------------------------------------------ life cycle

    async def start(self) -> dict:
        """Open the browser with the stored session; log in only when it is missing or expired.
        A login challenge leaves the session alive in `needs_login`: it does not touch the site
        again until a person stores a new login state (`./run login ACCOUNT`), then resumes."""
        async with self._start_lock:
            if self.adapter is None and not await self._waiting_for_person():
                try:
                    await self._open()
                except NeedsLogin as exc:
                    await self._hand_to_person(exc)
                except LoginFailed as exc:   # never logged in here: a person's first login, no loop
                    if await asyncio.to_thread(self.store.accounts.storage_state, self.account.id):
                        raise
                    await self._hand_to_person(NeedsLogin(
                        f"{exc}; no stored session: a person must log in (./run login "
                        f"{self.account.id}, or --import state.json)", self.site.name))
        if self._resumed and self.adapter is not None:
            self._resumed = False
            await self._send_waiting()
        return await self.ping()

    async def _hand_to_person(self, exc: NeedsLogin) -> None:
        self.needs_login = str(exc)
        self._state_seen = await asyncio.to_thread(self.store.accounts.state_saved_at, self.account.id)
        # kept in the store: a restarted session waits too, instead of trying the form again
        await asyncio.to_thread(self.store.accounts.set_needs_login, self.account.id,
                                self.needs_login, self._state_seen)
        NEEDS_LOGIN.set(1, tags={"account": self.hash})
        event = NeedsLoginEvent.make(child=f"browser:{self.site.name}:{self.account.id}",
                                     account_id=self.account.id, error=str(exc), at=time.time())
        await asyncio.to_thread(self.store.outbox.add, [event])  # the reviewers are told
        log.error("login needs a person", extra={"account": self.hash, "site": self.site.name,
                                                  "url": exc.url, "screenshot": exc.screenshot})

    async def _waiting_for_person(self) -> bool:
        """Still in needs_login: no login state stored since the challenge."""
        if self.needs_login is None and not self._checked_stored_wait:
            self._checked_stored_wait = True  # a previous run of this session may have handed off
            stored = await asyncio.to_thread(self.store.accounts.needs_login, self.account.id)
            if stored:
                self.needs_login, self._state_seen = stored["reason"], stored.get("state_at")
                NEEDS_LOGIN.set(1, tags={"account": self.hash})
        if self.needs_login is None:
            return False
        saved = await asyncio.to_thread(self.store.accounts.state_saved_at, self.account.id)
        if saved is None or saved == self._state_seen:
            return True
        log.info("a new login state was stored: resuming", extra={"account": self.hash})
        self.needs_login = None
        self._resumed = True
        await asyncio.to_thread(self.store.accounts.set_needs_login, self.account.id, None, None)
        NEEDS_LOGIN.set(0, tags={"account": self.hash})
        return False

    async def _open(self) -> None:
        state = await asyncio.to_thread(self.store.accounts.storage_state, self.account.id)
        if self.browser_source is not None:   # hosted: a context on the host's browser
            self.handle = await open_context(self.config, await self.browser_source(), state)
        else:
            self.handle = await open_session(self.config, session_dir(self.site.name, self.account.id),
                                             state)
        try:
            if self.site.live:   # the page calls it on every change of its inbox (adapter.watch)
                await self.handle.page.expose_binding(WATCH_BINDING, lambda _source: self._changed.set())
                # a waiting pass must not wait for a page that is gone: it opens the session again
                # (removed on stop: a hosted browser outlives the session's contexts)
                self._on_disconnect = lambda *_: self._changed.set()
                self.handle.browser.on("disconnected", self._on_disconnect)
                self.handle.page.on("crash", lambda *_: self._changed.set())
                self._reload_at = 0.0   # not watched yet: the next pass loads it (unless below)
            self.adapter = SiteAdapter(self.handle.page, self.config, self.account,
                                         self.config.credentials(self.account), self.selectors,
                                         self.navigations, self.slots, on_login=self._save_state,
                                       clock=self.clock)
            async with self._page_lock:
                await self.adapter.ensure_logged_in()
                if self.site.live and self.adapter.on_inbox():
                    # the inbox just loaded is watched from now on: the first pass reads it as it
                    # is (what changed before the watch began is on it), not after a second load
                    await self.adapter.watch()
                    self._reload_at = time.monotonic() + self.account.safety_poll_s
                    self._changed.set()
        except BaseException:
            await self.stop()
            raise
        log.info("session started", extra={"account": self.hash, "restored": state is not None,
                                           "logins": self.adapter.logins})

    async def _save_state(self) -> None:
        state = await self.handle.context.storage_state()
        await asyncio.to_thread(self.store.accounts.save_storage_state, self.account.id, state)

    @ray.method(concurrency_group="health")
    async def ping(self) -> dict:
        return {"account": self.account.id, "site": self.site.name,
                "logged_in": self.adapter is not None, "last_poll_at": self.last_poll_at,
                "status": ("needs_login" if self.needs_login else
                           "degraded" if self.health.degraded else "ok"),
                "needs_login": self.needs_login,
                "missing": self.health.report()}

    async def stop(self) -> None:
        """Close page, context and browser and delete this session's scratch directory."""
        handle, self.handle, self.adapter = self.handle, None, None
        if handle is not None:
            if self._on_disconnect is not None:
                handle.browser.remove_listener("disconnected", self._on_disconnect)
                self._on_disconnect = None
            await handle.close()

    async def _adapter(self) -> SiteAdapter:
        if self.handle is not None and not self.handle.browser.is_connected():
            # Chromium is gone (it crashed, or the node's session host relaunched it): every page call
            # would fail from now on; open the session again (the stored login state is reused)
            log.warning("browser disconnected; opening the session again",
                        extra={"account": self.hash, "site": self.site.name})
            BROWSER_REOPENED.inc(tags={"site": self.site.name})
            await self.stop()
        if self.adapter is None:
            await self.start()
        if self.adapter is None:  # needs_login: the site is not touched until a person logs in
            raise NeedsLogin(self.needs_login or "a person must log in", self.site.name)
        return self.adapter

    # ------------------------------------------------------------ polling

    async def poll(self, carrier: dict | None = None) -> dict:
        """One pass over the inbox; returns the ids of the messages emitted as new."""
        waiting = {"new": [], "conversations": 0, "needs_login": True}
        if self.needs_login is not None:
            await self.start()  # resumes when a person has stored a login state meanwhile
            if self.needs_login is not None:
                return waiting
        try:
            return await self._poll(carrier)
        except NeedsLogin as exc:  # the session expired and logging in again met a challenge
            await self.stop()
            if self.needs_login is None:
                await self._hand_to_person(exc)
            return waiting

    async def wake(self) -> None:
        """Run the waiting pass of a live site now (`poll_now`); a polled site's next pass is the
        supervisor's to schedule."""
        self._changed.set()

    async def _until_changed(self, adapter: SiteAdapter) -> SiteAdapter:
        """A live site: wait (the page not held) until its open inbox changes, the safety reload
        is due or the page is gone. Returns the adapter to read with (opened again if the browser
        went while it waited)."""
        if adapter.on_inbox() and not self._changed.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), max(0.0, self._reload_at - time.monotonic()))
        self._changed.clear()   # before the read: a change during it wakes the next pass
        return await self._adapter()

    async def _poll(self, carrier: dict | None) -> dict:
        adapter = await self._adapter()
        live = self.site.live
        reload = True
        if live:
            adapter = await self._until_changed(adapter)
            # the page is read as it is when it is the watched inbox and no safety reload is due
            reload = time.monotonic() >= self._reload_at or not adapter.on_inbox()
        new: list[str] = []
        read = 0
        with telemetry.span("browser.poll", carrier, account=self.hash, site=self.site.name):
            # the page is held per step (the inbox, then each conversation), never for a whole
            # pass: an approved send waits for one conversation's read at most, not the pass
            async with self._health_pass():
                async with self._page_lock:
                    items = await adapter.inbox(reload=reload)
                if live and reload:
                    self._reload_at = time.monotonic() + self.account.safety_poll_s
                failed: SelectorNotFound | None = None
                for item in await self._this_pass(items):
                    try:
                        async with self._page_lock:   # the cursor too: a send may have moved it
                            cursor = await asyncio.to_thread(self.store.accounts.cursor,
                                                             self.account.id, item.conversation_id)
                            if cursor and item.unchanged_since(cursor.get("signature")) \
                                    and not self._due(cursor):
                                continue
                            read += 1
                            new += await self._read_conversation(adapter, item.conversation_id,
                                                                 cursor, item.signature)
                    except SelectorNotFound as exc:  # this conversation waits; the others go on
                        failed = failed or exc
                        continue
                if live and read:
                    # back to the inbox, watched again; what changed while the page was away is
                    # on it now, so the next pass reads it at once (no reload)
                    async with self._page_lock:
                        if not adapter.on_inbox():
                            await adapter.open_inbox()
                    self._changed.set()
        self.last_poll_at = time.time()
        if failed is not None:  # the cursor of that conversation did not move: nothing is lost
            raise failed
        return {"new": new, "conversations": len(items), "live": live}

    async def _read_conversation(self, adapter: SiteAdapter, conversation_id: str,
                                 cursor: dict | None, signature: str | None) -> list[str]:
        """Read a conversation's messages after the cursor, store and emit them, then move the
        cursor (messages first: a crash in between re-reads, never loses)."""
        msgs = await adapter.conversation(conversation_id, cursor, self.account.max_pages)
        new = await asyncio.to_thread(self._record, msgs)
        last = msgs[-1] if msgs else None
        cursor = cursor or {}
        await asyncio.to_thread(
            self.store.accounts.set_cursor, self.account.id, conversation_id,
            signature=signature if signature is not None else cursor.get("signature"),
            read_at=self.clock(),
            last_message_id=last.message_id if last else cursor.get("last_message_id"),
            last_content_key=last.content_key if last else cursor.get("last_content_key"),
            last_day=adapter.day_of(last) if last else cursor.get("last_day"))
        return new

    @contextlib.asynccontextmanager
    async def _health_pass(self):
        self.health.begin_pass()
        try:
            yield
        finally:
            self.health.end_pass()

    async def _this_pass(self, items: list) -> list:
        """What this pass reads: every conversation whose inbox item changed (inbox order; an
        unread badge that only went away is no change, see InboxItem.unchanged_since), then
        at most `revisits_per_pass` unchanged-looking ones due for a revisit, the longest unread
        first. A big inbox is revisited over several passes, so a new message never waits for a
        pass that re-reads them all."""
        cursors = await asyncio.to_thread(self.store.accounts.cursors_of, self.account.id,
                                          [i.conversation_id for i in items])
        changed, due = [], []
        for item in items:
            cursor = cursors.get(item.conversation_id)
            if not cursor or not item.unchanged_since(cursor.get("signature")):
                changed.append(item)
                continue
            if cursor.get("signature") != item.signature:  # only the unread badge went (read):
                await asyncio.to_thread(                   # a badge next time is a change again
                    self.store.accounts.set_cursor, self.account.id, item.conversation_id,
                    signature=item.signature)
            if self._due(cursor):
                due.append(item)
        due.sort(key=lambda i: _read_at(cursors[i.conversation_id]))
        return changed + due[:self.account.revisits_per_pass]

    def _due(self, cursor: dict) -> bool:
        """An unchanged-looking conversation is read again once revisit_s has passed."""
        return (self.clock() - _read_at(cursor)).total_seconds() >= self.account.revisit_s

    def _record(self, msgs: list[ChatMessage]) -> list[str]:
        """Store messages, emit MessageSeen for incoming ones not yet emitted, flag them emitted."""
        msgs = self.store.messages.insert(msgs, keep_known=True)
        pending = self.store.messages.unemitted([m.message_id for m in msgs])
        emitted = []
        for m in msgs:
            if m.message_id not in pending:
                continue
            if m.direction == "in":
                with telemetry.span("browser.message_seen", root=True, account=self.hash,
                                    conversation_id=m.conversation_id, message_id=m.message_id):
                    queued = self.store.outbox.add([MessageSeen.of(m)], telemetry.inject())
                if queued:  # 0: queued before a crash, only the emitted flag was lost
                    emitted.append(m.message_id)
        self.store.messages.mark_emitted(list(pending))
        return emitted

    # ------------------------------------------------------------ sending

    async def send(self, event: dict, carrier: dict | None = None) -> dict:
        """Send one approved draft exactly once; see the module docstring for the rules."""
        ev = DraftApproved.model_validate(event)
        with telemetry.span("browser.send", carrier, account=self.hash, draft_id=ev.draft_id,
                            conversation_id=ev.conversation_id):
            try:
                adapter = await self._adapter()
                async with self._page_lock:
                    try:
                        return await self._send(adapter, ev)
                    except LoggedOut:  # the session expired as we submitted: log in, check, resend
                        await adapter.login()
                        return await self._send(adapter, ev)
                    finally:   # a live site's inbox page was left: the waiting pass goes back
                        self._changed.set()
            except NeedsLogin as exc:  # kept, not dead-lettered: sent when the session resumes
                await self._defer_send(ev, exc)
                return {"status": "waiting_for_login", "site_message_id": None}

    async def _defer_send(self, ev: DraftApproved, exc: NeedsLogin) -> None:
        """A send met a login challenge (or came while waiting for one). Nothing was clicked (the
        challenge comes before the page is read), so a draft taken to `sending` without an anchor
        goes back to approved; the session sends its approved drafts once it resumes."""
        await asyncio.to_thread(self.store.drafts.unsend, ev.draft_id)
        if self.needs_login is None:
            await self.stop()
            await self._hand_to_person(exc)
        log.warning("send waits for a person to log in", extra={"draft_id": ev.draft_id, "account": self.hash})

    async def _send_waiting(self) -> None:
        """After a login handoff: send the approved drafts of this account that waited for it."""
        docs = await asyncio.to_thread(self.store.drafts.in_status, SENDABLE, account_id=self.account.id)
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

    async def _send(self, adapter: SiteAdapter, ev: DraftApproved) -> dict:
        drafts = self.store.drafts
        draft = await asyncio.to_thread(drafts.get, ev.draft_id)
        status = (draft or {}).get("status")
        if status == DraftStatus.SENT:
            return await self._acked(ev, draft.get("site_message_id"), "already_sent")
        if status in SENDABLE:   # (a held approval, still in its undo window, does not move)
            draft = await asyncio.to_thread(drafts.transition, ev.draft_id, SENDABLE, DraftStatus.SENDING)
        elif status != DraftStatus.SENDING:
            log.warning("not sending a draft that is not approved",
                        extra={"draft_id": ev.draft_id, "status": status})
            return {"status": "not_approved", "site_message_id": None}
        if draft is None:  # lost a race with another transition
            return {"status": "not_approved", "site_message_id": None}

        # what the contact wrote since the last pass is stored (and emitted) first: the draft
        # must still answer the conversation as it is now
        cursor = await asyncio.to_thread(self.store.accounts.cursor, self.account.id, ev.conversation_id)
        # the recorded inbox signature is cleared: the next pass reads this conversation once
        # more, so a message that came between this read and the submit is never hidden behind
        # our reply's preview ("Sent: ...", inbox_status)
        await self._read_conversation(adapter, ev.conversation_id, cursor, "")
        if not adapter.on_newest_page(ev.conversation_id):  # the read paged back by links
            await adapter.open_conversation(ev.conversation_id)
        # read_seen proves every message's direction or raises: no send on an unprovable page
        on_page = await adapter.read_seen()
        if "send_anchor" in draft:  # an earlier attempt may have clicked before a crash
            done = await self._earlier_attempt(adapter, ev, draft, on_page)
            if done is not None:
                return await self._acked(ev, done.site_message_id, "already_sent", done)
        newer, _ = await asyncio.to_thread(
            supersede_if_out_of_date, self.store, draft, (DraftStatus.SENDING, *SENDABLE),
            "before it was sent; a new draft answers the whole conversation")
        if newer:
            return self._out_of_date(ev, newer)
        anchor = adapter.anchor(on_page, ev.text)
        await asyncio.to_thread(drafts.transition, ev.draft_id, DraftStatus.SENDING, DraftStatus.SENDING,
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

    async def _earlier_attempt(self, adapter: SiteAdapter, ev: DraftApproved, draft: dict,
                               on_page: list) -> ChatMessage | None:
        """Did an earlier attempt of this draft send it? The reply found after its anchor, beyond
        the replies of the same text that other drafts sent since, means yes; none means no; an
        outgoing message after the anchor that no draft explains, or an anchor not found once on
        the page, means it cannot be proven: refuse (SendUnproven), never send twice."""
        previous = draft["send_anchor"]
        after = adapter.after_anchor(on_page, previous) if isinstance(previous, list) else None
        if after is None:
            why = ("the messages before it (its anchor) are not found exactly once on the page"
                   if isinstance(previous, list) else "its anchor has an old format")
            self._unproven(ev, adapter, why)
        since = draft.get("send_anchor_at") or draft.get("sending_at")
        others = await asyncio.to_thread(self.store.drafts.sent_since, ev.account_id,
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

    def _unproven(self, ev: DraftApproved, adapter: SiteAdapter, why: str) -> None:
        SENDS_UNPROVEN.inc(tags={"site": self.site.name})
        msg = (f"site {self.site.name!r}, conversation {ev.conversation_id} at {adapter.page.url}: "
               f"draft {ev.draft_id} may have been sent by an earlier attempt, and {why}: not sending "
               "again without proof; a person must check the conversation (the draft stays 'sending')")
        log.error(msg, extra={"draft_id": ev.draft_id, "site": self.site.name})
        raise SendUnproven(msg)

    async def _acked(self, ev: DraftApproved, site_message_id: str | None, status: str,
                     reply: ChatMessage | None = None) -> dict:
        """Record the reply (the send, the reply as the conversation's newest message, its outbox
        event, then the draft), idempotently."""
        if reply is not None:   # so a draft written after this send starts after this reply
            await asyncio.to_thread(self._record, [reply])
        await asyncio.to_thread(self.store.sends.record, idempotency_key=ev.idempotency_key,
                                draft_id=ev.draft_id, account_id=ev.account_id,
                                conversation_id=ev.conversation_id,
                                site_message_id=site_message_id, text=ev.text)
        event = ReplySent.make(draft_id=ev.draft_id, account_id=ev.account_id,
                               conversation_id=ev.conversation_id,
                               idempotency_key=ev.idempotency_key, site_message_id=site_message_id,
                               text=ev.text)
        await asyncio.to_thread(self.store.outbox.add, [event], telemetry.inject())
        await asyncio.to_thread(self.store.drafts.transition, ev.draft_id, DraftStatus.SENDING,
                                DraftStatus.SENT, site_message_id=site_message_id)
        log.info("reply %s", status, extra={"draft_id": ev.draft_id, "account": self.hash})
        return {"status": status, "site_message_id": site_message_id}


def _read_at(cursor: dict) -> datetime:
    """When the conversation was last read (UTC; never: the earliest time)."""
    read_at = cursor.get("read_at")
    if read_at is None:
        return datetime.min.replace(tzinfo=timezone.utc)
    return read_at if read_at.tzinfo is not None else read_at.replace(tzinfo=timezone.utc)


def _fault_exit_hook() -> None:
    if os.environ.get(EXIT_AFTER_SEND_CLICK) == "1":
        os._exit(17)


# the heartbeat has its own concurrency group: sends and polls waiting for the page can fill the
# default group's slots, and a session that cannot answer its ping looks hung to the supervisor
BrowserSession = ray.remote(num_cpus=0, concurrency_groups={"health": 2})(AccountSession)
