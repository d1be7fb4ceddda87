"""Chat events: versioned pydantic models with deterministic ids.

An event's id is derived from what it is about, so producing it twice gives the same id and
consumers can record processed ids under a unique key.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

SCHEMA_VERSION = 1


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class ChatMessage(BaseModel):
    """One message as seen on the site. `text` is verbatim chat text: hostile, never markup."""
    model_config = ConfigDict(extra="forbid")
    message_id: str
    account_id: str
    site: str
    conversation_id: str
    site_message_id: str | None = None
    sender: str
    text: str
    sent_at: str                      # ISO 8601 (UTC), resolved from what the site shows
    direction: Literal["in", "out"] = "in"
    content_key: str | None = None    # who/when/what/occurrence: the same message under any markup
    seen_at: datetime = Field(default_factory=utcnow)


Classification = Literal["needs_reply", "no_reply_needed", "spam_or_scam", "abusive"]


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: str
    account_id: str
    conversation_id: str
    occurred_at: datetime = Field(default_factory=utcnow)


class MessageSeen(_Event):
    type: Literal["message.seen"] = "message.seen"
    message: ChatMessage

    @classmethod
    def of(cls, m: ChatMessage) -> "MessageSeen":
        return cls(event_id=f"message.seen:{m.message_id}", account_id=m.account_id,
                   conversation_id=m.conversation_id, message=m)


class DraftCreated(_Event):
    type: Literal["draft.created"] = "draft.created"
    draft_id: str
    message_ids: list[str]
    classification: Classification
    text: str

    @classmethod
    def make(cls, *, draft_id: str, account_id: str, conversation_id: str,
             message_ids: list[str], classification: Classification, text: str) -> "DraftCreated":
        return cls(event_id=f"draft.created:{draft_id}", draft_id=draft_id, account_id=account_id,
                   conversation_id=conversation_id, message_ids=message_ids,
                   classification=classification, text=text)


class ConversationClassified(_Event):
    type: Literal["conversation.classified"] = "conversation.classified"
    last_message_id: str
    classification: Classification


class DraftApproved(_Event):
    type: Literal["draft.approved"] = "draft.approved"
    draft_id: str
    text: str
    approved_by: str
    idempotency_key: str

    @classmethod
    def make(cls, *, draft_id: str, account_id: str, conversation_id: str, text: str,
             approved_by: str) -> "DraftApproved":
        return cls(event_id=f"draft.approved:{draft_id}", draft_id=draft_id, account_id=account_id,
                   conversation_id=conversation_id, text=text, approved_by=approved_by,
                   idempotency_key=f"send:{draft_id}")

    @classmethod
    def of_draft(cls, doc: dict) -> "DraftApproved":
        """The send event of a stored approved draft (its final text, who decided)."""
        return cls.make(draft_id=doc["_id"], account_id=doc["account_id"],
                        conversation_id=doc["conversation_id"], text=doc["text"],
                        approved_by=doc.get("decided_by") or "unknown")


class DraftRejected(_Event):
    type: Literal["draft.rejected"] = "draft.rejected"
    draft_id: str
    rejected_by: str
    reason: str | None = None

    @classmethod
    def make(cls, *, draft_id: str, account_id: str, conversation_id: str, rejected_by: str,
             reason: str | None) -> "DraftRejected":
        return cls(event_id=f"draft.rejected:{draft_id}", draft_id=draft_id, account_id=account_id,
                   conversation_id=conversation_id, rejected_by=rejected_by, reason=reason)


class ReplySent(_Event):
    type: Literal["reply.sent"] = "reply.sent"
    draft_id: str
    idempotency_key: str
    site_message_id: str | None = None
    text: str | None = None           # what was sent (events queued before it was added lack it)

    @classmethod
    def make(cls, *, draft_id: str, account_id: str, conversation_id: str,
             idempotency_key: str, site_message_id: str | None, text: str | None = None) -> "ReplySent":
        return cls(event_id=f"reply.sent:{draft_id}", draft_id=draft_id, account_id=account_id,
                   conversation_id=conversation_id, idempotency_key=idempotency_key,
                   site_message_id=site_message_id, text=text)


class ChildFailed(_Event):
    """The supervisor gave up on a child (restart intensity exceeded, or a permanent error)."""
    type: Literal["child.failed"] = "child.failed"
    account_id: str = ""
    conversation_id: str = ""
    child: str
    kind: str
    error: str

    @classmethod
    def make(cls, *, child: str, kind: str, account_id: str | None, error: str, at: float) -> "ChildFailed":
        return cls(event_id=f"child.failed:{child}:{int(at * 1000)}", child=child, kind=kind,
                   account_id=account_id or "", error=error[:500])


class NeedsLogin(_Event):
    """A browser session cannot log in (wrong or expired credentials): a person must act."""
    type: Literal["account.needs_login"] = "account.needs_login"
    conversation_id: str = ""
    child: str
    error: str

    @classmethod
    def make(cls, *, child: str, account_id: str, error: str, at: float) -> "NeedsLogin":
        return cls(event_id=f"account.needs_login:{account_id}:{int(at * 1000)}", child=child,
                   account_id=account_id, error=error[:500])


class DeadLetterSeen(BaseModel):
    """A message seen on the dead-letter exchange (not an Event: its body may be anything)."""
    model_config = ConfigDict(extra="forbid")
    type: Literal["dead_letter.seen"] = "dead_letter.seen"
    event_id: str
    routing_key: str
    consumer: str
    reason: str
    message_id: str | None = None


Event = Annotated[Union[MessageSeen, DraftCreated, ConversationClassified, DraftApproved,
                        DraftRejected, ReplySent, ChildFailed, NeedsLogin], Field(discriminator="type")]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(body: bytes | str) -> Event:
    """Validate a wire event; raises pydantic.ValidationError with the reason."""
    return EVENT_ADAPTER.validate_json(body)


def dump_event(event: Event) -> bytes:
    return event.model_dump_json().encode("utf-8")
