"""Chat events: versioned pydantic models with deterministic ids, and the registry of them.

An event's id is derived from what it is about, so producing it twice gives the same id and every
consumer's effect is keyed by it (or by what it is about).

The registry: each event type is declared once, here, by its class: its model and routing key
(`type`), its id format (`make` / `of`), which consumer kinds take it (`consumers`) and how it is
logged in the sheet (`sheet_row`) and a typical instance (`example`, which the registry's tests
publish through the broker and map to a sheet row). The broker topology, the supervisor's routing,
the sheet writer's mapping and the registry's tests are derived from `EVENT_TYPES`; adding an event
type is one class here (added to `EVENT_TYPES`) plus its handler in each consumer that takes it.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from contracts.draftstate import DraftStatus

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


def answered_messages(history: list[ChatMessage]) -> list[str]:
    """Ids of the incoming messages since our last outgoing one: what a reply to `history` answers
    (a draft by the AI or one written by hand alike)."""
    ids: list[str] = []
    for m in reversed(history):
        if m.direction == "out":
            break
        ids.append(m.message_id)
    return ids[::-1]


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # which consumer kinds take this event type (each kind has its own queue, bound to the types
    # that name it): "ai" the AI pool, "sheets" the sheet writer, "send" the account's browser
    # session, "notify" the reviewers' notifier (when notifications are configured)
    consumers: ClassVar[tuple[str, ...]] = ()
    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: str
    account_id: str
    conversation_id: str
    occurred_at: datetime = Field(default_factory=utcnow)

    def sheet_row(self) -> dict[str, Any] | None:
        """The fields of the sheet row this event is logged as (actors/sheets/rows.py FIELDS,
        `row_id` unique), or None when the sheet does not log it."""
        return None

    @classmethod
    def example(cls) -> "_Event":
        """A typical instance, built the way producers build it (the registry's tests use it)."""
        raise NotImplementedError(f"{cls.__name__}.example(): every registered event type has one")


class MessageSeen(_Event):
    consumers = ("ai", "sheets")
    type: Literal["message.seen"] = "message.seen"
    message: ChatMessage

    def sheet_row(self) -> dict[str, Any]:
        m = self.message
        return {"row_id": m.message_id, "kind": "message", "account": m.account_id,
                "conversation": m.conversation_id, "sender": m.sender, "time": m.sent_at,
                "text": m.text, "classification": "",
                "status": "sent" if m.direction == "out" else "received", "message_ids": ""}

    @classmethod
    def of(cls, m: ChatMessage) -> "MessageSeen":
        return cls(event_id=f"message.seen:{m.message_id}", account_id=m.account_id,
                   conversation_id=m.conversation_id, message=m)

    @classmethod
    def example(cls) -> "MessageSeen":
        return cls.of(ChatMessage(message_id="m1", account_id="a", site="meetme", conversation_id="c",
                                  sender="Ann", text="hi", sent_at="2026-01-01T10:00:00Z"))


class DraftCreated(_Event):
    consumers = ("sheets", "notify")
    type: Literal["draft.created"] = "draft.created"
    draft_id: str
    message_ids: list[str]
    classification: Classification
    text: str

    def sheet_row(self) -> dict[str, Any]:
        # the status at creation: the sheet is an append-only log
        return {"row_id": self.draft_id, "kind": "draft", "account": self.account_id,
                "conversation": self.conversation_id, "sender": "draft", "time": self.occurred_at,
                "text": self.text, "classification": self.classification, "status": DraftStatus.PENDING,
                "message_ids": " ".join(self.message_ids)}

    @classmethod
    def of_draft(cls, doc: dict) -> "DraftCreated":
        """The event of a stored draft (at the time it was created)."""
        return cls.make(draft_id=doc["_id"], account_id=doc["account_id"],
                        conversation_id=doc["conversation_id"], message_ids=doc.get("message_ids") or [],
                        classification=doc.get("classification") or "needs_reply",
                        text=doc.get("text") or "", **_at(doc.get("created_at")))

    @staticmethod
    def event_id_of(draft_id: str) -> str:
        return f"draft.created:{draft_id}"

    @classmethod
    def make(cls, *, draft_id: str, account_id: str, conversation_id: str, message_ids: list[str],
             classification: Classification, text: str, **at: datetime) -> "DraftCreated":
        return cls(event_id=cls.event_id_of(draft_id), draft_id=draft_id, account_id=account_id,
                   conversation_id=conversation_id, message_ids=message_ids,
                   classification=classification, text=text, **at)

    @classmethod
    def example(cls) -> "DraftCreated":
        return cls.make(draft_id="d1", account_id="a", conversation_id="c", message_ids=["m1"],
                        classification="needs_reply", text="Hello!")


class ConversationClassified(_Event):
    """The AI read the conversation and found no reply is needed (no_reply_needed, spam...)."""
    consumers = ("sheets",)
    type: Literal["conversation.classified"] = "conversation.classified"
    last_message_id: str
    classification: Classification

    @classmethod
    def make(cls, *, draft_id: str, account_id: str, conversation_id: str, last_message_id: str,
             classification: Classification, **at: datetime) -> "ConversationClassified":
        """`draft_id`: the id a draft of this history would have had (one per history)."""
        return cls(event_id=f"conversation.classified:{draft_id}", account_id=account_id,
                   conversation_id=conversation_id, last_message_id=last_message_id,
                   classification=classification, **at)

    def sheet_row(self) -> dict[str, Any]:
        return {"row_id": self.event_id, "kind": "classification", "account": self.account_id,
                "conversation": self.conversation_id, "sender": "", "time": self.occurred_at,
                "text": "", "classification": self.classification, "status": "no_reply",
                "message_ids": self.last_message_id}

    @classmethod
    def example(cls) -> "ConversationClassified":
        return cls.make(draft_id="d1", account_id="a", conversation_id="c", last_message_id="m1",
                        classification="spam_or_scam")


class DraftRequested(_Event):
    """A person asked the AI for a draft of a conversation: "Retry AI" after a failure, or
    "Redraft" with an instruction (the reviewer's words: the model gets them as data in the
    user message, never as system text). The id names the conversation's newest message and
    the request, so two clicks give one event (and one draft)."""
    consumers = ("ai",)
    type: Literal["draft.requested"] = "draft.requested"
    last_message_id: str
    request: str
    requested_by: str
    instruction: str | None = None
    replaces: str | None = None        # the draft a redraft supersedes

    @classmethod
    def make(cls, *, account_id: str, conversation_id: str, last_message_id: str, request: str,
             requested_by: str, instruction: str | None = None,
             replaces: str | None = None) -> "DraftRequested":
        return cls(event_id=f"draft.requested:{last_message_id}|{request}", account_id=account_id,
                   conversation_id=conversation_id, last_message_id=last_message_id,
                   request=request, requested_by=requested_by, instruction=instruction,
                   replaces=replaces)

    @classmethod
    def example(cls) -> "DraftRequested":
        return cls.make(account_id="a", conversation_id="c", last_message_id="m1", request="r1",
                        requested_by="owner", instruction="shorter, please", replaces="d1")


class DraftApproved(_Event):
    consumers = ("sheets", "send")
    type: Literal["draft.approved"] = "draft.approved"
    draft_id: str
    text: str
    approved_by: str
    idempotency_key: str

    @classmethod
    def make(cls, *, draft_id: str, account_id: str, conversation_id: str, text: str,
             approved_by: str, **at: datetime) -> "DraftApproved":
        return cls(event_id=f"draft.approved:{draft_id}", draft_id=draft_id, account_id=account_id,
                   conversation_id=conversation_id, text=text, approved_by=approved_by,
                   idempotency_key=f"send:{draft_id}", **at)

    @classmethod
    def of_draft(cls, doc: dict) -> "DraftApproved":
        """The send event of a stored approved draft (its final text, who decided)."""
        return cls.make(draft_id=doc["_id"], account_id=doc["account_id"],
                        conversation_id=doc["conversation_id"], text=doc["text"],
                        approved_by=doc.get("decided_by") or "unknown",
                        **_at(doc.get("approved_at") or doc.get("edited_at")))

    def sheet_row(self) -> dict[str, Any]:
        return _decision_row(self, self.approved_by, self.text, DraftStatus.APPROVED)

    @classmethod
    def example(cls) -> "DraftApproved":
        return cls.make(draft_id="d1", account_id="a", conversation_id="c", text="Hello!",
                        approved_by="owner")


class DraftRejected(_Event):
    consumers = ("sheets",)
    type: Literal["draft.rejected"] = "draft.rejected"
    draft_id: str
    rejected_by: str
    reason: str | None = None

    @classmethod
    def make(cls, *, draft_id: str, account_id: str, conversation_id: str, rejected_by: str,
             reason: str | None, **at: datetime) -> "DraftRejected":
        return cls(event_id=f"draft.rejected:{draft_id}", draft_id=draft_id, account_id=account_id,
                   conversation_id=conversation_id, rejected_by=rejected_by, reason=reason, **at)

    @classmethod
    def of_draft(cls, doc: dict) -> "DraftRejected":
        return cls.make(draft_id=doc["_id"], account_id=doc["account_id"],
                        conversation_id=doc["conversation_id"],
                        rejected_by=doc.get("decided_by") or "unknown", reason=doc.get("reject_reason"),
                        **_at(doc.get("rejected_at")))

    def sheet_row(self) -> dict[str, Any]:
        return _decision_row(self, self.rejected_by, self.reason, DraftStatus.REJECTED)

    @classmethod
    def example(cls) -> "DraftRejected":
        return cls.make(draft_id="d1", account_id="a", conversation_id="c", rejected_by="owner",
                        reason="rude")


class ReplySent(_Event):
    consumers = ("sheets",)
    type: Literal["reply.sent"] = "reply.sent"
    draft_id: str
    idempotency_key: str
    site_message_id: str | None = None
    text: str | None = None           # what was sent (events queued before it was added lack it)

    @classmethod
    def make(cls, *, draft_id: str, account_id: str, conversation_id: str, idempotency_key: str,
             site_message_id: str | None, text: str | None = None, **at: datetime) -> "ReplySent":
        return cls(event_id=f"reply.sent:{draft_id}", draft_id=draft_id, account_id=account_id,
                   conversation_id=conversation_id, idempotency_key=idempotency_key,
                   site_message_id=site_message_id, text=text, **at)

    @classmethod
    def of_send(cls, doc: dict) -> "ReplySent":
        """The event of a reply recorded in `sends`."""
        return cls.make(draft_id=doc["draft_id"], account_id=doc["account_id"],
                        conversation_id=doc["conversation_id"], idempotency_key=doc["_id"],
                        site_message_id=doc.get("site_message_id"), text=doc.get("text"),
                        **_at(doc.get("sent_at")))

    def sheet_row(self) -> dict[str, Any]:
        return {"row_id": self.event_id, "kind": "reply", "account": self.account_id,
                "conversation": self.conversation_id, "sender": "", "time": self.occurred_at,
                "text": self.text, "status": DraftStatus.SENT, "message_ids": self.site_message_id or ""}

    @classmethod
    def example(cls) -> "ReplySent":
        return cls.make(draft_id="d1", account_id="a", conversation_id="c", idempotency_key="send:d1",
                        site_message_id="s9", text="Hello!")


class ChildFailed(_Event):
    """The supervisor gave up on a child (restart intensity exceeded, or a permanent error)."""
    consumers = ("notify",)
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

    @classmethod
    def example(cls) -> "ChildFailed":
        return cls.make(child="ai:0", kind="ai", account_id=None, error="boom", at=1.0)


class NeedsLogin(_Event):
    """A browser session cannot log in (wrong or expired credentials): a person must act."""
    consumers = ("notify",)
    type: Literal["account.needs_login"] = "account.needs_login"
    conversation_id: str = ""
    child: str
    error: str

    @classmethod
    def make(cls, *, child: str, account_id: str, error: str, at: float) -> "NeedsLogin":
        return cls(event_id=f"account.needs_login:{account_id}:{int(at * 1000)}", child=child,
                   account_id=account_id, error=error[:500])

    @classmethod
    def example(cls) -> "NeedsLogin":
        return cls.make(child="browser:meetme:a", account_id="a", error="captcha", at=1.0)


class DeadLetterSeen(BaseModel):
    """A message seen on the dead-letter exchange (not an Event: its body may be anything)."""
    model_config = ConfigDict(extra="forbid")
    type: Literal["dead_letter.seen"] = "dead_letter.seen"
    event_id: str
    routing_key: str
    consumer: str
    reason: str
    message_id: str | None = None


# The registry (see the module docstring): every event type, in one place.
EVENT_TYPES: tuple[type[_Event], ...] = (MessageSeen, DraftCreated, ConversationClassified, DraftApproved,
                                         DraftRejected, ReplySent, ChildFailed, NeedsLogin,
                                         DraftRequested)
Event = Annotated[Union[EVENT_TYPES], Field(discriminator="type")]  # type: ignore[valid-type]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def routing_key(event_type: type[_Event]) -> str:
    return event_type.model_fields["type"].default


def routes() -> dict[str, list[str]]:
    """Consumer kind -> the routing keys (event types) its queue is bound to."""
    out: dict[str, list[str]] = {}
    for t in EVENT_TYPES:
        for kind in t.consumers:
            out.setdefault(kind, []).append(routing_key(t))
    return out


def _at(value: Any) -> dict[str, datetime]:
    """`occurred_at=` for an event rebuilt from a stored document's time (if it has one)."""
    return {"occurred_at": value} if isinstance(value, datetime) else {}


def _decision_row(e: "DraftApproved | DraftRejected", by: str, text: str | None, status: str) -> dict[str, Any]:
    return {"row_id": e.event_id, "kind": "decision", "account": e.account_id,
            "conversation": e.conversation_id, "sender": by, "time": e.occurred_at, "text": text,
            "status": status, "message_ids": e.draft_id}


def parse_event(body: bytes | str) -> Event:
    """Validate a wire event; raises pydantic.ValidationError with the reason."""
    return EVENT_ADAPTER.validate_json(body)


def dump_event(event: Event) -> bytes:
    return event.model_dump_json().encode("utf-8")
