"""Broker topology: names and declarations, in one place so every process agrees on them.

One durable topic exchange carries every event (routing key = event type). Each consumer kind has
a durable quorum queue (replicated, and it counts deliveries so a poison message cannot loop
forever); messages over the delivery limit, or dead-lettered on purpose, go through a fanout
dead-letter exchange to one durable dead queue that an operator can read and replay.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from pika.adapters.blocking_connection import BlockingChannel
from pika.exchange_type import ExchangeType

from actors.bus.connection import client_name, connect
from contracts.settings import Config


@dataclass(frozen=True)
class Topology:
    """The exchange and queue names of one namespace."""
    namespace: str
    delivery_limit: int

    @classmethod
    def of(cls, config: Config) -> "Topology":
        return cls(config.settings.namespace, config.app.bus.delivery_limit)

    @property
    def exchange(self) -> str:
        return f"{self.namespace}.events"

    @property
    def dlx(self) -> str:
        return f"{self.namespace}.dlx"

    @property
    def dead_queue(self) -> str:
        return f"{self.namespace}.dead"

    def queue(self, kind: str) -> str:
        return f"{self.namespace}.{kind}"

    def declare_base(self, channel: BlockingChannel) -> None:
        """The event exchange, the dead-letter exchange and the dead queue."""
        channel.exchange_declare(self.exchange, ExchangeType.topic, durable=True)
        channel.exchange_declare(self.dlx, ExchangeType.fanout, durable=True)
        channel.queue_declare(self.dead_queue, durable=True)
        channel.queue_bind(self.dead_queue, self.dlx)

    def declare_queue(self, channel: BlockingChannel, kind: str, routing_keys: Iterable[str]) -> str:
        """The quorum queue of consumer `kind`, bound to `routing_keys`; returns its name."""
        name = self.queue(kind)
        channel.queue_declare(name, durable=True, arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": self.dlx,
        })
        for key in routing_keys:
            channel.queue_bind(name, self.exchange, routing_key=key)
        return name

    def declare_dead_watch(self, channel: BlockingChannel, kind: str) -> str:
        """A quorum queue of `kind` bound to the dead-letter exchange: a copy of every dead letter
        (the dead queue keeps its own). It has no dead-letter exchange itself, so a dead letter
        never loops back through it."""
        name = self.queue(kind)
        channel.queue_declare(name, durable=True, arguments={
            "x-queue-type": "quorum", "x-delivery-limit": self.delivery_limit})
        channel.queue_bind(name, self.dlx)
        return name

    def delete(self, channel: BlockingChannel, kinds: Iterable[str]) -> None:
        """Remove this namespace's queues and exchanges (test teardown, decommissioning)."""
        for kind in kinds:
            channel.queue_delete(self.queue(kind))
        channel.queue_delete(self.dead_queue)
        channel.exchange_delete(self.exchange)
        channel.exchange_delete(self.dlx)


def declare(channel: BlockingChannel, config: Config, kind: str | None = None,
            routing_keys: Iterable[str] = ()) -> Topology:
    """Declare the base topology and, when `kind` is given, that consumer's bound queue."""
    topo = Topology.of(config)
    topo.declare_base(channel)
    if kind is not None:
        topo.declare_queue(channel, kind, routing_keys)
    return topo


def declare_topology(config: Config, routes: Mapping[str, Iterable[str]]) -> Topology:
    """Declare everything before anything publishes, so no event is routed to nowhere."""
    conn = connect(config, client_name(config, "topology"))
    try:
        channel = conn.channel()
        topo = declare(channel, config)
        for kind, keys in routes.items():
            topo.declare_queue(channel, kind, keys)
        return topo
    finally:
        conn.close()


def delete_topology(config: Config, kinds: Iterable[str]) -> None:
    """Remove a namespace's queues and exchanges (decommissioning an environment, test teardown)."""
    conn = connect(config, client_name(config, "topology"))
    try:
        Topology.of(config).delete(conn.channel(), kinds)
    finally:
        conn.close()
