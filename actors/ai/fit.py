"""A prompt that fits the model's context: the newest messages whole, older ones dropped first.

The budget for the prompt is the context minus the answer's `max_tokens`, minus what the chat
template adds around each message. When the whole history fits (one count: the server's
/tokenize, or the estimate), it is sent as it is. Otherwise messages are kept from the newest
back while they fit; the first one that does not is cut in the middle (its head and tail kept,
a marker saying how much is missing) when a useful part of it fits, else dropped with all older
ones. The result says what was cut (`cut`), stored on the draft so a reviewer knows the model
did not see everything.

An unknown context (the server does not say, none configured) cuts nothing; the server's
context error then teaches the size (actors/ai/server.py) and the prompt is fitted again.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from actors.ai.errors import AIGaveUp
from actors.ai.prompt import Prompt
from actors.ai.server import ServerInfo
from contracts.events import ChatMessage

TEMPLATE_TOKENS = 8       # a chat template's tokens around one message (role, separators)
MARGIN_TOKENS = 16        # the assistant's opening, a BOS token, rounding
MIN_CUT_TOKENS = 48       # less room than this for a cut message: drop it instead
ENTRY_TOKENS = 6          # the JSON around one message's entry (braces, keys, indentation)
MARKER = " […{n} characters cut…] "


@dataclass(frozen=True)
class Fitted:
    messages: list[dict[str, str]]
    tokens: int | None                 # the prompt's size in the server's tokens (estimated)
    cut: dict[str, Any] | None = None  # what was left out, when anything was


def _joined(messages: list[dict[str, str]]) -> str:
    return "\n".join(m["content"] for m in messages)


def _entry(message: ChatMessage) -> str:
    return json.dumps(Prompt.conversation_data([message])["messages"][0], ensure_ascii=False,
                      indent=1)


class Fitter:
    def __init__(self, prompt: Prompt, info: ServerInfo):
        self.prompt = prompt
        self.info = info

    async def _tokens(self, text: str) -> int:
        return int(await self.info.count(text) * self.info.scale + 0.999)

    async def measure(self, messages: list[dict[str, str]]) -> int:
        """The messages' size in the server's tokens (as counted or estimated)."""
        return await self._tokens(_joined(messages))

    def budget(self, max_tokens: int | None, n_messages: int) -> int | None:
        ctx = self.info.context_tokens
        if not ctx:
            return None
        return ctx - (max_tokens or 0) - MARGIN_TOKENS - TEMPLATE_TOKENS * n_messages

    async def fit(self, conversation: list[ChatMessage], max_tokens: int | None,
                  extra: list[dict[str, str]] | None = None) -> Fitted:
        """Messages for the conversation (plus `extra` after it: a corrective turn) within the
        context; AIGaveUp(kind "context") when even the instructions and `extra` do not fit."""
        extra = list(extra or [])
        messages = self.prompt.messages(conversation) + extra
        budget = self.budget(max_tokens, len(messages))
        if budget is None:
            return Fitted(messages, None)
        if budget < MIN_CUT_TOKENS:
            raise AIGaveUp(f"max_tokens {max_tokens} leaves no room for a prompt in the model's "
                           f"context of {self.info.context_tokens} tokens", kind="context")
        total = await self._tokens(_joined(messages))
        if total <= budget:
            return Fitted(messages, total)
        fixed = await self._tokens(_joined(self.prompt.messages([]) + extra))
        for _ in range(4):   # the JSON's separators may add a little: shrink until it fits
            kept, cut_chars = await self._keep(conversation, budget - fixed)
            messages = self.prompt.messages(kept) + extra
            total = await self._tokens(_joined(messages))
            if total <= budget and kept:
                dropped = len(conversation) - len(kept)
                return Fitted(messages, total, {
                    "dropped_messages": dropped, "cut_message_chars": cut_chars,
                    "kept_messages": len(kept), "of_messages": len(conversation),
                    "prompt_tokens": total, "context_tokens": self.info.context_tokens})
            budget -= max(8, total - budget)
        raise AIGaveUp(f"the conversation's newest message cannot be fitted into the model's "
                       f"context of {self.info.context_tokens} tokens with the instructions and "
                       f"max_tokens {max_tokens}", kind="context")

    async def _keep(self, conversation: list[ChatMessage], room: int
                    ) -> tuple[list[ChatMessage], int]:
        """The newest messages that fit in `room` tokens; returns them (oldest first) and how
        many characters were cut from the one cut in the middle (0: none)."""
        kept: list[ChatMessage] = []
        cut_chars = 0
        for m in reversed(conversation):
            need = await self._tokens(_entry(m)) + ENTRY_TOKENS
            if need <= room:
                kept.append(m)
                room -= need
                continue
            if room >= MIN_CUT_TOKENS:
                shorter, cut_chars = await self._cut(m, need, room)
                if shorter is not None:
                    kept.append(shorter)
            break
        return kept[::-1], cut_chars

    async def _cut(self, m: ChatMessage, need: int, room: int) -> tuple[ChatMessage | None, int]:
        text = m.text
        ratio = room / need
        for _ in range(4):
            keep = int(len(text) * ratio * 0.9) - len(MARKER)
            if keep < 20:
                return None, 0
            head = keep // 2
            gone = len(text) - keep
            shorter = m.model_copy(update={"text": text[:head] + MARKER.format(n=gone) +
                                           text[len(text) - (keep - head):]})
            got = await self._tokens(_entry(shorter)) + ENTRY_TOKENS
            if got <= room:
                return shorter, gone
            ratio *= room / got
        return None, 0
