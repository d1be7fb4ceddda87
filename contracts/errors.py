"""Errors that cross actor and broker boundaries, so every side can tell them apart."""
from __future__ import annotations

import re

from contracts.telemetry import redact


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


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RAISED = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Warning|Refused|Failed|[A-Z]\w*)): (.+)$")


def describe(exc: BaseException, limit: int = 500) -> str:
    """`Type: message` of what the actor really raised, for a person and a log line.

    Ray wraps an actor's error (RayTaskError, ActorDiedError from a failed constructor, and, when
    the error could not be pickled, a RayError whose text holds the original traceback); their
    text starts with Ray's own header. Here the innermost error that crossed intact is named, else
    the last `Type: message` line of the traceback Ray kept, so the message is never cut off
    behind a traceback or replaced by "isn't serializable"."""
    inner = root_cause(exc)
    text = _ANSI.sub("", str(inner))
    if type(inner).__module__.split(".")[0] != "ray" and "Traceback (most recent call last)" not in text:
        name, message = type(inner).__name__, text
    else:
        raised = [m for line in text.splitlines() if (m := _RAISED.match(line.strip()))]
        name, message = (raised[-1].group(1).rsplit(".", 1)[-1], raised[-1].group(2)) if raised \
            else (type(inner).__name__, text.strip().splitlines()[0] if text.strip() else "")
    out = redact(f"{name}: {message}" if message else name)
    return out if len(out) <= limit else out[: limit - 1] + "…"
