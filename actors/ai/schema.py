"""The AI's answer as a pydantic model, its JSON schema (sent as `response_format`), and robust
parsing of the raw message content into it.

Models that honour a schema answer with bare JSON; others wrap it. Parsing accepts what they
commonly do without guessing at meaning: a `<think>...</think>` block before the answer (dropped),
a markdown fence anywhere (its body), prose around one JSON object (the object), a classification
in another case or with spaces/hyphens (`Needs_Reply`, `needs reply`). Everything else is an
InvalidAnswer whose problem says precisely what was wrong, never quoting the content.
"""
from __future__ import annotations

import json
import re
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from actors.ai.errors import InvalidAnswer
from contracts.events import Classification

_THINK = re.compile(r"<(think|thinking|reasoning)>.*?</\1>", re.S | re.I)
_OPEN_THINK = re.compile(r"<(think|thinking|reasoning)>", re.I)
_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```", re.S)
CLASSES = list(get_args(Classification))
_MAX_OBJECT_STARTS = 50


class AIAnswer(BaseModel):
    """{classification, reply, reason}: a reply is required exactly when one is needed."""
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    classification: Classification
    reply: str | None = Field(default=None)
    reason: str = Field(min_length=1, max_length=500)

    @model_validator(mode="before")
    @classmethod
    def _enum_any_case(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("classification"), str):
            norm = re.sub(r"[\s-]+", "_", data["classification"].strip().lower())
            if norm in CLASSES:
                data = {**data, "classification": norm}
        return data

    @model_validator(mode="after")
    def _reply_when_needed(self) -> "AIAnswer":
        if self.classification == "needs_reply" and not self.reply:
            raise ValueError("classification needs_reply requires a non-empty reply")
        if self.classification != "needs_reply":
            self.reply = None  # nothing will be sent for the other classes: do not keep text
        return self


def length_caps(max_tokens: int | None, max_reply_chars: int) -> tuple[int, int] | None:
    """(reply, reason) character caps that make the whole JSON answer end within `max_tokens`
    (2 characters a token: chat text averages 3-4, digits and rare words fewer; the JSON around
    them ~30 tokens): a server that enforces the schema by grammar (llama.cpp) then closes the
    answer in time instead of letting a small model ramble into the token limit."""
    if not max_tokens:
        return None
    room = max(30, max_tokens - 30) * 2
    return min(max_reply_chars, room * 2 // 3), min(500, room // 3)


def response_format(kind: str | None, caps: tuple[int, int] | None = None) -> dict[str, Any] | None:
    """The `response_format` for `kind`: json_schema (the answer's schema, strict; with `caps`,
    maxLength on reply and reason), json_object, or None (prompt-only contract)."""
    if kind == "json_schema":
        reply: dict[str, Any] = {"type": ["string", "null"]}
        reason: dict[str, Any] = {"type": "string"}
        if caps:
            reply["maxLength"], reason["maxLength"] = caps
        schema = {"type": "object", "additionalProperties": False,
                  "required": ["classification", "reply", "reason"],
                  "properties": {"classification": {"type": "string", "enum": CLASSES},
                                 "reply": reply, "reason": reason}}
        return {"type": "json_schema",
                "json_schema": {"name": "draft_answer", "strict": True, "schema": schema}}
    if kind == "json_object":
        return {"type": "json_object"}
    return None


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(x) for x in err["loc"]) or "answer"
        parts.append(f"{loc}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def extract_json(content: str | None) -> Any:
    """The JSON value in the content: bare, fenced, or the first object amid prose."""
    text = _THINK.sub("", content or "").strip()
    if _OPEN_THINK.search(text):
        raise InvalidAnswer("the answer is a <think> block that never ends (no JSON after it)")
    if not text:
        raise InvalidAnswer("the answer is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        first_error = exc
    for fenced in _FENCE.findall(text):
        try:
            return json.loads(fenced.strip())
        except json.JSONDecodeError as exc:
            first_error = exc
            text = fenced.strip()   # report the fenced block's error, not the prose's
    decoder = json.JSONDecoder()
    starts = [i for i, ch in enumerate(text) if ch == "{"][:_MAX_OBJECT_STARTS]
    for i in starts:
        try:
            value, _ = decoder.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            if i == starts[0]:
                first_error = exc
            continue
        if isinstance(value, dict):
            return value
    if not starts:
        raise InvalidAnswer(f"the answer contains no JSON object ({len(text)} characters of text)")
    raise InvalidAnswer(f"the answer's JSON is malformed ({first_error.msg} at char "
                        f"{first_error.pos})")


def parse_answer(content: str | None, max_reply_chars: int) -> AIAnswer:
    """Content -> AIAnswer, or InvalidAnswer naming what was wrong (never the content itself)."""
    data = extract_json(content)
    if not isinstance(data, dict):
        raise InvalidAnswer(f"the answer is JSON but not an object (got {type(data).__name__})")
    try:
        answer = AIAnswer.model_validate(data)
    except ValidationError as exc:
        raise InvalidAnswer(f"the JSON object has the wrong shape ({_describe(exc)})") from None
    if answer.reply and len(answer.reply) > max_reply_chars:
        raise InvalidAnswer(f"the reply is {len(answer.reply)} characters, more than {max_reply_chars}")
    return answer
