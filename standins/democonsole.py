"""The quiet console of `./run demo --serve`: a short banner, then one human line per event (a new
draft, a reply sent, an account that needs a login, a new message from the chatter). The actors'
JSON logs go to files under the demo's run directory (`--verbose` prints them as before)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

Print = Callable[[str], None]


def banner(desk_url: str, token: str, site_url: str, logs: Path | None) -> list[str]:
    where = (f"logs: {logs}/ (one JSON file per actor; --verbose prints them here)" if logs
             else "logs: printed here (--verbose)")
    return ["",
            f"review desk: {desk_url}/#token={token}",
            f"  (or open {desk_url}/ and enter the review token {token})",
            f"demo chat site, as the contacts: {site_url}/contact",
            where,
            "approve a draft in the desk and watch the reply arrive on the contact's page; type there "
            "to send new messages. Ctrl-C stops everything.",
            ""]


def _line(body: str, prefix: str) -> str | None:
    return next((x[len(prefix):].strip() for x in (body or "").splitlines() if x.startswith(prefix)), None)


def note_line(note: dict[str, Any]) -> str:
    """One line for a reviewer notification, as a person would say it."""
    title, body = note.get("title") or "", note.get("message") or note.get("body") or ""
    if title.startswith("New draft to review: "):
        who = title[len("New draft to review: "):].rsplit(" on ", 1)[0]
        draft = _line(body, "Draft:")
        return f"new draft for {who}" + (f": {draft!r}" if draft else "")
    if title.endswith("needs a login"):
        cause = (body.splitlines() or [""])[0]
        return f"needs login: {title.removesuffix(' needs a login')}: {cause}"
    if title[:1].isdigit():                      # a digest: "3 new drafts to review"
        return title
    return f"notification: {title}"


class Console:
    """Prints what happened since the last `poll()`: notifications and replies the site received."""

    def __init__(self, names: dict[str, str], out: Print):
        self.names = names
        self.out = out
        self.seen_notes = 0
        self.seen_sent = 0
        self.seen_unsent: set[str] = set()

    def who(self, conversation_id: str) -> str:
        name = self.names.get(conversation_id)
        return f"{name} ({conversation_id})" if name else conversation_id

    def poll(self, notes: list[dict[str, Any]], sent: list[dict[str, Any]],
             unsent: list[dict[str, Any]] = ()) -> None:
        """`unsent`: approved drafts the send path superseded (the contact wrote again first)."""
        for n in notes[self.seen_notes:]:
            self.out(note_line(n))
        self.seen_notes = len(notes)
        for m in sent[self.seen_sent:]:
            self.out(f"reply sent to {self.who(m['conversation_id'])}: {m['text'][:80]!r}")
        self.seen_sent = len(sent)
        for d in unsent:
            if d["_id"] not in self.seen_unsent:
                self.seen_unsent.add(d["_id"])
                self.out(f"reply to {self.who(d['conversation_id'])} not sent: "
                         f"{d.get('superseded_reason') or 'newer messages arrived'}")


def unsent_approvals(store) -> list[dict[str, Any]]:
    """Approved drafts superseded before they were sent (newest 50)."""
    from contracts.draftstate import DraftStatus
    docs = store.drafts.coll.find({"status": DraftStatus.SUPERSEDED.value, "decided_by": {"$exists": True}},
                                  {"conversation_id": 1, "superseded_reason": 1}).limit(50)
    return list(docs)
