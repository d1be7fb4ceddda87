"""Hosted layout: a session host per alive browser node. Every `HOSTS_CHECK_S` the browser nodes
are listed (a GCS call, outside the lock); a node that joined gets its host, the host of a node
that left is dropped (its actor went with the node)."""
from __future__ import annotations

import logging

from contracts import names
from supervisor.children import ChildState, Fleet
from supervisor.lifecycle import Lifecycle
from supervisor.specs import browser_nodes, child_specs

log = logging.getLogger("replydesk.supervisor")

HOSTS_CHECK_S = 5.0          # how often the browser nodes are listed


class BrowserHosts:
    name = "hosts"

    def __init__(self, fleet: Fleet, lifecycle: Lifecycle, home_node: str | None, now: float):
        self.fleet = fleet
        self.lifecycle = lifecycle
        self.home_node = home_node
        self.checked_at = now

    def update(self, now: float) -> None:
        if now - self.checked_at < HOSTS_CHECK_S:
            return
        self.checked_at = now
        nodes = browser_nodes(self.fleet.config)           # a GCS call: outside the lock
        wanted = {names.browser_host(n) for n in nodes}
        with self.fleet.lock:
            have = {n for n, c in self.fleet.children.items() if c.spec.kind == "host"}
            if wanted == have:
                return
            for name in have - wanted:
                log.warning("browser node left; dropping its host", extra={"child": name})
                self.fleet.children.pop(name).state = ChildState.STOPPED
            for spec in child_specs(self.fleet.config, self.home_node, nodes):
                if spec.kind == "host" and spec.name not in have:
                    log.info("browser node joined; starting its host", extra={"child": spec.name})
                    child = self.fleet.fresh(spec)
                    self.fleet.children[spec.name] = child
                    self.lifecycle.spawn_or_back_off(child)
            self.fleet.changed.notify_all()
