"""Connection parameters and reconnection for every bus client.

Heartbeats detect a dead peer, the blocked timeout turns a long broker flow-control stall into a
reconnect instead of a silent hang, and the client name makes each connection recognisable in
`rabbitmqctl list_connections` (operators, and the connection-loss test, close it by name).
Reconnection waits with exponential jittered backoff (tenacity) and stops as soon as the owner is
stopping.
"""
from __future__ import annotations

import logging
import os
import socket
import threading

import pika
from pika.exceptions import AMQPError
from tenacity import (RetryCallState, Retrying, retry_if_exception_type, stop_after_delay,
                      wait_exponential_jitter)

from contracts.settings import Config

log = logging.getLogger("replydesk.bus")

# What a broker outage or a dropped socket looks like from pika: worth reconnecting for.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (AMQPError, OSError)


def client_name(config: Config, role: str) -> str:
    """`replydesk:<namespace>:<role>:<host>:<pid>`: unique per process, shown by the broker."""
    return f"replydesk:{config.settings.namespace}:{role}:{socket.gethostname()}:{os.getpid()}"


def parameters(config: Config, name: str) -> pika.URLParameters:
    """URLParameters from RABBITMQ_URL plus the bus section's heartbeat and timeouts."""
    bus = config.app.bus
    params = pika.URLParameters(config.settings.rabbitmq_url)
    params.heartbeat = bus.heartbeat_s
    params.blocked_connection_timeout = bus.blocked_timeout_s
    params.socket_timeout = bus.socket_timeout_s
    params.stack_timeout = bus.socket_timeout_s * 3
    params.connection_attempts = 1  # retries are ours (backoff, stop on shutdown)
    params.client_properties = {"connection_name": name, "product": "replydesk"}
    return params


def retrying(config: Config, stopping: threading.Event | None = None,
             give_up_after_s: float | None = None,
             errors: tuple[type[BaseException], ...] = CONNECTION_ERRORS) -> Retrying:
    """Backoff policy for `errors`: retry until `stopping` is set or `give_up_after_s` passes."""
    bus = config.app.bus
    stopping = stopping or threading.Event()

    def stop(state: RetryCallState) -> bool:
        return stopping.is_set() or (give_up_after_s is not None
                                     and stop_after_delay(give_up_after_s)(state))

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("bus operation failed, retrying", extra={
            "attempt": state.attempt_number, "error": f"{type(exc).__name__}: {exc}",
            "wait_s": round(state.upcoming_sleep, 3)})

    return Retrying(retry=retry_if_exception_type(errors),
                    wait=wait_exponential_jitter(multiplier=bus.reconnect_initial_s, max=bus.reconnect_max_s,
                                                jitter=bus.reconnect_initial_s),
                    stop=stop, sleep=stopping.wait, before_sleep=before_sleep, reraise=True)


def connect(config: Config, name: str, stopping: threading.Event | None = None,
            give_up_after_s: float | None = 30.0) -> pika.BlockingConnection:
    """A BlockingConnection, retried with backoff while the broker is unreachable."""
    return retrying(config, stopping, give_up_after_s)(pika.BlockingConnection, parameters(config, name))
