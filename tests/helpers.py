"""Small helpers shared by the tests."""
from __future__ import annotations

import asyncio
import math
import subprocess

from standins.stack import wait_for

__all__ = ["FakeClock", "until", "wait_for", "wait_for_idle_bus"]


async def until(predicate, what: str, timeout_s: float = 30.0) -> None:
    """`wait_for` for a test that shares its event loop with what it waits on: it yields to the
    loop between looks instead of blocking it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _bus_idle(config) -> bool:
    """Nothing left to deliver in the config's namespace: no outbox row unpublished, and no queue
    (the dead-letter queue aside: what lands there stays) holding a ready or unacked message."""
    from actors.bus.topology import Topology
    from actors.store import Store
    if Store.from_config(config).outbox.count_pending():
        return False
    topo = Topology.of(config)
    out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "name", "messages_ready",
                          "messages_unacknowledged"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        name, *counts = line.split("\t")
        if name.startswith(f"{topo.namespace}.") and name != topo.dead_queue and any(
                int(c) for c in counts):
            return False
    return True


def wait_for_idle_bus(config, timeout: float = 60.0) -> None:
    """Wait until every event of the config's namespace has been published, delivered and acked
    (seen twice in a row: a consumer may publish a follow-up event as it acks), so a duplicate
    delivery would already have surfaced."""
    seen = [False]

    def settled() -> bool:
        idle = _bus_idle(config)
        was, seen[0] = seen[0], idle
        return was and idle

    wait_for(settled, timeout=timeout, what="the bus to deliver every event", interval=0.2)


class FakeClock:
    """A monotonic clock that moves only when told: `clock()` reads it (inject it where code takes
    a `clock`), `await clock.sleep(s)` records the wait and moves the clock on by `s` (inject it
    where code takes a `sleep`). Tests then assert on the waits asked for, not on wall time."""

    def __init__(self, start: float = 1000.0):
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    @property
    def slept(self) -> float:
        return sum(self.sleeps)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        # at least one step, as a real clock: a wait shorter than the float's resolution at this
        # reading must still let time pass (code that waits "until the next token" relies on it)
        self.now = max(self.now + max(0.0, seconds), math.nextafter(self.now, math.inf))
        await asyncio.sleep(0)   # still a suspension point, as a real sleep is
