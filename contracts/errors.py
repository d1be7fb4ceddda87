"""Errors that cross actor and broker boundaries, so every side can tell them apart."""
from __future__ import annotations


class DeadLetter(Exception):
    """Processing this item can never succeed (bad input, invalid AI reply after the corrective
    retry...): the consumer dead-letters the event with `reason` instead of retrying it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class PermanentError(Exception):
    """A failure that retrying will not fix (HTTP 400/401/403, missing credentials...)."""


class Unavailable(Exception):
    """The actor an event goes to is restarting (or not started yet): retry after a delay; the
    wait does not count against the event's delivery limit."""


def root_cause(exc: BaseException) -> BaseException:
    """Unwrap Ray's RayTaskError / ActorError chain to the exception the actor raised."""
    seen = 0
    while seen < 10:
        cause = getattr(exc, "cause", None)
        if cause is None or cause is exc:
            break
        exc = cause
        seen += 1
    return exc
