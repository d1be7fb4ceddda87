"""The supervisor actor: it supervises, nothing else.

It starts every child from the config (the router, the AI gate and workers, the browser sessions,
the sheets writer, the review desk, the notifier), schedules the browser sessions' passes,
watches every child with heartbeats and Ray's death errors, and restarts them one-for-one under
an intensity limit with backoff. Events never pass through it: the router child (supervisor/
router.py) relays the outbox, consumes the queues and calls the actors that act on them.

Its own state is rebuilt on a restart: children are detached named actors adopted by name, the
outbox lives in MongoDB, and unacked deliveries come back from RabbitMQ to the router.

Locking: one lock guards the children table. Under it only non-blocking work is done (Ray
submissions and `ray.wait(timeout=0)`); creating an actor never waits for a name to be freed
(it retries on a later tick), and stopping children (`ray.get` on their stop) happens outside it.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

import ray

from actors.store import Store
from contracts import names, telemetry
from contracts.errors import PermanentError, describe, root_cause
from contracts.events import ChildFailed, NeedsLogin
from contracts.metrics import counter, gauge
from contracts.settings import Config
from supervisor.children import Child, ChildSpec, NameTaken, create_actor, find_actor, kill_quietly
from supervisor.policy import RestartPolicy
from supervisor.router import actor_died, all_kinds, notifying, routes_for  # noqa: F401  (re-exported)
from supervisor.specs import browser_nodes, child_specs

log = logging.getLogger("replydesk.supervisor")

RESTARTS = counter("replydesk_restarts_total", "Child actor restarts", ("child", "kind"))
CHILD_FAILED = counter("replydesk_children_failed_total", "Children given up on (intensity limit)",
                       ("child", "kind"))
CHILDREN = gauge("replydesk_children", "Children per state", ("state",))
MESSAGES = counter("replydesk_messages_seen_total", "New chat messages extracted", ("account",))
POLL_ERRORS = counter("replydesk_poll_errors_total", "Failed browser passes", ("child",))

ALL_KINDS = all_kinds()      # every queue a namespace can have (what decommissioning removes)
HOSTS_CHECK_S = 5.0          # how often the browser nodes are listed (hosted layout)
NAME_RETRY_S = 0.2           # a child whose name is still held by its dying predecessor: try again


def _is_death(exc: BaseException) -> bool:
    """The child itself died; an actor error raised inside its call (a RayTaskError) is not."""
    return actor_died(exc)


class Supervisor:
    """Runs inside a Ray actor (see `SupervisorActor`); every public method is a remote method."""

    TICK_S = 0.05

    def __init__(self, config: Config):
        self.config = config
        self.ns = config.settings.namespace
        telemetry.setup_from(config, names.SUPERVISOR)
        self.store = Store.from_config(config)
        self.store.ensure_indexes()
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self.children: dict[str, Child] = {}
        self._seen_messages = 0
        self.home_node = ray.get_runtime_context().get_node_id()  # where the control plane stays
        self._hosts_checked_at = time.monotonic()
        for spec in child_specs(config, self.home_node, browser_nodes(config)):
            self._add_child(spec)
        self._monitor = threading.Thread(target=self._run, name="supervisor-monitor", daemon=True)
        self._monitor.start()
        log.info("supervisor started", extra={"children": list(self.children), "namespace": self.ns})

    # ------------------------------------------------------------------ children
    def _add_child(self, spec: ChildSpec) -> None:
        child = Child(spec=spec, policy=RestartPolicy.from_conf(self.config.app.supervisor.restart))
        existing = find_actor(spec.name, self.ns)
        if existing is not None and self._alive(existing):
            child.handle = existing          # adopted: a restarted supervisor starts no duplicate
            child.start_ref = getattr(existing, spec.start_method).remote()
            child.state = "starting"
            log.info("adopted running child", extra={"child": spec.name})
        else:
            if existing is not None:
                kill_quietly(existing)
            self._spawn(child)
        self.children[spec.name] = child

    @staticmethod
    def _alive(handle: Any) -> bool:
        try:
            ray.get(handle.ping.remote(), timeout=5)
            return True
        except Exception:
            return False

    def _spawn(self, child: Child) -> None:
        """Create the child's actor and call its start method; never waits. If its name is
        still held by a dying predecessor, the predecessor is killed and the spawn is retried on
        a later tick (state `backoff`, not counted as a restart)."""
        try:
            child.handle = create_actor(child.spec, self.ns)
        except NameTaken:
            child.handle = None
            child.state = "backoff"
            child.restart_at = time.monotonic() + NAME_RETRY_S
            return
        child.start_ref = getattr(child.handle, child.spec.start_method).remote()
        child.state = "starting"
        child.ping_ref = child.poll_ref = None

    def _on_failure(self, child: Child, exc: BaseException, died: bool) -> None:
        child.last_error = describe(exc)
        now = time.monotonic()
        if not died:  # alive but its start failed: it cannot work, replace it
            kill_quietly(child.handle)
        child.handle = None
        child.start_ref = child.ping_ref = child.poll_ref = None
        child.died_at = now
        # A permanent error (bad credentials...) would fail the same way again: restarting it
        # only hammers the site, so the child is failed and reported at once.
        if not isinstance(exc, PermanentError) and child.policy.should_restart(child.spec.restart):
            delay = child.policy.record_restart()
            child.state = "backoff"
            child.restart_at = now + delay
            child.restarts += 1
            RESTARTS.inc(tags={"child": child.name, "kind": child.spec.kind})
            log.warning("child failed; restarting after backoff",
                        extra={"child": child.name, "error": child.last_error, "delay_s": round(delay, 3),
                               "recent_restarts": child.policy.recent_restarts})
        else:
            child.state = "failed"
            CHILD_FAILED.inc(tags={"child": child.name, "kind": child.spec.kind})
            self._announce_failure(child, exc)
            log.error("child failed permanently or exceeded its restart intensity; not restarted",
                      extra={"child": child.name, "error": child.last_error,
                             "max_restarts": child.policy.max_restarts,
                             "within_s": child.policy.within_s})
        self._changed.notify_all()

    def _announce_failure(self, child: Child, exc: BaseException) -> None:
        """Queue the event a person must hear about: `account.needs_login` when a session cannot
        log in, else `child.failed` (the notifier tells the reviewers)."""
        from actors.browser.adapter import LoginFailed
        if not notifying(self.config):
            return       # only the notifier takes these: without it they would go nowhere
        at = time.time()
        if isinstance(exc, LoginFailed) and child.spec.account_id:
            event: Any = NeedsLogin.make(child=child.name, account_id=child.spec.account_id,
                                         error=child.last_error or "", at=at)
        else:
            event = ChildFailed.make(child=child.name, kind=child.spec.kind,
                                     account_id=child.spec.account_id, error=child.last_error or "", at=at)
        try:
            self.store.outbox.add([event])
        except Exception:
            log.exception("could not queue the failure event", extra={"child": child.name})

    # ------------------------------------------------------------------ monitor loop
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with self._lock:
                    self._tick()
                if time.monotonic() - self._hosts_checked_at >= HOSTS_CHECK_S:
                    self._sync_hosts()
            except Exception:
                log.exception("supervisor tick failed")
            time.sleep(self.TICK_S)

    def _sync_hosts(self) -> None:
        """Hosted layout: a session host per alive browser node. A node that joined gets
        its host; the host of a node that left is dropped (its actor went with the node)."""
        self._hosts_checked_at = time.monotonic()
        nodes = browser_nodes(self.config)           # a GCS call: outside the lock
        wanted = {names.browser_host(n) for n in nodes}
        with self._lock:
            have = {n for n, c in self.children.items() if c.spec.kind == "host"}
            if wanted == have:
                return
            for name in have - wanted:
                log.warning("browser node left; dropping its host", extra={"child": name})
                self.children.pop(name).state = "stopped"
            for spec in child_specs(self.config, self.home_node, nodes):
                if spec.kind == "host" and spec.name not in have:
                    log.info("browser node joined; starting its host", extra={"child": spec.name})
                    child = Child(spec=spec, policy=RestartPolicy.from_conf(self.config.app.supervisor.restart))
                    self.children[spec.name] = child
                    self._spawn_or_back_off(child)
            self._changed.notify_all()

    def _tick(self) -> None:
        now = time.monotonic()
        hb = self.config.app.supervisor.heartbeat_s
        for child in list(self.children.values()):
            if child.state == "backoff" and now >= child.restart_at:
                try:
                    self._spawn(child)
                except Exception as exc:
                    self._on_failure(child, exc, died=True)
                continue
            if child.state == "starting" and child.start_ref is not None:
                done, _ = ray.wait([child.start_ref], timeout=0)
                if done:
                    try:
                        info = ray.get(done[0])
                        child.info = info if isinstance(info, dict) else {}
                        child.state = "running"
                        child.started_at = now
                        child.last_heartbeat = now
                        child.next_poll_at = now
                        child.start_ref = None
                        self._changed.notify_all()
                        log.info("child running", extra={"child": child.name})
                    except Exception as exc:
                        self._on_failure(child, root_cause(exc), died=_is_death(exc))
                continue
            if child.state != "running":
                continue
            # heartbeat
            if child.ping_ref is None and now >= child.next_ping_at:
                child.ping_ref = child.handle.ping.remote()
                child.ping_sent_at = now
            if child.ping_ref is not None:
                done, _ = ray.wait([child.ping_ref], timeout=0)
                if done:
                    child.ping_ref = None
                    child.next_ping_at = now + hb
                    try:
                        pong = ray.get(done[0])
                        child.last_heartbeat = now
                        child.heartbeats += 1
                        if isinstance(pong, dict) and "status" in pong:  # degraded + missing elements
                            child.info["health"] = {"status": pong["status"],
                                                    "missing": pong.get("missing", []),
                                                    **({"reason": pong["needs_login"]}
                                                       if pong.get("needs_login") else {})}
                    except Exception as exc:
                        self._on_failure(child, root_cause(exc), died=_is_death(exc))
                        continue
                elif now - child.ping_sent_at > 3 * hb + 5:
                    kill_quietly(child.handle)  # hung: no heartbeat
                    self._on_failure(child, TimeoutError(f"no heartbeat for {now - child.ping_sent_at:.1f}s"),
                                     died=True)
                    continue
            # browser sessions: one pass at a time, at the account's pace
            if child.spec.poll_interval_s is not None:
                self._poll(child, now)

    def _poll(self, child: Child, now: float) -> None:
        if child.poll_ref is None:
            if now >= child.next_poll_at:
                child.poll_ref = child.handle.poll.remote(None)
                child.poll_again = False
            return
        done, _ = ray.wait([child.poll_ref], timeout=0)
        if not done:
            return
        child.poll_ref = None
        # a pass asked for while this one ran may have come after the page was read: run it now
        child.next_poll_at = now if child.poll_again else now + child.spec.poll_interval_s
        child.poll_again = False
        try:
            result = ray.get(done[0])
            new = len(result.get("new", [])) if isinstance(result, dict) else 0
            if new:
                self._seen_messages += new
                MESSAGES.inc(new, tags={"account": child.spec.account_id or ""})
            if not (isinstance(result, dict) and result.get("needs_login")):  # the site was read
                child.info["last_poll"] = {"new": new, "at": time.time()}
            if isinstance(result, dict) and result.get("live"):
                child.next_poll_at = now   # a live site's next pass waits for its page to change
        except Exception as exc:
            cause = root_cause(exc)
            if _is_death(exc):
                self._on_failure(child, cause, died=True)
            else:  # the actor is alive; the error is logged with context and the pass retried later
                POLL_ERRORS.inc(tags={"child": child.name})
                child.last_error = f"{type(cause).__name__}: {str(cause)[:500]}"
                log.error("browser pass failed", extra={"child": child.name, "error": child.last_error})

    # ------------------------------------------------------------------ remote API
    def status(self) -> dict[str, Any]:
        with self._lock:
            children = [c.snapshot() for c in self.children.values()]
        states: dict[str, int] = {}
        for c in children:
            states[c["state"]] = states.get(c["state"], 0) + 1
        for s, n in states.items():
            CHILDREN.set(n, tags={"state": s})
        return {"children": children, "states": states, "messages_seen": self._seen_messages,
                "failed": [c["name"] for c in children if c["state"] == "failed"]}

    def wait_running(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """Block until every child is running (or failed); returns status()."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while any(c.state not in ("running", "failed") for c in self.children.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(min(left, 0.5))
        return self.status()

    def child_died(self, name: str) -> None:
        """The router saw a call to `name` fail because its actor died: treat it as dead now (no
        waiting for its next heartbeat), so its restart begins at once."""
        with self._lock:
            child = self.children.get(name)
            handle = child.handle if child is not None and child.state == "running" else None
        if handle is None:
            return
        try:        # outside the lock: the current incarnation may be alive (a predecessor died)
            ray.get(handle.ping.remote(), timeout=2)
            return
        except Exception as exc:
            cause = exc
        with self._lock:
            child = self.children.get(name)
            if child is not None and child.handle is handle and child.state == "running":
                log.warning("child reported dead by the router", extra={"child": name})
                self._on_failure(child, root_cause(cause), died=True)

    def reconcile_now(self) -> dict[str, Any]:
        """One reconciler pass now, run by the router (see supervisor/reconciler.py)."""
        router = self.handle_of(names.ROUTER)
        if router is None:
            raise RuntimeError("the router is not running")
        return ray.get(router.reconcile_now.remote(), timeout=600)

    def handle_of(self, name: str) -> Any:
        with self._lock:
            child = self.children.get(name)
            return child.handle if child else None

    def poll_now(self) -> None:
        """Ask every browser session for a pass now, or as soon as its current one ends."""
        with self._lock:
            for c in self.children.values():
                c.next_poll_at = 0.0
                c.poll_again = c.poll_ref is not None
            waiting = [c.handle for c in self.children.values() if c.poll_again]
        for handle in waiting:   # a live site's pass may be waiting for its page to change: now
            handle.wake.remote()

    def reload(self, config: Config) -> dict[str, Any]:
        """Apply a new (already validated) config while running: start added accounts, stop
        removed ones, and restart exactly the children whose config changed (a changed site spec,
        account setting or tuning), with the new config and a fresh restart budget, so a `failed`
        session whose spec was fixed runs again. Unchanged children keep running untouched."""
        wanted = {s.name: s for s in child_specs(config, self.home_node, browser_nodes(config))}
        changes: dict[str, list[str]] = {"added": [], "removed": [], "restarted": [], "unchanged": []}
        with self._lock:      # decide; the old children are stopped outside the lock
            self.config = config
            leaving: list[Child] = []
            for name in [n for n in self.children if n not in wanted]:
                child = self.children.pop(name)
                child.state = "stopped"
                leaving.append(child)
                changes["removed"].append(name)
            for name, spec in wanted.items():
                child = self.children.get(name)
                if child is None:
                    changes["added"].append(name)
                elif child.spec.fingerprint != spec.fingerprint:
                    child.state = "stopped"
                    leaving.append(child)
                    changes["restarted"].append(name)
                else:
                    child.spec = spec  # same behaviour; a later restart uses the new config too
                    changes["unchanged"].append(name)
        self._stop_children(leaving)
        with self._lock:      # then start the new ones (never waits: see _spawn)
            for name in changes["added"] + changes["restarted"]:
                fresh = Child(spec=wanted[name], policy=RestartPolicy.from_conf(config.app.supervisor.restart))
                self.children[name] = fresh
                self._spawn_or_back_off(fresh)
            self._changed.notify_all()
        log.info("config reloaded", extra={k: v for k, v in changes.items() if k != "unchanged"})
        return {**self.status(), "reload": changes}

    def _spawn_or_back_off(self, child: Child) -> None:
        """Spawn now; if that fails (the old actor's name not yet free...), the monitor retries."""
        try:
            self._spawn(child)
        except Exception as exc:
            self._on_failure(child, exc, died=True)

    def retry(self, name: str) -> dict[str, Any]:
        """A person's "retry now": a `failed` child is started again with a fresh restart budget;
        a session waiting for a login (or between passes) gets a pass at once."""
        with self._lock:
            child = self.children.get(name)
            if child is None:
                return {"name": name, "status": "unknown"}
            if child.state == "failed":
                fresh = Child(spec=child.spec, policy=RestartPolicy.from_conf(self.config.app.supervisor.restart))
                self.children[name] = fresh
                self._spawn_or_back_off(fresh)
                log.info("retry asked: restarting a failed child", extra={"child": name})
                child = fresh
            else:
                child.next_poll_at = 0.0
                child.poll_again = child.poll_ref is not None
            self._changed.notify_all()
            waiting, snapshot = (child.handle if child.poll_again else None), child.snapshot()
        if waiting is not None:   # a live site's pass may be waiting for its page to change
            waiting.wake.remote()
        return snapshot

    @staticmethod
    def _stop_children(children: list[Child], timeout_s: float = 15.0) -> None:
        """Stop and remove these children's actors, all at once (blocking: never called under
        the lock); one that does not stop within `timeout_s` is killed."""
        stopping: dict[Any, Child] = {}
        for child in children:
            child.state = "stopped"
            if child.handle is not None:
                stopping[child.handle.stop.remote()] = child
        ready, _ = ray.wait(list(stopping), num_returns=len(stopping), timeout=timeout_s) \
            if stopping else ([], [])
        for ref, child in stopping.items():
            try:
                if ref not in ready:
                    raise TimeoutError(f"no answer in {timeout_s:.0f}s")
                ray.get(ref)
            except Exception as exc:
                log.warning("child did not stop cleanly", extra={
                    "child": child.name, "error": f"{type(exc).__name__}: {exc}"[:300]})
            kill_quietly(child.handle)
            child.handle = None

    def shutdown(self) -> dict[str, Any]:
        """Stop the router first (it stops consuming and lets running calls finish), then every
        other child, the browser hosts last (sessions attach to them). The caller then kills
        this actor."""
        self._stop.set()
        self._monitor.join(10)
        status = self.status()
        with self._lock:
            children = list(self.children.values())
        # the router first (no new calls reach the others), the hosts last (sessions use them)
        stages = ([c for c in children if c.spec.kind == "router"],
                  [c for c in children if c.spec.kind not in ("router", "host")],
                  [c for c in children if c.spec.kind == "host"])
        for stage in stages:
            self._stop_children(stage)
        telemetry.flush()
        return status

    def ping(self) -> bool:
        return True


SupervisorActor = ray.remote(num_cpus=0, max_concurrency=16)(Supervisor)
