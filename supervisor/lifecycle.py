"""The children's life cycle: spawn (or adopt), notice a start that answered, and on a failure
restart one-for-one under the intensity limit with backoff, or give up and tell a person.

A permanent error (bad credentials, a wrong password) would fail the same way again: the child is
failed at once instead of hammering the site. Whoever sees a child fail (its start, a heartbeat,
a pass, the router) reports it here with `on_failure`.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from actors.store import Store
from contracts.errors import PermanentError, describe, root_cause
from contracts.events import ChildFailed, NeedsLogin
from contracts.metrics import counter
from supervisor import rayops
from supervisor.children import Child, ChildSpec, ChildState, Fleet
from supervisor.router import actor_died, notifying

log = logging.getLogger("replydesk.supervisor")

RESTARTS = counter("replydesk_restarts_total", "Child actor restarts", ("child", "kind"))
CHILD_FAILED = counter("replydesk_children_failed_total", "Children given up on (intensity limit)",
                       ("child", "kind"))
NAME_RETRY_S = 0.2           # a child whose name is still held by its dying predecessor: try again


class Lifecycle:
    name = "lifecycle"

    def __init__(self, fleet: Fleet, store: Store):
        self.fleet = fleet
        self.store = store

    def add(self, spec: ChildSpec) -> Child:
        """Adopt the running actor of that name (a restarted supervisor starts no duplicate), or
        spawn a new one; the child is in the table either way."""
        child = self.fleet.fresh(spec)
        existing = rayops.find(spec.name, self.fleet.namespace)
        if existing is not None and rayops.answers(existing, timeout=5):
            child.handle = existing
            child.start_ref = rayops.call(existing, spec.start_method)
            child.state = ChildState.STARTING
            log.info("adopted running child", extra={"child": spec.name})
        else:
            rayops.kill(existing)
            self.spawn(child)
        self.fleet.children[spec.name] = child
        return child

    def spawn(self, child: Child) -> None:
        """Create the child's actor and call its start method; never waits. If its name is
        still held by a dying predecessor, the predecessor is killed and the spawn is retried on
        a later tick (state `backoff`, not counted as a restart)."""
        try:
            child.handle = rayops.create(child.spec, self.fleet.namespace)
        except rayops.NameTaken:
            child.handle = None
            child.state = ChildState.BACKOFF
            child.restart_at = time.monotonic() + NAME_RETRY_S
            return
        child.start_ref = rayops.call(child.handle, child.spec.start_method)
        child.state = ChildState.STARTING
        child.ping_ref = child.poll_ref = None

    def spawn_or_back_off(self, child: Child) -> None:
        """Spawn now; if that fails (the old actor's name not yet free...), the monitor retries."""
        try:
            self.spawn(child)
        except Exception as exc:
            self.on_failure(child, exc, died=True)

    def update(self, now: float) -> None:
        """Spawn the children whose backoff is over; mark running those whose start answered."""
        with self.fleet.lock:
            for child in list(self.fleet.children.values()):
                if child.state is ChildState.BACKOFF and now >= child.restart_at:
                    self.spawn_or_back_off(child)
                elif child.state is ChildState.STARTING and child.start_ref is not None \
                        and rayops.ready(child.start_ref):
                    self._started(child, now)

    def _started(self, child: Child, now: float) -> None:
        try:
            info = rayops.result(child.start_ref)
        except Exception as exc:
            self.on_failure(child, root_cause(exc), died=actor_died(exc))
            return
        child.info = info if isinstance(info, dict) else {}
        child.state = ChildState.RUNNING
        child.started_at = child.last_heartbeat = child.next_poll_at = now
        child.start_ref = None
        self.fleet.changed.notify_all()
        log.info("child running", extra={"child": child.name})

    def on_failure(self, child: Child, exc: BaseException, died: bool) -> None:
        """The child failed (its actor `died`, or it is alive but cannot work): restart it after
        a backoff, or fail it for good and tell a person. Called under the fleet's lock."""
        child.last_error = describe(exc)
        now = time.monotonic()
        if not died:  # alive but its start failed: it cannot work, replace it
            rayops.kill(child.handle)
        child.handle = None
        child.start_ref = child.ping_ref = child.poll_ref = None
        child.died_at = now
        if not isinstance(exc, PermanentError) and child.policy.should_restart(child.spec.restart):
            delay = child.policy.record_restart()
            child.state = ChildState.BACKOFF
            child.restart_at = now + delay
            child.restarts += 1
            RESTARTS.inc(tags={"child": child.name, "kind": child.spec.kind})
            log.warning("child failed; restarting after backoff",
                        extra={"child": child.name, "error": child.last_error, "delay_s": round(delay, 3),
                               "recent_restarts": child.policy.recent_restarts})
        else:
            child.state = ChildState.FAILED
            CHILD_FAILED.inc(tags={"child": child.name, "kind": child.spec.kind})
            self._announce_failure(child, exc)
            log.error("child failed permanently or exceeded its restart intensity; not restarted",
                      extra={"child": child.name, "error": child.last_error,
                             "max_restarts": child.policy.max_restarts,
                             "within_s": child.policy.within_s})
        self.fleet.changed.notify_all()

    def _announce_failure(self, child: Child, exc: BaseException) -> None:
        """Queue the event a person must hear about: `account.needs_login` when a session cannot
        log in, else `child.failed` (the notifier tells the reviewers)."""
        from actors.browser.adapter import LoginFailed
        if not notifying(self.fleet.config):
            return       # only the notifier takes these: without it they would go nowhere
        at = time.time()
        event: Any
        if isinstance(exc, LoginFailed) and child.spec.account_id:
            event = NeedsLogin.make(child=child.name, account_id=child.spec.account_id,
                                    error=child.last_error or "", at=at)
        else:
            event = ChildFailed.make(child=child.name, kind=child.spec.kind,
                                     account_id=child.spec.account_id, error=child.last_error or "", at=at)
        try:
            self.store.outbox.add([event])
        except Exception:
            log.exception("could not queue the failure event", extra={"child": child.name})
