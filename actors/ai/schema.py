"""The AI's answer as a pydantic model, and parsing of the raw message content into it."""
from __future__ import annotations

import json
import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from actors.ai.errors import InvalidAnswer
from contracts.events import Classification

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


class AIAnswer(BaseModel):
    """{classification, reply, reason}: a reply is required exactly when one is needed."""
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    classification: Classification
    reply: str | None = Field(default=None)
    reason: str = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _reply_when_needed(self) -> "AIAnswer":
        if self.classification == "needs_reply" and not self.reply:
            raise ValueError("classification needs_reply requires a non-empty reply")
        if self.classification != "needs_reply":
            self.reply = None  # nothing will be sent for the other classes: do not keep text
        return self


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(x) for x in err["loc"]) or "answer"
        parts.append(f"{loc}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def parse_answer(content: str | None, max_reply_chars: int) -> AIAnswer:
    """Content -> AIAnswer, or InvalidAnswer naming what was wrong (never the content itself)."""
    text = (content or "").strip()
    fenced = _FENCE.match(text)
    if fenced:  # some models wrap JSON in a markdown fence even in JSON mode
        text = fenced.group(1)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidAnswer(f"the answer is not JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(data, dict):
        raise InvalidAnswer(f"the answer is JSON but not an object (got {type(data).__name__})")
    try:
        answer = AIAnswer.model_validate(data)
    except ValidationError as exc:
        raise InvalidAnswer(f"the JSON object has the wrong shape ({_describe(exc)})") from None
    if answer.reply and len(answer.reply) > max_reply_chars:
        raise InvalidAnswer(f"the reply is {len(answer.reply)} characters, more than {max_reply_chars}")
    return answer
