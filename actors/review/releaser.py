"""The releaser: ends the undo window of held approvals (see decisions.py).

Each pass takes the approvals whose `release_at` has passed, releases each with a conditional
update (it fails if an undo won meanwhile) and only then queues its `draft.approved` event in the
outbox (idempotent: the event id is the draft's). A release whose event could not be queued is
retried on the next pass; after a crash between the two, the desk's start-up
(`Reviewer.requeue_approved`) queues it. So an approval is sent once, never twice, and an undo
that won means nothing is sent.

It runs inside the desk's aiohttp application (`releasing`, a cleanup context), so the Ray
actor and the desk served directly (tests, demo) both run it. `clock` is injected.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from actors.store import AsyncStore
from contracts.events import DraftApproved, utcnow
from contracts.ids import account_hash

log = logging.getLogger("replydesk.review.releaser")

POLL_S = 0.2     # how late past its window an approval may be released
STOP_WAIT_S = 5.0


class Releaser:
    def __init__(self, store: AsyncStore, clock: Callable[[], datetime] = utcnow):
        self.store = store
        self.clock = clock
        self._unqueued: list[dict[str, Any]] = []   # released, event not yet in the outbox

    async def run_once(self) -> list[str]:
        """Release every due approval; the ids of the drafts whose events were queued."""
        now = self.clock()
        for due in await self.store.drafts.due_for_release(now):
            doc = await self.store.drafts.release(due["_id"], now)
            if doc is not None:            # else an undo (or another releaser) won
                self._unqueued.append(doc)
        if not self._unqueued:
            return []
        docs, self._unqueued = self._unqueued, []
        try:
            await self.store.outbox.add([DraftApproved.of_draft(d) for d in docs])
        except Exception:
            self._unqueued = docs + self._unqueued   # queued again on the next pass
            raise
        for d in docs:
            log.info("approval released to be sent", extra={
                "draft_id": d["_id"], "account": account_hash(d["account_id"])})
        return [d["_id"] for d in docs]


def releasing(store: AsyncStore, clock: Callable[[], datetime] = utcnow, poll_s: float = POLL_S):
    """An aiohttp cleanup context running a Releaser every `poll_s` while the app serves."""

    async def run(app: web.Application) -> AsyncIterator[None]:
        releaser = Releaser(store, clock)

        async def loop() -> None:
            while True:
                try:
                    await releaser.run_once()
                except Exception:   # the DB or a bug: logged, tried again (nothing is lost)
                    log.exception("releasing approved drafts failed; trying again")
                    await asyncio.sleep(1.0)
                await asyncio.sleep(poll_s)

        task = asyncio.create_task(loop(), name="review-releaser")
        yield
        task.cancel()
        # a pass cancelled inside a database call closes that connection first; the desk's
        # shutdown waits for it a bounded time (a held approval left is released by the next desk)
        done, _ = await asyncio.wait({task}, timeout=STOP_WAIT_S)
        if not done:
            log.warning("the releaser did not stop within %.0f s; the desk stops without it", STOP_WAIT_S)

    return run
