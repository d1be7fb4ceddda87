"""AIPool: the gate plus `app.ai.workers` AIWorker actors, with least-loaded dispatch.

Each worker is an async actor running up to `app.ai.concurrency` drafts at once, so one slow call
never blocks the others; `submit` picks the worker with the fewest calls in flight (counted here,
released when each call's ObjectRef completes). Actors are named ("ai:gate", "ai:<i>") in the
namespace, so the dashboard shows them and a restarted driver re-attaches with `from_existing`.
"""
from __future__ import annotations

import itertools
import threading
from typing import Any

import ray

from actors.ai.gate import GATE_NAME, get_or_create_gate
from actors.ai.worker import AIWorker
from contracts.settings import Config


class AIPool:
    def __init__(self, gate: Any, workers: list[Any]):
        self.gate = gate
        self.workers = workers
        self._load = [0] * len(workers)
        self._lock = threading.Lock()
        self._rr = itertools.count()

    @classmethod
    def start(cls, config: Config, namespace: str | None = None, *, timeout_s: float = 60.0) -> "AIPool":
        """Create (or adopt, if already running) the gate and the workers; wait until they answer."""
        ns = namespace or config.settings.namespace
        gate = get_or_create_gate(config, ns)
        workers = [AIWorker.options(name=f"ai:{i}", namespace=ns, get_if_exists=True,
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
        workers = [ray.get_actor(f"ai:{i}", namespace=ns) for i in range(config.app.ai.workers)]
        return cls(gate, workers)

    @property
    def handles(self) -> list[Any]:
        return list(self.workers)

    def submit(self, account_id: str, conversation_id: str,
               carrier: dict[str, str] | None = None) -> ray.ObjectRef:
        """Dispatch one draft to the least-loaded worker; the ref resolves to draft()'s dict."""
        with self._lock:
            low = min(self._load)
            candidates = [i for i, n in enumerate(self._load) if n == low]
            i = candidates[next(self._rr) % len(candidates)]
            self._load[i] += 1
        ref = self.workers[i].draft.remote(account_id, conversation_id, carrier)
        ref.future().add_done_callback(lambda _f, i=i: self._done(i))
        return ref

    def _done(self, i: int) -> None:
        with self._lock:
            self._load[i] -= 1

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
