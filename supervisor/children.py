"""Child specifications and their live state, as the supervisor tracks them.

Children are detached, named Ray actors in the config's namespace: they outlive a supervisor
crash, and a restarted supervisor adopts them by name instead of starting duplicates.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import ray

from supervisor.policy import RestartPolicy, RestartType

log = logging.getLogger(__name__)


@dataclass
class ChildSpec:
    name: str                                   # Ray actor name (what the dashboard shows)
    kind: str                                   # router | gate | host | browser | ai | sheets | review | notify
    actor_cls: Any                              # a ray.remote actor class
    args: tuple = ()
    options: dict[str, Any] = field(default_factory=dict)
    restart: RestartType = RestartType.PERMANENT
    account_id: str | None = None
    poll_interval_s: float | None = None        # browser sessions are polled by the supervisor
    node_id: str | None = None                  # a browser host: the node it is pinned to
    start_method: str = "start"                 # called once after creation (and on adoption)
    fingerprint: str = ""                       # of the config it runs with: reload restarts a
                                                # child whose fingerprint changed, and only it


@dataclass
class Child:
    spec: ChildSpec
    policy: RestartPolicy
    state: str = "new"                          # new|starting|running|backoff|failed|stopped
    handle: Any = None
    start_ref: Any = None
    ping_ref: Any = None
    ping_sent_at: float = 0.0
    next_ping_at: float = 0.0
    poll_ref: Any = None
    next_poll_at: float = 0.0
    poll_again: bool = False                    # poll_now() asked while a pass was running
    restart_at: float = 0.0
    restarts: int = 0
    last_error: str | None = None
    last_heartbeat: float = 0.0
    heartbeats: int = 0                         # answered pings (ops and tests see the cadence)
    died_at: float | None = None
    started_at: float | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    def snapshot(self) -> dict[str, Any]:
        health = self.info.get("health", {}).get("status")
        # what a person needs to know: a running session may be degraded or waiting for a login
        status = health if self.state == "running" and health in ("degraded", "needs_login") else self.state
        return {"name": self.name, "kind": self.spec.kind, "state": self.state, "status": status,
                "restarts": self.restarts, "last_error": self.last_error, "heartbeats": self.heartbeats,
                "account_id": self.spec.account_id, "info": self.info,
                "actor_id": self.handle._actor_id.hex() if self.handle is not None else None}


def find_actor(name: str, namespace: str) -> Any | None:
    try:
        return ray.get_actor(name, namespace=namespace)
    except ValueError:
        return None


class NameTaken(RuntimeError):
    """The child's name is still registered to a predecessor being torn down (now killed)."""


def create_actor(spec: ChildSpec, namespace: str) -> Any:
    """Create the named detached actor; never waits. If a dead predecessor still holds the name,
    it is killed and `NameTaken` raised: the caller tries again a little later."""
    try:
        return spec.actor_cls.options(name=spec.name, namespace=namespace, lifetime="detached",
                                      max_restarts=0, **spec.options).remote(*spec.args)
    except ValueError as exc:  # name still registered to an actor being torn down
        old = find_actor(spec.name, namespace)
        if old is not None:
            ray.kill(old, no_restart=True)
        raise NameTaken(f"could not create actor {spec.name} yet: {exc}") from exc


def kill_quietly(handle: Any) -> None:
    if handle is None:
        return
    try:
        ray.kill(handle, no_restart=True)
    except Exception:  # already gone
        log.debug("kill of a dead actor", exc_info=True)
