"""What a sheet row says, keyed by its row id (column 1). The sheet is a log, one row per:

- message received (row id: the message id), status "received";
- draft (the draft id), status "pending_review" as created;
- decision on a draft (`draft.approved:<draft>` / `draft.rejected:<draft>`): status "approved"
  with the text to send, or "rejected" with the reason; sender is the reviewer's token name;
- reply sent (`reply.sent:<draft>`), status "sent" with the text sent.

Rows come from two places that share one mapping: events as they arrive (`from_event`) and the
MongoDB documents the writer re-derives at start-up (`from_message_doc`, `draft_rows`,
`from_send_doc`). Only times differ slightly by path (event time vs stored time); the row id and
the text never do.

Values are written with valueInputOption=RAW: chat text such as "=IMPORTXML(...)" stays text and
is never evaluated as a formula.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

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

    def from_message_doc(self, m: Mapping[str, Any]) -> Row:
        """A message (ChatMessage JSON, as stored in `messages` or carried by message.seen)."""
        return self._row({"row_id": m.get("message_id") or m["_id"], "kind": "message",
                          "account": m.get("account_id"), "conversation": m.get("conversation_id"),
                          "sender": m.get("sender"), "time": m.get("sent_at"), "text": m.get("text"),
                          "classification": "",
                          "status": "sent" if m.get("direction") == "out" else "received",
                          "message_ids": ""})

    def from_draft_doc(self, d: Mapping[str, Any]) -> Row:
        """A draft (the `drafts` document, or a draft.created event's fields).

        The status column is the status at creation: the sheet is an append-only log."""
        return self._row({"row_id": d.get("draft_id") or d["_id"], "kind": "draft",
                          "account": d.get("account_id"), "conversation": d.get("conversation_id"),
                          "sender": "draft", "time": d.get("created_at") or d.get("occurred_at"),
                          "text": d.get("text"), "classification": d.get("classification"),
                          "status": "pending_review",
                          "message_ids": " ".join(d.get("message_ids") or [])})

    def _decision(self, draft_id: str, d: Mapping[str, Any], approved: bool, by: Any, at: Any,
                  text: Any) -> Row:
        kind = "draft.approved" if approved else "draft.rejected"
        return self._row({"row_id": f"{kind}:{draft_id}", "kind": "decision",
                          "account": d.get("account_id"), "conversation": d.get("conversation_id"),
                          "sender": by, "time": at, "text": text,
                          "status": "approved" if approved else "rejected",
                          "message_ids": draft_id})

    def _sent(self, d: Mapping[str, Any], at: Any) -> Row:
        return self._row({"row_id": f"reply.sent:{d['draft_id']}", "kind": "reply",
                          "account": d.get("account_id"), "conversation": d.get("conversation_id"),
                          "sender": "", "time": at, "text": d.get("text"), "status": "sent",
                          "message_ids": d.get("site_message_id") or ""})

    def draft_rows(self, d: Mapping[str, Any]) -> list[Row]:
        """A stored draft's rows: as created, plus its decision once a reviewer took one."""
        rows = [self.from_draft_doc(d)]
        status = d.get("status")
        if status in ("approved", "edited", "sending", "sent"):
            rows.append(self._decision(d["_id"], d, True, d.get("decided_by"),
                                       d.get("approved_at") or d.get("edited_at"), d.get("text")))
        elif status == "rejected":
            rows.append(self._decision(d["_id"], d, False, d.get("decided_by"), d.get("rejected_at"),
                                       d.get("reject_reason")))
        return rows

    def from_send_doc(self, s: Mapping[str, Any]) -> Row:
        """A reply recorded in `sends`."""
        return self._sent(s, s.get("sent_at"))

    def from_event(self, event: Mapping[str, Any]) -> Row | None:
        """The row an event JSON dict stands for; None for event types the sheet does not log."""
        kind = event.get("type")
        if kind == "message.seen":
            return self.from_message_doc(event["message"])
        if kind == "draft.created":
            return self.from_draft_doc(event)
        if kind == "draft.approved":
            return self._decision(event["draft_id"], event, True, event["approved_by"],
                                  event.get("occurred_at"), event["text"])
        if kind == "draft.rejected":
            return self._decision(event["draft_id"], event, False, event["rejected_by"],
                                  event.get("occurred_at"), event.get("reason"))
        if kind == "reply.sent":
            return self._sent(event, event.get("occurred_at"))
        return None
