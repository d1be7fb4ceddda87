"""AIPool: the gate plus `app.ai.workers` AIWorker actors, with least-loaded dispatch.

Each worker is an async actor running up to `app.ai.concurrency` drafts at once, so one slow call
never blocks the others; `submit` picks the worker with the fewest calls in flight (counted here,
released when each call's ObjectRef completes). Actors are named ("ai:gate", "ai:<i>") in the
namespace, so the dashboard shows them and a restarted driver re-attaches with `from_existing`.

It is the production dispatch path: the router attaches to the supervisor's workers `by_name`.
Then a worker is looked up by name when needed, and a call that fails because its worker died
forgets that handle at once (`on_death` is told), so the next draft goes to a live worker and a
restarted one is found again by name; with none running, `submit` raises `Unavailable` (the
consumer hands the event again after a delay).
"""
from __future__ import annotations

import itertools
import threading
from typing import Any, Callable

import ray
from ray.exceptions import RayActorError

from actors.ai.gate import GATE_NAME, get_or_create_gate
from actors.ai.worker import AIWorker
from contracts import names
from contracts.errors import Unavailable
from contracts.settings import Config


class AIPool:
    def __init__(self, gate: Any, workers: list[Any], *, namespace: str | None = None,
                 on_death: Callable[[str], None] | None = None):
        self.gate = gate
        self.workers = workers
        self.namespace = namespace             # set: handles missing or dead are looked up by name
        self.on_death = on_death
        self._load = [0] * len(workers)
        self._lock = threading.Lock()
        self._rr = itertools.count()

    @classmethod
    def by_name(cls, config: Config, namespace: str | None = None,
                on_death: Callable[[str], None] | None = None) -> "AIPool":
        """Attach to workers someone else runs (the supervisor), looked up by name when needed."""
        ns = namespace or config.settings.namespace
        return cls(None, [None] * config.app.ai.workers, namespace=ns, on_death=on_death)

    def _handle(self, i: int) -> Any | None:
        if self.workers[i] is None and self.namespace is not None:
            try:
                self.workers[i] = ray.get_actor(names.ai_worker(i), namespace=self.namespace)
            except ValueError:          # not running (restarting, or not started yet)
                return None
        return self.workers[i]

    @classmethod
    def start(cls, config: Config, namespace: str | None = None, *, timeout_s: float = 60.0) -> "AIPool":
        """Create (or adopt, if already running) the gate and the workers; wait until they answer."""
        ns = namespace or config.settings.namespace
        gate = get_or_create_gate(config, ns)
        workers = [AIWorker.options(name=names.ai_worker(i), namespace=ns, get_if_exists=True,
                                    lifetime="detached", max_restarts=3, max_task_retries=0)
                   .remote(config, i, namespace=ns) for i in range(config.app.ai.workers)]
        ray.get([gate.ping.remote()] + [w.ping.remote() for w in workers], timeout=timeout_s)
        return cls(gate, workers)

    @classmethod
    def from_existing(cls, config: Config, namespace: str | None = None) -> "AIPool":
        """Re-attach to a running pool by name (after a driver/supervisor restart); ValueError if
        any actor is missing."""
        ns = namespace or config.settings.namespace
        gate = ray.get_actor(GATE_NAME, namespace=ns)
        workers = [ray.get_actor(names.ai_worker(i), namespace=ns) for i in range(config.app.ai.workers)]
        return cls(gate, workers)

    @property
    def handles(self) -> list[Any]:
        return list(self.workers)

    def submit(self, account_id: str, conversation_id: str,
               carrier: dict[str, str] | None = None,
               request: dict[str, Any] | None = None) -> ray.ObjectRef:
        """Dispatch one draft to the least-loaded worker; the ref resolves to draft()'s dict."""
        with self._lock:
            r = next(self._rr)
            n = len(self._load)
            order = sorted(range(n), key=lambda j: (self._load[j], (j - r) % n))  # least loaded, ties in turn
        # looked up outside the lock (a name lookup is a call to Ray's control store)
        i, handle = next(((j, h) for j in order if (h := self._handle(j)) is not None), (None, None))
        if handle is None:
            raise Unavailable("no AI worker is running (restarting or not started yet)")
        with self._lock:
            self._load[i] += 1
        ref = (handle.draft.remote(account_id, conversation_id, carrier) if request is None
               else handle.draft.remote(account_id, conversation_id, carrier, request))
        ref.future().add_done_callback(lambda f, i=i, h=handle: self._done(i, h, f))
        return ref

    def _done(self, i: int, handle: Any, future: Any) -> None:
        died = False
        try:
            died = isinstance(future.exception(), RayActorError)
        except Exception:           # cancelled
            pass
        with self._lock:
            self._load[i] -= 1
            if died and self.namespace is not None and self.workers[i] is handle:
                self.workers[i] = None       # dead: the next draft goes to a live worker
        if died and self.on_death is not None:
            self.on_death(names.ai_worker(i))

    def in_flight(self) -> list[int]:
        with self._lock:
            return list(self._load)

    def status(self, timeout_s: float = 10.0) -> dict[str, Any]:
        gate, *workers = ray.get([self.gate.status.remote()] + [w.stats.remote() for w in self.workers],
                                 timeout=timeout_s)
        return {"gate": gate, "workers": workers}

    def stop(self, timeout_s: float = 15.0) -> None:
        """Close the workers' HTTP sessions, then remove the workers and the gate."""
        try:
            ray.get([w.stop.remote() for w in self.workers], timeout=timeout_s)
        finally:
            for actor in (*self.workers, self.gate):
                ray.kill(actor, no_restart=True)
