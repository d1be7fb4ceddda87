"""Child specifications and their live state, as the supervisor tracks them.

Children are detached, named Ray actors in the config's namespace: they outlive a supervisor
crash, and a restarted supervisor adopts them by name instead of starting duplicates.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from supervisor.policy import RestartPolicy, RestartType


class ChildState(StrEnum):
    """Where a child is in its life; stored and reported as the plain strings."""
    NEW = "new"
    STARTING = "starting"      # created (or adopted); its start method has not answered yet
    RUNNING = "running"
    BACKOFF = "backoff"        # waiting to be spawned again (a restart, or its name still held)
    FAILED = "failed"          # given up on: a permanent error or over its restart intensity
    STOPPED = "stopped"        # removed on purpose (reload, shutdown, its node left)


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
    state: ChildState = ChildState.NEW
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
        state = self.state.value
        status = health if self.state is ChildState.RUNNING and health in ("degraded", "needs_login") else state
        return {"name": self.name, "kind": self.spec.kind, "state": state, "status": status,
                "restarts": self.restarts, "last_error": self.last_error, "heartbeats": self.heartbeats,
                "account_id": self.spec.account_id, "info": self.info,
                "actor_id": self.handle._actor_id.hex() if self.handle is not None else None}


@dataclass
class Fleet:
    """What the supervisor's managers share: the children table, the lock that guards it (and
    the condition `wait_running` waits on), and the config in force (a reload replaces it)."""
    config: Any
    namespace: str
    children: dict[str, Child] = field(default_factory=dict)
    lock: Any = None
    changed: Any = None

    def __post_init__(self) -> None:
        import threading
        if self.lock is None:
            self.lock = threading.RLock()
            self.changed = threading.Condition(self.lock)

    def running(self) -> list[Child]:
        return [c for c in self.children.values() if c.state is ChildState.RUNNING]

    def fresh(self, spec: ChildSpec) -> Child:
        """A new Child for `spec` with a fresh restart budget from the config in force."""
        return Child(spec=spec, policy=RestartPolicy.from_conf(self.config.app.supervisor.restart))
