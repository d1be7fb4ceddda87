"""The router actor ("router"): the bus side of the pipeline, apart from the supervisor.

It owns the outbox relay, one consumer per kind (the queues the event registry derives, see
contracts/events.py) and the reconciler, and calls the actors that act on events directly:
AI drafts through `AIPool` (least-loaded, by name), sheet rows to the writer, sends to the
account's browser session, notifications to the notifier. The supervisor starts, watches and
restarts it like any other child; it never sees an event.

Targets are found by name (contracts/names.py) when needed. A call that fails because its actor
died forgets that handle at once and tells the supervisor (`child_died`), so routing skips the
dead actor and its restart begins without waiting for the next heartbeat; an actor that is not
running (restarting) is `Unavailable`: the consumer hands the event again after a delay, which
does not count against the delivery limit.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError

from actors.ai.pool import AIPool
from actors.bus import Consumer, OutboxRelay, declare_topology
from actors.bus.consumer import Dedupe, EffectKeyed, tune_gc
from actors.store import Store
from contracts import names, telemetry
from contracts.errors import Unavailable
from contracts.events import routes
from contracts.settings import Config
from supervisor.reconciler import Reconciler

log = logging.getLogger("replydesk.router")

DEAD_WATCH = "notify-dead"    # the notifier's copy of every dead letter (bound to the DLX)
# How each consumer kind is exactly-once per event id. One durable write per event: every
# consumer's effect has a unique key of its own, so no separate processed mark is stored (a
# redelivery reaches the handler, which finds its effect done). A new kind must choose here.
DEDUPE: dict[str, Dedupe] = {
    "ai": EffectKeyed("drafts._id (from the conversation's newest message, and a person's request) / "
                      "conversations (classified)"),
    "sheets": EffectKeyed("sheet_rows._id (the row id)"),
    "send": EffectKeyed("drafts.status + sends._id (the idempotency key)"),
    "notify": EffectKeyed("notifications._id (event id + target)"),
}


def dedupe_for(kind: str) -> Dedupe:
    """The de-duplication `kind` consumes with; a kind without one is a clear error, not a guess."""
    try:
        return DEDUPE[kind]
    except KeyError:
        raise ValueError(f"consumer kind {kind!r} has no de-duplication in supervisor/router.py "
                         f"DEDUPE: choose ProcessedMarks() or EffectKeyed(key)") from None


def notifying(config: Config) -> bool:
    return bool(config.notify_urls) and config.app.notify.enabled


def routes_for(config: Config) -> dict[str, list[str]]:
    """Consumer kind -> routing keys: the registry's, without `notify` when nobody is notified and
    without `sheets` when no sheet is configured (its rows stay derivable from MongoDB)."""
    return {k: v for k, v in routes().items() if (k != "notify" or notifying(config))
            and (k != "sheets" or config.settings.google_sheet_id is not None)}


def all_kinds() -> list[str]:
    """Every queue a namespace can have (what decommissioning removes)."""
    return [*routes(), DEAD_WATCH]


def actor_died(error: BaseException | None) -> bool:
    """The called actor itself died (RayActorError / ActorDiedError for the call). A RayTaskError
    is the actor's own method raising: even when what it raised is an actor error from a call it
    made to another actor (Ray's RayTaskError.as_instanceof_cause makes that error an instance of
    RayActorError too), the child is alive and is not reported dead."""
    return isinstance(error, RayActorError) and not isinstance(error, RayTaskError)


class Targets:
    """Actor handles by name, looked up when first needed and forgotten when found dead."""

    def __init__(self, namespace: str):
        self.namespace = namespace
        self._handles: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Any:
        with self._lock:
            handle = self._handles.get(name)
        if handle is None:
            try:
                handle = ray.get_actor(name, namespace=self.namespace)
            except ValueError:
                raise Unavailable(f"{name} is not running (restarting, or not started yet)") from None
            with self._lock:
                self._handles[name] = handle
        return handle

    def forget(self, name: str, handle: Any) -> None:
        with self._lock:
            if self._handles.get(name) is handle:
                del self._handles[name]


class Router:
    """Runs inside a Ray actor (`RouterActor`), started and restarted by the supervisor."""

    def __init__(self, config: Config):
        self.config = config
        self.ns = config.settings.namespace
        if ray.get_runtime_context().get_actor_id():   # its own process (not a test's): it consumes
            tune_gc()
        telemetry.setup_from(config, names.ROUTER)
        self.store = Store.from_config(config)
        self.routes = routes_for(config)
        self.targets = Targets(self.ns)
        self.ai = AIPool.by_name(config, self.ns, on_death=self._report_death)
        self.send_targets = {a.id: names.browser(a.site, a.id) for a in config.app.accounts}
        self._calls: dict[Any, tuple[str, Any]] = {}   # ref -> (target name, handle)
        self._calls_lock = threading.Lock()
        self._stop = threading.Event()
        self.reconciler = Reconciler(config, self.store, self._redrive)
        self._reconcile_lock = threading.Lock()
        self.relay: OutboxRelay | None = None
        self.consumers: list[Consumer] = []
        self._reconciling: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> dict[str, Any]:
        """Declare the topology, then relay and consume (idempotent: a second call is a no-op)."""
        if self.relay is None:
            declare_topology(self.config, self.routes)
            handlers = {"ai": self._to_ai, "sheets": self._to_sheets, "send": self._to_session,
                        "notify": self._to_notifier}
            self.consumers = [Consumer(self.config, kind, keys, handlers[kind], dedupe=dedupe_for(kind),
                                       on_settled=self._settled)
                              for kind, keys in self.routes.items()]
            if notifying(self.config) and self.config.app.notify.on_dead_letter:
                self.consumers.append(Consumer(self.config, DEAD_WATCH, [], self._dead_to_notifier,
                                               dedupe=dedupe_for("notify"), source="dead",
                                               on_settled=self._settled))
            self.relay = OutboxRelay(self.config)
            self.relay.start()
            for c in self.consumers:
                c.start()
            self._reconciling = threading.Thread(target=self._reconcile_loop, name="reconciler", daemon=True)
            self._reconciling.start()
            log.info("router started", extra={"queues": list(self.routes)})
        return {"queues": {c.kind: c.queue for c in self.consumers}}

    def ping(self) -> dict[str, Any]:
        return {"ok": True}

    def stats(self) -> dict[str, Any]:
        return {"consumers": {c.kind: dict(c.stats) for c in self.consumers},
                "ai_in_flight": self.ai.in_flight(), "reconciled": dict(self.reconciler.totals)}

    def stop(self) -> None:
        """Stop taking deliveries (running calls finish and are acked), stop relaying."""
        self._stop.set()
        for c in self.consumers:
            c.stop()
        if self.relay is not None:
            self.relay.stop()
        if self._reconciling is not None:
            self._reconciling.join(10)
        telemetry.flush()

    # ------------------------------------------------------------------ handlers
    def _to_ai(self, event, carrier):
        # a person's request (Retry AI, Redraft) carries what they asked for
        request = event.model_dump(mode="json") if event.type == "draft.requested" else None
        return self.ai.submit(event.account_id, event.conversation_id, carrier, request)          # AIPool tracks its own workers' deaths

    def _to_sheets(self, event, carrier):
        return self._call(names.SHEETS, lambda h: h.add.remote([event.model_dump(mode="json")], carrier))

    def _to_notifier(self, event, carrier):
        return self._call(names.NOTIFY, lambda h: h.add.remote(event.model_dump(mode="json"), carrier))

    def _dead_to_notifier(self, notice, carrier):
        if notice.consumer in ("notify", DEAD_WATCH):
            return None      # a notification that could not be delivered is not notified again
        return self._call(names.NOTIFY, lambda h: h.add.remote(notice.model_dump(mode="json"), carrier))

    def _to_session(self, event, carrier):
        name = self.send_targets.get(event.account_id)
        if name is None:
            raise RuntimeError(f"no account {event.account_id!r} in the config: cannot send its reply")
        # never replayed by Ray: the session's own idempotency check decides after a crash
        return self._call(name, lambda h: h.send.options(max_task_retries=0).remote(
            event.model_dump(mode="json"), carrier))

    def _call(self, name: str, submit) -> Any:
        handle = self.targets.get(name)
        ref = submit(handle)
        with self._calls_lock:
            if len(self._calls) > 100_000:        # settled calls of a lost connection
                self._calls.clear()
            self._calls[ref] = (name, handle)
        return ref

    def _settled(self, ref: Any, error: BaseException | None) -> None:
        """Consumer hook: a call is done. One that failed because its actor died forgets that
        handle and tells the supervisor at once."""
        with self._calls_lock:
            who = self._calls.pop(ref, None)
        if who is None or not actor_died(error):
            return
        name, handle = who
        self.targets.forget(name, handle)
        self._report_death(name)

    def _report_death(self, name: str) -> None:
        log.warning("an actor died while handling an event", extra={"child": name})
        try:
            sup = ray.get_actor(names.SUPERVISOR, namespace=self.ns)
            sup.child_died.remote(name)             # fire and forget
        except Exception:   # no supervisor (tests of the router alone): its heartbeat will tell
            log.debug("could not tell the supervisor", exc_info=True)

    # ------------------------------------------------------------------ anti-entropy
    def _redrive(self, account_id: str, conversation_id: str) -> dict[str, Any]:
        return ray.get(self.ai.submit(account_id, conversation_id, None), timeout=300)

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


RouterActor = ray.remote(num_cpus=0, max_concurrency=8)(Router)
