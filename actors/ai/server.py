"""What one AI endpoint says about itself: its context size, its slot count, its tokenizer.

Asked once per worker, at its first draft, from what servers publish:
- `GET {base}/models` (every OpenAI-compatible server): llama.cpp adds `meta.n_ctx` and
  `owned_by: "llamacpp"`, vLLM `max_model_len` and `owned_by: "vllm"`, others `context_length`;
- llama.cpp only: `GET {root}/props` (`total_slots`, `default_generation_settings.n_ctx`, the
  context of one slot) and `POST {root}/tokenize`; vLLM: `POST {root}/tokenize` (`count`).
Nothing else is probed (a hosted API is not sent requests it would 404). Configuration wins:
`ai.context_tokens`, `ai.max_in_flight`. A server that says nothing leaves the context unknown
(the prompt is not cut until the server refuses one as too long) and tokens are estimated
conservatively (UTF-8 bytes / 3: more than real tokenizers count for Latin-script text).

A context error teaches: the server's `n_ctx` replaces what we believed, and the ratio of its
token count to ours (`scale`) makes the next estimate as large as the server's.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any, Callable

from actors.ai.client import AIClient, _endpoint, server_root
from actors.ai.errors import ContextTooLong, TransientAIError

log = logging.getLogger(__name__)
REDISCOVER_S = 60.0      # nothing answered (a server still starting): ask again after this
BYTES_PER_TOKEN = 3.0    # the conservative estimate without a tokenizer
MAX_SCALE = 4.0


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)


def _positive(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


class ServerInfo:
    def __init__(self, client: AIClient, model: str, *, context_tokens: int | None = None,
                 max_in_flight: int | None = None, clock: Callable[[], float] = time.monotonic):
        self.client = client
        self.model = model
        self.configured_context = context_tokens
        self.configured_in_flight = max_in_flight
        self.context_tokens = context_tokens
        self.slots: int | None = max_in_flight
        self.kind: str | None = None          # "llama.cpp" | "vllm" | None (unknown)
        self.scale = 1.0                       # the server's tokens per token we count
        self._tokenize_url: str | None = None
        self._clock = clock
        self._asked_at: float | None = None
        self._answered = False
        self._lock: asyncio.Lock | None = None

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "context_tokens": self.context_tokens, "slots": self.slots,
                "tokenizer": "server" if self._tokenize_url else "estimate",
                "scale": round(self.scale, 3)}

    async def discover(self) -> None:
        """Ask the server once (again after REDISCOVER_S if it did not answer); callers arriving
        while it is being asked wait for its answer."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            await self._discover()

    async def _discover(self) -> None:
        now = self._clock()
        if self._answered or (self._asked_at is not None and now - self._asked_at < REDISCOVER_S):
            return
        self._asked_at = now
        root = server_root(self.client.base)
        try:
            models = await self.client.probe(_endpoint(self.client.base, "/models"))
        except TransientAIError:   # not up yet: the drafts will say more; asked again later
            return
        entries = models.get("data") if isinstance(models, dict) else None
        entries = [e for e in entries or [] if isinstance(e, dict)]
        if not entries:
            return
        self._answered = True
        entry = next((e for e in entries if e.get("id") == self.model), entries[0])
        meta = entry.get("meta") if isinstance(entry.get("meta"), dict) else {}
        owner = str(entry.get("owned_by") or "").lower()
        n_ctx = (_positive(meta.get("n_ctx")) or _positive(entry.get("max_model_len")) or
                 _positive(entry.get("context_length")) or _positive(entry.get("context_window")))
        slots = None
        if owner == "llamacpp" or "n_ctx" in meta:
            self.kind, self._tokenize_url = "llama.cpp", root + "/tokenize"
            try:
                props = await self.client.probe(root + "/props")
            except TransientAIError:
                props = None
            if isinstance(props, dict):
                slots = _positive(props.get("total_slots"))
                settings = props.get("default_generation_settings")
                if isinstance(settings, dict):
                    n_ctx = _positive(settings.get("n_ctx")) or n_ctx
        elif owner == "vllm" or "max_model_len" in entry:
            self.kind, self._tokenize_url = "vllm", root + "/tokenize"
        if self.configured_context is None:
            self.context_tokens = n_ctx
        if self.configured_in_flight is None:
            self.slots = slots
        log.info("AI endpoint described", extra={"endpoint": self.client.endpoint, **self.describe()})

    async def count(self, text: str) -> int:
        """Tokens in `text` as we count them: the server's tokenizer when it has one, else the
        estimate (multiply by `scale` for the server's figure)."""
        if self._tokenize_url:
            try:
                got = await self.client.probe(self._tokenize_url, {
                    "content": text, "prompt": text, "model": self.model, "add_special": False})
            except TransientAIError:   # this once: the estimate
                return estimate_tokens(text)
            if isinstance(got, dict):
                n = _positive(got.get("count"))
                tokens = got.get("tokens")
                if n is None and isinstance(tokens, list):
                    n = len(tokens)
                if n is not None:
                    return n
            log.warning("AI endpoint's /tokenize refused to count; estimating tokens from now on",
                        extra={"endpoint": self.client.endpoint})
            self._tokenize_url = None
        return estimate_tokens(text)

    def learn(self, exc: ContextTooLong, sent_tokens: int | None) -> None:
        """A prompt we sized at `sent_tokens` (server units, as we believed) was too long."""
        if exc.n_ctx:
            self.context_tokens = exc.n_ctx if self.context_tokens is None \
                else min(self.context_tokens, exc.n_ctx)
        if exc.n_prompt and sent_tokens and exc.n_prompt > sent_tokens:
            self.scale = min(MAX_SCALE, self.scale * exc.n_prompt / sent_tokens)
        if not exc.n_ctx and not exc.n_prompt:   # no figures: believe a quarter less than before
            base = self.context_tokens or sent_tokens
            if base:
                self.context_tokens = max(256, int(base * 0.75))
        log.warning("AI endpoint refused a prompt as too long; prompts are sized anew", extra={
            "endpoint": self.client.endpoint, "sent_tokens": sent_tokens,
            "server_prompt_tokens": exc.n_prompt, "server_context": exc.n_ctx, **self.describe()})
