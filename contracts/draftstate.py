"""A draft's status and the moves allowed between statuses: the one place that says how a draft
lives. `actors.store.drafts.Drafts` is the only code that writes a draft's status, and it checks
every move here first (tests/test_draftstate.py scans the source for any other writer).

    pending_review -> approved | edited | rejected | superseded
    approved | edited -> sending | superseded
                      -> pending_review  (undo: only while the approval is still held)
    sending -> sending (the anchor is recorded just before the click) | sent | superseded
            -> approved  (a login challenge came before anything was clicked)
    rejected, sent, superseded: final

A draft that may have been sent by an earlier attempt, without proof, stays `sending` (the send
proof refuses to send it again: see actors/browser/sender.py).
"""
from __future__ import annotations

from enum import StrEnum


class DraftStatus(StrEnum):
    """Str-valued: stored documents, events and the API keep the plain strings."""
    PENDING = "pending_review"
    APPROVED = "approved"
    EDITED = "edited"
    REJECTED = "rejected"
    SENDING = "sending"
    SENT = "sent"
    SUPERSEDED = "superseded"


S = DraftStatus
SENDABLE: tuple[DraftStatus, ...] = (S.APPROVED, S.EDITED)        # approved, not yet being sent
DECIDED: tuple[DraftStatus, ...] = (S.APPROVED, S.EDITED, S.REJECTED)
FINAL: frozenset[DraftStatus] = frozenset({S.REJECTED, S.SENT, S.SUPERSEDED})

TRANSITIONS: dict[DraftStatus, frozenset[DraftStatus]] = {
    S.PENDING: frozenset({S.APPROVED, S.EDITED, S.REJECTED, S.SUPERSEDED}),
    S.APPROVED: frozenset({S.SENDING, S.SUPERSEDED, S.PENDING}),
    S.EDITED: frozenset({S.SENDING, S.SUPERSEDED, S.PENDING}),
    S.SENDING: frozenset({S.SENDING, S.SENT, S.SUPERSEDED, S.APPROVED}),
    S.REJECTED: frozenset(),
    S.SENT: frozenset(),
    S.SUPERSEDED: frozenset(),
}


class IllegalTransition(ValueError):
    """A move the state machine does not allow (a bug in the caller, never a race: a race is
    a conditional update that matches nothing)."""

    def __init__(self, from_status: str, to_status: str):
        allowed = ", ".join(sorted(TRANSITIONS.get(from_status, ()))) or "nothing (final)"  # type: ignore[call-overload]
        super().__init__(f"a draft cannot move from '{from_status}' to '{to_status}'; "
                         f"from '{from_status}' it may move to: {allowed}")


def status_of(value: str) -> DraftStatus:
    """The status named `value`; ValueError naming the known ones for anything else."""
    try:
        return DraftStatus(value)
    except ValueError:
        raise ValueError(f"unknown draft status {value!r}; known: "
                         f"{', '.join(s.value for s in DraftStatus)}") from None


def check(from_statuses: tuple[str, ...], to_status: str) -> None:
    """Raise IllegalTransition unless every one of `from_statuses` may move to `to_status`."""
    to = status_of(to_status)
    for f in from_statuses:
        if to not in TRANSITIONS[status_of(f)]:
            raise IllegalTransition(f, to)
