"""The browser pass schedule: each running browser session gets one pass at a time, at its
account's pace (`poll_interval_s`); a live site's next pass is asked for at once (the session
itself waits for its page to change). A pass asked for while one runs (`ask`) runs right after
it, since the running one may have read the page before the change it is asked for."""
from __future__ import annotations

import logging
import time

from contracts.errors import describe, root_cause
from contracts.metrics import counter
from supervisor import rayops
from supervisor.children import Child, Fleet
from supervisor.lifecycle import Lifecycle
from supervisor.router import actor_died

log = logging.getLogger("replydesk.supervisor")

MESSAGES = counter("replydesk_messages_seen_total", "New chat messages extracted", ("account",))
POLL_ERRORS = counter("replydesk_poll_errors_total", "Failed browser passes", ("child",))


class PassSchedule:
    name = "passes"

    def __init__(self, fleet: Fleet, lifecycle: Lifecycle):
        self.fleet = fleet
        self.lifecycle = lifecycle
        self.messages_seen = 0

    def update(self, now: float) -> None:
        with self.fleet.lock:
            for child in self.fleet.running():
                if child.spec.poll_interval_s is not None:
                    self._schedule(child, now)

    @staticmethod
    def ask(child: Child) -> bool:
        """A pass as soon as possible; True when one is running (its session should be woken:
        a live site's pass may be waiting for its page to change). Under the fleet's lock."""
        child.next_poll_at = 0.0
        child.poll_again = child.poll_ref is not None
        return child.poll_again

    def _schedule(self, child: Child, now: float) -> None:
        if child.poll_ref is None:
            if now >= child.next_poll_at:
                child.poll_ref = rayops.call(child.handle, "poll", None)
                child.poll_again = False
            return
        if not rayops.ready(child.poll_ref):
            return
        ref, child.poll_ref = child.poll_ref, None
        child.next_poll_at = now if child.poll_again else now + child.spec.poll_interval_s
        child.poll_again = False
        try:
            result = rayops.result(ref)
        except Exception as exc:
            if actor_died(exc):
                self.lifecycle.on_failure(child, root_cause(exc), died=True)
            else:  # the actor is alive; the error is logged with context and the pass retried later
                POLL_ERRORS.inc(tags={"child": child.name})
                child.last_error = describe(exc)
                log.error("browser pass failed", extra={"child": child.name, "error": child.last_error})
            return
        result = result if isinstance(result, dict) else {}
        new = len(result.get("new", []))
        if new:
            self.messages_seen += new
            MESSAGES.inc(new, tags={"account": child.spec.account_id or ""})
        if not result.get("needs_login"):  # the site was read
            child.info["last_poll"] = {"new": new, "at": time.time()}
        if result.get("live"):
            child.next_poll_at = now   # a live site's next pass waits for its page to change
