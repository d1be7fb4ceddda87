"""Chat-completion messages from conf/prompts/draft.yaml.

Instructions live only in the system message; the conversation travels as a JSON document in the
user message. JSON encoding keeps chat text inside string literals, so a message cannot close the
data block or pose as a new instruction section -- the model sees it as quoted data.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from contracts.events import ChatMessage
from contracts.settings import resolve

PLACEHOLDER = "{conversation_json}"


@dataclass(frozen=True)
class Prompt:
    system: str
    user: str
    correction: str
    request_note: str = ""        # joins the system message when a reviewer's instruction is sent

    @classmethod
    def load(cls, path: Path) -> "Prompt":
        """Read and check the prompt file (a ValueError names the file and what is missing)."""
        full = resolve(path)
        data = yaml.safe_load(full.read_text(encoding="utf-8")) or {}
        missing = [k for k in ("system", "user", "correction") if not str(data.get(k) or "").strip()]
        if missing:
            raise ValueError(f"{full}: missing {', '.join(missing)}")
        if PLACEHOLDER not in data["user"]:
            raise ValueError(f"{full}: `user` must contain {PLACEHOLDER}")
        return cls(system=data["system"].strip(), user=data["user"].strip(),
                   correction=data["correction"].strip(),
                   request_note=str(data.get("request_note") or "").strip())

    @property
    def instructions(self) -> str:
        """Every text of ours the model may be shown (what a reply must never leak)."""
        return "\n".join(t for t in (self.system, self.request_note) if t)

    @staticmethod
    def conversation_data(messages: list[ChatMessage]) -> dict[str, Any]:
        """What the model may know about the conversation: who wrote what, when. No ids."""
        return {"messages": [{"from": "me" if m.direction == "out" else "contact",
                              "sender": m.sender, "sent_at": m.sent_at, "text": m.text}
                             for m in messages]}

    def messages(self, conversation: list[ChatMessage],
                 instruction: str | None = None) -> list[dict[str, str]]:
        """`instruction`: a reviewer's request for this draft, sent as data in the user message."""
        doc = self.conversation_data(conversation)
        system = self.system
        if instruction:
            doc["reviewer_request"] = instruction
            system = "\n".join(t for t in (self.system, self.request_note) if t)
        data = json.dumps(doc, ensure_ascii=False, indent=1)
        return [{"role": "system", "content": system},
                {"role": "user", "content": self.user.replace(PLACEHOLDER, data)}]

    def correction_turn(self, bad_content: str | None, problem: str) -> list[dict[str, str]]:
        """The rejected answer and what was wrong with it: appended to the conversation."""
        return [{"role": "assistant", "content": bad_content or ""},
                {"role": "user", "content": self.correction.replace("{problem}", problem)}]

    def corrected(self, messages: list[dict[str, str]], bad_content: str | None,
                  problem: str) -> list[dict[str, str]]:
        """The conversation so far plus the rejected answer and what was wrong with it."""
        return [*messages, *self.correction_turn(bad_content, problem)]
