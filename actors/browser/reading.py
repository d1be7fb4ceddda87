"""A session's reading: passes over the inbox, a live site's watched inbox, and catching up on
each changed conversation from its cursor.

Messages and their MessageSeen outbox rows are stored BEFORE the conversation cursor moves;
messages are flagged `emitted` once their outbox row exists, so a crash anywhere re-extracts, the
store drops what it has (by id, and by content key when a markup change gave the same messages new
ids) and the un-emitted ones are emitted. Stored order is the conversation's order (a
per-conversation sequence), whatever order pages were read in.

Live sites (`live: true` in the spec): the inbox page stays open between passes and its own
content changes (pushed by the site) wake the pass, which reads that page as it is and then only
the conversations whose items changed; the inbox is reloaded only when the page was left (to read
or send) or every `safety_poll_s`, which finds whatever a dead push channel missed.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime, timezone

from actors.browser.errors import NeedsLogin
from actors.browser.lifecycle import SessionLife
from actors.browser.selectors import SelectorNotFound
from actors.browser.site import Site
from contracts import telemetry
from contracts.events import ChatMessage, MessageSeen


class SessionReader:
    def __init__(self, life: SessionLife):
        self.life = life
        self.account = life.account
        self.site = life.site
        self.hash = life.hash
        self.store = life.store
        self.clock = life.clock

    async def poll(self, carrier: dict | None = None) -> dict:
        """One pass over the inbox; returns the ids of the messages emitted as new."""
        life = self.life
        waiting = {"new": [], "conversations": 0, "needs_login": True}
        if life.needs_login is not None:
            await life.start()  # resumes when a person has stored a login state meanwhile
            if life.needs_login is not None:
                return waiting
        try:
            return await self._poll(carrier)
        except NeedsLogin as exc:  # the session expired and logging in again met a challenge
            await life.stop()
            if life.needs_login is None:
                await life.hand_to_person(exc)
            return waiting

    async def _until_changed(self, adapter: Site) -> Site:
        """A live site: wait (the page not held) until its open inbox changes, the safety reload
        is due or the page is gone. Returns the adapter to read with (opened again if the browser
        went while it waited)."""
        changed = self.life.changed
        if adapter.on_inbox() and not changed.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), max(0.0, self.life.reload_at - time.monotonic()))
        changed.clear()   # before the read: a change during it wakes the next pass
        return await self.life.site_now()

    async def _poll(self, carrier: dict | None) -> dict:
        life = self.life
        adapter = await life.site_now()
        live = self.site.live
        reload = True
        if live:
            adapter = await self._until_changed(adapter)
            # the page is read as it is when it is the watched inbox and no safety reload is due
            reload = time.monotonic() >= life.reload_at or not adapter.on_inbox()
        new: list[str] = []
        read = 0
        with telemetry.span("browser.poll", carrier, account=self.hash, site=self.site.name):
            # the page is held per step (the inbox, then each conversation), never for a whole
            # pass: an approved send waits for one conversation's read at most, not the pass
            async with self._health_pass():
                async with life.page_lock:
                    items = await adapter.inbox(reload=reload)
                if live and reload:
                    life.reload_at = time.monotonic() + self.account.safety_poll_s
                failed: SelectorNotFound | None = None
                for item in await self._this_pass(items):
                    try:
                        async with life.page_lock:   # the cursor too: a send may have moved it
                            cursor = await self.store.accounts.cursor(self.account.id, item.conversation_id)
                            if cursor and item.unchanged_since(cursor.get("signature")) \
                                    and not self._due(cursor):
                                continue
                            read += 1
                            new += await self.read_conversation(adapter, item.conversation_id,
                                                                cursor, item.signature)
                    except SelectorNotFound as exc:  # this conversation waits; the others go on
                        failed = failed or exc
                        continue
                if live and read:
                    # back to the inbox, watched again; what changed while the page was away is
                    # on it now, so the next pass reads it at once (no reload)
                    async with life.page_lock:
                        if not adapter.on_inbox():
                            await adapter.open_inbox()
                    life.changed.set()
        life.last_poll_at = time.time()
        if failed is not None:  # the cursor of that conversation did not move: nothing is lost
            raise failed
        return {"new": new, "conversations": len(items), "live": live}

    async def read_conversation(self, adapter: Site, conversation_id: str,
                                cursor: dict | None, signature: str | None) -> list[str]:
        """Read a conversation's messages after the cursor, store and emit them, then move the
        cursor (messages first: a crash in between re-reads, never loses)."""
        msgs = await adapter.conversation(conversation_id, cursor, self.account.max_pages)
        new = await self.record(msgs)
        last = msgs[-1] if msgs else None
        cursor = cursor or {}
        await self.store.accounts.set_cursor(
            self.account.id, conversation_id,
            signature=signature if signature is not None else cursor.get("signature"),
            read_at=self.clock(),
            last_message_id=last.message_id if last else cursor.get("last_message_id"),
            last_content_key=last.content_key if last else cursor.get("last_content_key"),
            last_day=adapter.day_of(last) if last else cursor.get("last_day"))
        return new

    @contextlib.asynccontextmanager
    async def _health_pass(self):
        health = self.life.health
        health.begin_pass()
        try:
            yield
        finally:
            health.end_pass()

    async def _this_pass(self, items: list) -> list:
        """What this pass reads: every conversation whose inbox item changed (inbox order; an
        unread badge that only went away is no change, see InboxItem.unchanged_since), then
        at most `revisits_per_pass` unchanged-looking ones due for a revisit, the longest unread
        first. A big inbox is revisited over several passes, so a new message never waits for a
        pass that re-reads them all."""
        cursors = await self.store.accounts.cursors_of(self.account.id,
                                          [i.conversation_id for i in items])
        changed, due = [], []
        for item in items:
            cursor = cursors.get(item.conversation_id)
            if not cursor or not item.unchanged_since(cursor.get("signature")):
                changed.append(item)
                continue
            if cursor.get("signature") != item.signature:  # only the unread badge went (read):
                await self.store.accounts.set_cursor(      # a badge next time is a change again
                    self.account.id, item.conversation_id,
                    signature=item.signature)
            if self._due(cursor):
                due.append(item)
        due.sort(key=lambda i: _read_at(cursors[i.conversation_id]))
        return changed + due[:self.account.revisits_per_pass]

    def _due(self, cursor: dict) -> bool:
        """An unchanged-looking conversation is read again once revisit_s has passed."""
        return (self.clock() - _read_at(cursor)).total_seconds() >= self.account.revisit_s

    async def record(self, msgs: list[ChatMessage]) -> list[str]:
        """Store messages, emit MessageSeen for incoming ones not yet emitted, flag them emitted."""
        msgs = await self.store.messages.insert(msgs, keep_known=True)
        pending = await self.store.messages.unemitted([m.message_id for m in msgs])
        emitted = []
        for m in msgs:
            if m.message_id not in pending:
                continue
            if m.direction == "in":
                with telemetry.span("browser.message_seen", root=True, account=self.hash,
                                    conversation_id=m.conversation_id, message_id=m.message_id):
                    queued = await self.store.outbox.add([MessageSeen.of(m)], telemetry.inject())
                if queued:  # 0: queued before a crash, only the emitted flag was lost
                    emitted.append(m.message_id)
        await self.store.messages.mark_emitted(list(pending))
        return emitted


def _read_at(cursor: dict) -> datetime:
    """When the conversation was last read (UTC; never: the earliest time)."""
    read_at = cursor.get("read_at")
    if read_at is None:
        return datetime.min.replace(tzinfo=timezone.utc)
    return read_at if read_at.tzinfo is not None else read_at.replace(tzinfo=timezone.utc)
