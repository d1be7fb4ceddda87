"""The supervisor actor: it supervises, nothing else.

It starts every child from the config (the router, the AI gate and workers, the browser sessions,
the sheets writer, the review desk, the notifier), schedules the browser sessions' passes,
watches every child with heartbeats and Ray's death errors, and restarts them one-for-one under
an intensity limit with backoff. Events never pass through it: the router child (supervisor/
router.py) relays the outbox, consumes the queues and calls the actors that act on them.

A control loop over small managers, each with its own `update(now)`, error handling and timing
metric (`replydesk_supervisor_update_seconds{manager}`): the children's life cycle
(supervisor/lifecycle.py), heartbeats (heartbeats.py), the browser pass schedule (passes.py) and
the browser hosts of the hosted layout (hosts.py). Every Ray call goes through supervisor/rayops.py.

Its own state is rebuilt on a restart: children are detached named actors adopted by name, the
outbox lives in MongoDB, and unacked deliveries come back from RabbitMQ to the router.

Locking: one lock (the fleet's) guards the children table. Under it only non-blocking work is
done (Ray submissions and zero-timeout polls); creating an actor never waits for a name to be
freed (it retries on a later tick), and stopping children (waiting on their stop) happens
outside it.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

import ray

from actors.store import Store
from contracts import names, telemetry
from contracts.errors import root_cause
from contracts.metrics import counter, gauge, histogram
from contracts.settings import Config
from supervisor import rayops
from supervisor.children import Child, ChildState, Fleet
from supervisor.heartbeats import Heartbeats
from supervisor.hosts import BrowserHosts
from supervisor.lifecycle import Lifecycle
from supervisor.passes import PassSchedule
from supervisor.router import all_kinds, notifying, routes_for  # noqa: F401  (re-exported)
from supervisor.specs import browser_nodes, child_specs

log = logging.getLogger("replydesk.supervisor")

CHILDREN = gauge("replydesk_children", "Children per state", ("state",))
UPDATE_SECONDS = histogram("replydesk_supervisor_update_seconds", "One manager's update in the monitor loop",
                           [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5], ("manager",))
UPDATE_ERRORS = counter("replydesk_supervisor_update_errors_total", "Manager updates that raised", ("manager",))

ALL_KINDS = all_kinds()      # every queue a namespace can have (what decommissioning removes)


class Manager(Protocol):
    name: str

    def update(self, now: float) -> None: ...


def update_all(managers: list[Manager], now: float) -> list[str]:
    """One round of the control loop: every manager's update, each timed; one that raises is
    logged and counted, and the others still run. Returns the names of those that raised."""
    failed = []
    for manager in managers:
        started = time.perf_counter()
        try:
            manager.update(now)
        except Exception:
            failed.append(manager.name)
            UPDATE_ERRORS.inc(tags={"manager": manager.name})
            log.exception("supervisor manager update failed", extra={"manager": manager.name})
        UPDATE_SECONDS.observe(time.perf_counter() - started, tags={"manager": manager.name})
    return failed


class Supervisor:
    """Runs inside a Ray actor (see `SupervisorActor`); every public method is a remote method."""

    TICK_S = 0.05

    def __init__(self, config: Config):
        telemetry.setup_from(config, names.SUPERVISOR)
        self.ns = config.settings.namespace
        self.store = Store.from_config(config)
        self.store.ensure_indexes()
        self.fleet = Fleet(config=config, namespace=self.ns)
        self.home_node = ray.get_runtime_context().get_node_id()  # where the control plane stays
        self.lifecycle = Lifecycle(self.fleet, self.store)
        self.passes = PassSchedule(self.fleet, self.lifecycle)
        self.managers = [self.lifecycle, Heartbeats(self.fleet, self.lifecycle), self.passes,
                         BrowserHosts(self.fleet, self.lifecycle, self.home_node, time.monotonic())]
        self._stop = threading.Event()
        with self.fleet.lock:
            for spec in child_specs(config, self.home_node, browser_nodes(config)):
                self.lifecycle.add(spec)
        self._monitor = threading.Thread(target=self._run, name="supervisor-monitor", daemon=True)
        self._monitor.start()
        log.info("supervisor started", extra={"children": list(self.children), "namespace": self.ns})

    @property
    def config(self) -> Config:
        return self.fleet.config

    @property
    def children(self) -> dict[str, Child]:
        return self.fleet.children

    # ------------------------------------------------------------------ monitor loop
    def _run(self) -> None:
        while not self._stop.is_set():
            update_all(self.managers, time.monotonic())
            time.sleep(self.TICK_S)

    # ------------------------------------------------------------------ remote API
    def status(self) -> dict[str, Any]:
        with self.fleet.lock:
            children = [c.snapshot() for c in self.children.values()]
        states: dict[str, int] = {}
        for c in children:
            states[c["state"]] = states.get(c["state"], 0) + 1
        for s, n in states.items():
            CHILDREN.set(n, tags={"state": s})
        return {"children": children, "states": states, "messages_seen": self.passes.messages_seen,
                "failed": [c["name"] for c in children if c["state"] == "failed"]}

    def wait_running(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """Block until every child is running (or failed); returns status()."""
        deadline = time.monotonic() + timeout_s
        with self.fleet.lock:
            while any(c.state not in (ChildState.RUNNING, ChildState.FAILED) for c in self.children.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.fleet.changed.wait(min(left, 0.5))
        return self.status()

    def child_died(self, name: str) -> None:
        """The router saw a call to `name` fail because its actor died: treat it as dead now (no
        waiting for its next heartbeat), so its restart begins at once."""
        with self.fleet.lock:
            child = self.children.get(name)
            handle = child.handle if child is not None and child.state is ChildState.RUNNING else None
        if handle is None:
            return
        try:        # outside the lock: the current incarnation may be alive (a predecessor died)
            rayops.result(rayops.call(handle, "ping"), timeout=2)
            return
        except Exception as exc:
            cause = exc
        with self.fleet.lock:
            child = self.children.get(name)
            if child is not None and child.handle is handle and child.state is ChildState.RUNNING:
                log.warning("child reported dead by the router", extra={"child": name})
                self.lifecycle.on_failure(child, root_cause(cause), died=True)

    def reconcile_now(self) -> dict[str, Any]:
        """One reconciler pass now, run by the router (see supervisor/reconciler.py)."""
        router = self.handle_of(names.ROUTER)
        if router is None:
            raise RuntimeError("the router is not running")
        return rayops.result(rayops.call(router, "reconcile_now"), timeout=600)

    def handle_of(self, name: str) -> Any:
        with self.fleet.lock:
            child = self.children.get(name)
            return child.handle if child else None

    def poll_now(self) -> None:
        """Ask every browser session for a pass now, or as soon as its current one ends."""
        with self.fleet.lock:
            waiting = [c.handle for c in self.children.values() if self.passes.ask(c)]
        for handle in waiting:   # a live site's pass may be waiting for its page to change: now
            rayops.call(handle, "wake")

    def reload(self, config: Config) -> dict[str, Any]:
        """Apply a new (already validated) config while running: start added accounts, stop
        removed ones, and restart exactly the children whose config changed (a changed site spec,
        account setting or tuning), with the new config and a fresh restart budget, so a `failed`
        session whose spec was fixed runs again. Unchanged children keep running untouched."""
        wanted = {s.name: s for s in child_specs(config, self.home_node, browser_nodes(config))}
        changes: dict[str, list[str]] = {"added": [], "removed": [], "restarted": [], "unchanged": []}
        with self.fleet.lock:      # decide; the old children are stopped outside the lock
            self.fleet.config = config
            leaving: list[Child] = []
            for name in [n for n in self.children if n not in wanted]:
                child = self.children.pop(name)
                child.state = ChildState.STOPPED
                leaving.append(child)
                changes["removed"].append(name)
            for name, spec in wanted.items():
                child = self.children.get(name)
                if child is None:
                    changes["added"].append(name)
                elif child.spec.fingerprint != spec.fingerprint:
                    child.state = ChildState.STOPPED
                    leaving.append(child)
                    changes["restarted"].append(name)
                else:
                    child.spec = spec  # same behaviour; a later restart uses the new config too
                    changes["unchanged"].append(name)
        self._stop_children(leaving)
        with self.fleet.lock:      # then start the new ones (never waits: see _spawn)
            for name in changes["added"] + changes["restarted"]:
                fresh = self.fleet.fresh(wanted[name])
                self.children[name] = fresh
                self.lifecycle.spawn_or_back_off(fresh)
            self.fleet.changed.notify_all()
        log.info("config reloaded", extra={k: v for k, v in changes.items() if k != "unchanged"})
        return {**self.status(), "reload": changes}

    def retry(self, name: str) -> dict[str, Any]:
        """A person's "retry now": a `failed` child is started again with a fresh restart budget;
        a session waiting for a login (or between passes) gets a pass at once."""
        with self.fleet.lock:
            child = self.children.get(name)
            if child is None:
                return {"name": name, "status": "unknown"}
            if child.state is ChildState.FAILED:
                fresh = self.fleet.fresh(child.spec)
                self.children[name] = fresh
                self.lifecycle.spawn_or_back_off(fresh)
                log.info("retry asked: restarting a failed child", extra={"child": name})
                child = fresh
            else:
                self.passes.ask(child)
            self.fleet.changed.notify_all()
            waiting, snapshot = (child.handle if child.poll_again else None), child.snapshot()
        if waiting is not None:   # a live site's pass may be waiting for its page to change
            rayops.call(waiting, "wake")
        return snapshot

    @staticmethod
    def _stop_children(children: list[Child], timeout_s: float = 15.0) -> None:
        """Stop and remove these children's actors, all at once (blocking: never called under
        the lock); one that does not stop within `timeout_s` is killed."""
        stopping: dict[Any, Child] = {}
        for child in children:
            child.state = ChildState.STOPPED
            if child.handle is not None:
                stopping[rayops.call(child.handle, "stop")] = child
        ready = rayops.settle(list(stopping), timeout_s)
        for ref, child in stopping.items():
            try:
                if ref not in ready:
                    raise TimeoutError(f"no answer in {timeout_s:.0f}s")
                rayops.result(ref)
            except Exception as exc:
                log.warning("child did not stop cleanly", extra={
                    "child": child.name, "error": f"{type(exc).__name__}: {exc}"[:300]})
            rayops.kill(child.handle)
            child.handle = None

    def shutdown(self) -> dict[str, Any]:
        """Stop the router first (it stops consuming and lets running calls finish), then every
        other child, the browser hosts last (sessions attach to them). The caller then kills
        this actor."""
        self._stop.set()
        self._monitor.join(10)
        status = self.status()
        with self.fleet.lock:
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
