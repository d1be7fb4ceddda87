"""What a sheet row says, keyed by its row id (column 1). The sheet is a log, one row per:

- message received (row id: the message id), status "received";
- draft (the draft id), status pending_review as created;
- decision on a draft (`draft.approved:<draft>` / `draft.rejected:<draft>`): status "approved"
  with the text to send, or "rejected" with the reason; sender is the reviewer's token name;
- reply sent (`reply.sent:<draft>`), status "sent" with the text sent;
- conversation classified as needing no reply (`conversation.classified:<draft id of that
  history>`), status "no_reply" with the classification.

Each event type declares its row (`sheet_row`, in contracts/events.py). Rows come from two
places that share that one mapping: events as they arrive (`from_event`) and the MongoDB
documents the writer re-derives at start-up, turned back into their events. Only times differ
slightly by path (event time vs stored time); the row id and the text never do.

Values are written with valueInputOption=RAW: chat text such as "=IMPORTXML(...)" stays text and
is never evaluated as a formula.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from pydantic import BaseModel

from contracts.events import (
    EVENT_ADAPTER,
    ChatMessage,
    ConversationClassified,
    DraftApproved,
    DraftCreated,
    DraftRejected,
    Event,
    MessageSeen,
    ReplySent,
)
from contracts.draftstate import SENDABLE, DraftStatus
from contracts.ids import draft_id

CELL_LIMIT = 50_000          # Google rejects a cell longer than this
FIELDS = ("row_id", "kind", "account", "conversation", "sender", "time", "text",
          "classification", "status", "message_ids")


@dataclass(frozen=True)
class Row:
    row_id: str
    values: list[str]


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return "" if value is None else str(value)


def _cell(value: Any) -> str:
    text = _iso(value)
    return text if len(text) <= CELL_LIMIT else text[:CELL_LIMIT - 1] + "…"


class RowMapper:
    """Turns messages and drafts into rows in the configured column order (app.sheets.columns)."""

    def __init__(self, columns: list[str]):
        unknown = [c for c in columns if c not in FIELDS]
        if unknown:
            raise ValueError(f"app.sheets.columns: unknown column(s) {unknown}; known: {list(FIELDS)}")
        self.columns = list(columns)

    def header(self) -> list[str]:
        return list(self.columns)

    def _row(self, fields: Mapping[str, Any]) -> Row:
        return Row(str(fields["row_id"]), [_cell(fields.get(c)) for c in self.columns])

    def from_event(self, event: Event | Mapping[str, Any]) -> Row | None:
        """The row an event stands for (its `sheet_row`, declared with the event type in
        contracts/events.py); None for event types the sheet does not log."""
        if not isinstance(event, BaseModel):
            event = EVENT_ADAPTER.validate_python(event)
        fields = event.sheet_row()
        return None if fields is None else self._row(fields)

    # Rows re-derived from what MongoDB holds (a crash kept them out of the sheet): the stored
    # document is turned back into its event, so both paths share the one mapping.
    def from_message_doc(self, m: Mapping[str, Any]) -> Row:
        """A message as stored in `messages`."""
        msg = {k: v for k, v in m.items() if k in ChatMessage.model_fields}
        msg.setdefault("message_id", m.get("_id"))
        return self.from_event(MessageSeen.of(ChatMessage.model_validate(msg)))

    def draft_rows(self, d: Mapping[str, Any]) -> list[Row]:
        """A stored draft's rows: as created, plus its decision once a reviewer took one."""
        events: list[Any] = [DraftCreated.of_draft(dict(d))]
        status = d.get("status")
        released = status in SENDABLE and d.get("release_at") is None   # not in its undo window
        if released or status in (DraftStatus.SENDING, DraftStatus.SENT):
            events.append(DraftApproved.of_draft(dict(d)))
        elif status == DraftStatus.REJECTED:
            events.append(DraftRejected.of_draft(dict(d)))
        return [r for e in events if (r := self.from_event(e)) is not None]

    def from_send_doc(self, s: Mapping[str, Any]) -> Row:
        """A reply recorded in `sends`."""
        return self.from_event(ReplySent.of_send(dict(s)))

    def from_classification_doc(self, c: Mapping[str, Any]) -> Row | None:
        """A conversation classified as needing no reply (`conversations`, no draft)."""
        if c.get("draft_id") is not None or not c.get("classification"):
            return None
        return self.from_event(ConversationClassified.make(
            draft_id=draft_id(c["account_id"], c["conversation_id"], c["last_message_id"]),
            account_id=c["account_id"], conversation_id=c["conversation_id"],
            last_message_id=c["last_message_id"], classification=c["classification"],
            **({"occurred_at": c["classified_at"]} if c.get("classified_at") else {})))
