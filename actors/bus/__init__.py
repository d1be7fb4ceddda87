"""The event bus over RabbitMQ: topology, confirmed publishing from the outbox, deduplicating
consumers and the dead-letter queue. See each module's docstring for the reasoning."""
from actors.bus.consumer import Consumer
from actors.bus.deadletter import dead_letters
from actors.bus.publisher import ConfirmPublisher, Outgoing
from actors.bus.relay import OutboxRelay
from actors.bus.topology import Topology, declare, declare_topology, delete_topology

__all__ = ["ConfirmPublisher", "Consumer", "OutboxRelay", "Outgoing", "Topology", "dead_letters",
           "declare", "declare_topology", "delete_topology"]
