"""Heartbeats: every running child is pinged every `supervisor.heartbeat_s`; an answer carries
its health (a browser session's `degraded` elements or `needs_login`), an error or a death is a
failure, and a child that does not answer for `3 * heartbeat_s + 5` seconds is hung: killed and
restarted."""
from __future__ import annotations

from contracts.errors import root_cause
from supervisor import rayops
from supervisor.children import Child, Fleet
from supervisor.lifecycle import Lifecycle
from supervisor.router import actor_died


class Heartbeats:
    name = "heartbeats"

    def __init__(self, fleet: Fleet, lifecycle: Lifecycle):
        self.fleet = fleet
        self.lifecycle = lifecycle

    def update(self, now: float) -> None:
        hb = self.fleet.config.app.supervisor.heartbeat_s
        with self.fleet.lock:
            for child in self.fleet.running():
                if child.ping_ref is None and now >= child.next_ping_at:
                    child.ping_ref = rayops.call(child.handle, "ping")
                    child.ping_sent_at = now
                if child.ping_ref is None:
                    continue
                if rayops.ready(child.ping_ref):
                    self._answered(child, now, hb)
                elif now - child.ping_sent_at > 3 * hb + 5:
                    rayops.kill(child.handle)  # hung: no heartbeat
                    self.lifecycle.on_failure(
                        child, TimeoutError(f"no heartbeat for {now - child.ping_sent_at:.1f}s"), died=True)

    def _answered(self, child: Child, now: float, hb: float) -> None:
        ref, child.ping_ref = child.ping_ref, None
        child.next_ping_at = now + hb
        try:
            pong = rayops.result(ref)
        except Exception as exc:
            self.lifecycle.on_failure(child, root_cause(exc), died=actor_died(exc))
            return
        child.last_heartbeat = now
        child.heartbeats += 1
        if isinstance(pong, dict) and "status" in pong:  # degraded + missing elements
            child.info["health"] = {"status": pong["status"], "missing": pong.get("missing", []),
                                    **({"reason": pong["needs_login"]} if pong.get("needs_login") else {})}


