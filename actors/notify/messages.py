"""What a notification says: a note per event, built from the event and the stored messages.

A note never carries secrets; it carries chat text only as a short excerpt, and a link to the draft
in the review desk (`<desk>/#draft=<id>`: the page opens it once the reviewer is signed in)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actors.review.views import excerpt


@dataclass
class Note:
    note_id: str                # the event id it came from: the dedupe key
    kind: str                   # draft | needs_login | child_failed | dead_letter
    title: str
    body: str
    link: str | None = None
    account_id: str | None = None


def draft_link(desk_url: str | None, draft_id: str) -> str | None:
    return f"{desk_url.rstrip('/')}/#draft={draft_id}" if desk_url else None


def draft_note(event: dict[str, Any], *, contact: str | None, message: str | None,
               desk_url: str | None, chars: int) -> Note:
    link = draft_link(desk_url, event["draft_id"])
    who = contact or event["conversation_id"]
    lines = [f"Account: {event['account_id']}", f"Contact: {who} ({event['conversation_id']})",
             f"Classification: {event['classification']}"]
    if message:
        lines.append(f"Message: {excerpt(message, chars)}")
    lines.append(f"Draft: {excerpt(event.get('text') or '', chars)}")
    if link:
        lines.append(f"Review it: {link}")
    return Note(event["event_id"], "draft", f"New draft to review: {who} on {event['account_id']}",
                "\n".join(lines), link, event["account_id"])


def needs_login_note(event: dict[str, Any]) -> Note:
    return Note(event["event_id"], "needs_login",
                f"Account {event['account_id']} needs a login",
                f"The browser session {event['child']} cannot log in: {event['error']}\n"
                f"A login challenge (captcha, code, device check): complete it with "
                f"`./run login {event['account_id']}` (or `--import state.json`); the session resumes "
                "by itself. Wrong credentials: fix them, then `./run reload`.",
                None, event["account_id"])


def child_failed_note(event: dict[str, Any]) -> Note:
    return Note(event["event_id"], "child_failed", f"replydesk: {event['child']} failed",
                f"{event['child']} ({event['kind']}) exceeded its restart limit or failed "
                f"permanently and is not restarted: {event['error']}",
                None, event.get("account_id") or None)


def dead_letter_note(notice: dict[str, Any], chars: int) -> Note:
    return Note(notice["event_id"], "dead_letter",
                f"replydesk: an event was dead-lettered ({notice['routing_key']})",
                f"Consumer {notice['consumer']} gave up on {notice['routing_key']} "
                f"(message {notice.get('message_id') or '?'}): {excerpt(notice['reason'], chars * 2)}\n"
                "It waits in the dead queue with its reason.", None, None)


def digest(notes: list[dict[str, Any]]) -> tuple[str, str]:
    """One message for several notes (title, body): each note's title and link on its lines."""
    drafts = sum(1 for n in notes if n["kind"] == "draft")
    title = (f"{drafts} new drafts to review" if drafts == len(notes)
             else f"replydesk: {len(notes)} notifications ({drafts} new drafts)")
    lines = []
    for n in notes:
        lines.append(f"- {n['title']}" + (f": {n['link']}" if n.get("link") else ""))
    return title, "\n".join(lines)
