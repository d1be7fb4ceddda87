"""The supervisor actor.

It starts every child from the config (browser sessions, AI workers, the sheets writer, the review
desk), polls the browser sessions, watches every child with heartbeats and Ray's death errors,
restarts them one-for-one under an intensity limit with backoff, relays the outbox to RabbitMQ and
consumes the queues, routing each event to the actor that acts on it.

Its own state is rebuilt on a restart: children are detached named actors adopted by name, the
outbox and processed-event keys live in MongoDB, and unacked deliveries come back from RabbitMQ.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

from actors.ai.gate import GATE_NAME
from actors.bus import Consumer, OutboxRelay, declare_topology
from actors.store import Store
from contracts import telemetry
from contracts.errors import PermanentError, Unavailable, root_cause
from contracts.metrics import counter, gauge
from contracts.events import ChildFailed, NeedsLogin
from contracts.settings import Config
from supervisor.children import Child, ChildSpec, create_actor, find_actor, kill_quietly
from supervisor.policy import RestartPolicy
from supervisor.reconciler import Reconciler
from supervisor.specs import child_specs

log = logging.getLogger("replydesk.supervisor")

RESTARTS = counter("replydesk_restarts_total", "Child actor restarts", ("child", "kind"))
CHILD_FAILED = counter("replydesk_children_failed_total", "Children given up on (intensity limit)",
                       ("child", "kind"))
CHILDREN = gauge("replydesk_children", "Children per state", ("state",))
MESSAGES = counter("replydesk_messages_seen_total", "New chat messages extracted", ("account",))
POLL_ERRORS = counter("replydesk_poll_errors_total", "Failed browser passes", ("child",))

# Which consumer kind takes which events.
ROUTES: dict[str, list[str]] = {
    "ai": ["message.seen"],
    "sheets": ["message.seen", "draft.created", "draft.approved", "draft.rejected", "reply.sent"],
    "send": ["draft.approved"],
}
# Reviewer notifications, when NOTIFY_URLS is set: a queue for the events a person should hear
# about, and one bound to the dead-letter exchange (a copy of every dead letter).
NOTIFY_ROUTES: dict[str, list[str]] = {"notify": ["draft.created", "account.needs_login", "child.failed"]}
DEAD_WATCH = "notify-dead"
ALL_KINDS = [*ROUTES, *NOTIFY_ROUTES, DEAD_WATCH]      # what decommissioning removes


def notifying(config: Config) -> bool:
    return bool(config.notify_urls) and config.app.notify.enabled


def routes_for(config: Config) -> dict[str, list[str]]:
    return {**ROUTES, **(NOTIFY_ROUTES if notifying(config) else {})}


def _is_death(exc: BaseException) -> bool:
    return isinstance(exc, (ActorDiedError, RayActorError, ActorUnavailableError))


class Supervisor:
    """Runs inside a Ray actor (see `SupervisorActor`); every public method is a remote method."""

    TICK_S = 0.05

    def __init__(self, config: Config):
        self.config = config
        self.ns = config.settings.namespace
        telemetry.setup_from(config, "supervisor")
        self.store = Store.from_config(config)
        self.store.ensure_indexes()
        self.routes = routes_for(config)
        declare_topology(config, self.routes)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self.children: dict[str, Child] = {}
        self._ai_refs: dict[str, list] = {}
        # refs of the calls events made, by the child that runs them: a call that fails because
        # its actor died marks that child dead at once (no waiting for its next heartbeat)
        self._calls: dict[Any, tuple[str, Any]] = {}
        self._calls_lock = threading.Lock()
        self._seen_messages = 0
        self.home_node = ray.get_runtime_context().get_node_id()  # where the control plane stays
        for spec in child_specs(config, self.home_node):
            self._add_child(spec)
        self.relay = OutboxRelay(config)
        self.consumers = [Consumer(config, kind, keys, getattr(self, f"_route_{kind}"),
                                   on_settled=self._settled)
                          for kind, keys in self.routes.items()]
        if notifying(config) and config.app.notify.on_dead_letter:
            self.consumers.append(Consumer(config, DEAD_WATCH, [], self._route_notify_dead,
                                           source="dead", on_settled=self._settled))
        self.reconciler = Reconciler(config, self.store, self._redrive)
        self._reconcile_lock = threading.Lock()
        self._monitor = threading.Thread(target=self._run, name="supervisor-monitor", daemon=True)
        self._monitor.start()
        self._reconciling = threading.Thread(target=self._reconcile_loop, name="supervisor-reconciler",
                                             daemon=True)
        self._reconciling.start()
        self.relay.start()
        for c in self.consumers:
            c.start()
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
        child.handle = create_actor(child.spec, self.ns)
        child.start_ref = getattr(child.handle, child.spec.start_method).remote()
        child.state = "starting"
        child.ping_ref = child.poll_ref = None

    def _on_failure(self, child: Child, exc: BaseException, died: bool) -> None:
        child.last_error = f"{type(exc).__name__}: {str(exc)[:500]}"
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
            except Exception:
                log.exception("supervisor tick failed")
            time.sleep(self.TICK_S)

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
        except Exception as exc:
            cause = root_cause(exc)
            if _is_death(exc):
                self._on_failure(child, cause, died=True)
            else:  # the actor is alive; the error is logged with context and the pass retried later
                POLL_ERRORS.inc(tags={"child": child.name})
                child.last_error = f"{type(cause).__name__}: {str(cause)[:500]}"
                log.error("browser pass failed", extra={"child": child.name, "error": child.last_error})

    # ------------------------------------------------------------------ routing (consumer threads)
    def _running(self, predicate) -> list[Child]:
        """Running children matching predicate. None running: `Unavailable` while one restarts
        (the consumer hands the event again after a delay, not counted as a failed delivery),
        a plain error when every one has failed (counted: a person must act)."""
        with self._lock:
            found = [c for c in self.children.values() if predicate(c) and c.state == "running"]
            if found:
                return found
            pending = [c.name for c in self.children.values() if predicate(c) and c.state != "failed"]
        if pending and not self._stop.is_set():
            raise Unavailable(f"no running child for this event: {', '.join(pending)} restarting")
        raise RuntimeError("no running child for this event (every candidate has failed)")

    def _call(self, child: Child, ref: Any) -> Any:
        with self._calls_lock:
            if len(self._calls) > 100_000:        # settled calls of a lost connection
                self._calls.clear()
            self._calls[ref] = (child.name, child.handle)
        return ref

    def _settled(self, ref: Any, error: BaseException | None) -> None:
        """Consumer hook: a call is done. If it failed because its actor died, that child is
        treated as dead now, so routing skips it and its restart starts at once."""
        with self._calls_lock:
            who = self._calls.pop(ref, None)
        if who is None or error is None or not _is_death(error):
            return
        name, handle = who
        with self._lock:
            child = self.children.get(name)
            if child is not None and child.handle is handle and child.state == "running":
                log.warning("child died while handling an event", extra={
                    "child": name, "error": f"{type(error).__name__}: {str(error)[:200]}"})
                self._on_failure(child, root_cause(error), died=True)

    def _route_ai(self, event, carrier):
        return self._dispatch_ai(event.account_id, event.conversation_id, carrier)

    def _dispatch_ai(self, account_id: str, conversation_id: str, carrier: dict | None):
        workers = self._running(lambda c: c.spec.kind == "ai")
        best, best_load = workers[0], None
        for w in workers:  # least loaded: one slow call never blocks the rest
            refs = self._ai_refs.setdefault(w.name, [])
            if refs:
                _, refs[:] = ray.wait(refs, num_returns=len(refs), timeout=0)
            if best_load is None or len(refs) < best_load:
                best, best_load = w, len(refs)
        ref = best.handle.draft.remote(account_id, conversation_id, carrier)
        self._ai_refs[best.name].append(ref)
        return self._call(best, ref)

    # ------------------------------------------------------------------ anti-entropy
    def _redrive(self, account_id: str, conversation_id: str) -> dict[str, Any]:
        ref = self._dispatch_ai(account_id, conversation_id, None)
        try:
            return ray.get(ref, timeout=300)
        finally:
            self._settled(ref, None)

    def _reconcile_loop(self) -> None:
        conf = self.config.app.supervisor.reconcile
        while not self._stop.wait(conf.interval_s):
            if conf.enabled:
                try:
                    self.reconcile_now()
                except Exception:
                    log.exception("reconciler pass failed")

    def reconcile_now(self) -> dict[str, Any]:
        """One reconciler pass now (also what the periodic loop runs); what it repaired."""
        with self._reconcile_lock:
            return self.reconciler.run_once()

    def _route_sheets(self, event, carrier):
        (writer,) = self._running(lambda c: c.spec.kind == "sheets")
        return self._call(writer, writer.handle.add.remote([event.model_dump(mode="json")], carrier))

    def _route_notify(self, event, carrier):
        (notifier,) = self._running(lambda c: c.spec.kind == "notify")
        return self._call(notifier, notifier.handle.add.remote(event.model_dump(mode="json"), carrier))

    def _route_notify_dead(self, notice, carrier):
        if notice.consumer in ("notify", DEAD_WATCH):
            return None      # a notification that could not be delivered is not notified again
        (notifier,) = self._running(lambda c: c.spec.kind == "notify")
        return self._call(notifier, notifier.handle.add.remote(notice.model_dump(mode="json"), carrier))

    def _route_send(self, event, carrier):
        (session,) = self._running(lambda c: c.spec.kind == "browser" and c.spec.account_id == event.account_id)
        # never replayed by Ray: the actor's own idempotency check decides after a crash
        return self._call(session, session.handle.send.options(max_task_retries=0).remote(
            event.model_dump(mode="json"), carrier))

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

    def reload(self, config: Config) -> dict[str, Any]:
        """Apply a new (already validated) config while running: start added accounts, stop
        removed ones, and restart exactly the children whose config changed (a changed site spec,
        account setting or tuning), with the new config and a fresh restart budget, so a `failed`
        session whose spec was fixed runs again. Unchanged children keep running untouched."""
        with self._lock:
            self.config = config
            wanted = {s.name: s for s in child_specs(config, self.home_node)}
            changes: dict[str, list[str]] = {"added": [], "removed": [], "restarted": [], "unchanged": []}
            for name in [n for n in self.children if n not in wanted]:
                self._stop_child(self.children.pop(name))
                changes["removed"].append(name)
            for name, spec in wanted.items():
                child = self.children.get(name)
                if child is None:
                    self._add_child(spec)
                    changes["added"].append(name)
                elif child.spec.fingerprint != spec.fingerprint:
                    self._stop_child(child)
                    fresh = Child(spec=spec, policy=RestartPolicy.from_conf(config.app.supervisor.restart))
                    self.children[name] = fresh
                    self._spawn_or_back_off(fresh)
                    changes["restarted"].append(name)
                else:
                    child.spec = spec  # same behaviour; a later restart uses the new config too
                    changes["unchanged"].append(name)
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
            return child.snapshot()

    def _stop_child(self, child: Child) -> None:
        child.state = "stopped"
        if child.handle is not None:
            try:
                ray.get(child.handle.stop.remote(), timeout=15)
            except Exception:
                log.warning("child did not stop cleanly", extra={"child": child.name})
            kill_quietly(child.handle)
        child.handle = None

    def shutdown(self) -> dict[str, Any]:
        """Stop consuming, flush, stop every child. The caller then kills this actor."""
        self._stop.set()
        for c in self.consumers:
            c.stop()
        self.relay.stop()
        self._monitor.join(10)
        self._reconciling.join(10)
        status = self.status()
        with self._lock:
            for child in self.children.values():
                self._stop_child(child)
        kill_quietly(find_actor(GATE_NAME, self.ns))  # the AI workers' shared gate
        self._stop_browser_hosts()
        telemetry.flush()
        return status

    def _stop_browser_hosts(self) -> None:
        """The shared-browser layout starts one Chromium host actor per node: stop them too."""
        for node in ray.nodes():
            host = find_actor(f"browser-host:{node['NodeID'][:12]}", self.ns)
            if host is None:
                continue
            try:
                ray.get(host.stop.remote(), timeout=15)
            except Exception:
                log.warning("browser host did not stop cleanly", extra={"node": node["NodeID"][:12]})
            kill_quietly(host)

    def ping(self) -> bool:
        return True


SupervisorActor = ray.remote(num_cpus=0, max_concurrency=16)(Supervisor)
