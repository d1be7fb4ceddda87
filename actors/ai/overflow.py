"""Reading a server's "the prompt is longer than my context" error, whatever server it is.

llama.cpp: 400 `{"error": {"type": "exceed_context_size_error", "n_prompt_tokens": 3031,
"n_ctx": 2048, "message": "request (3031 tokens) exceeds the available context size (2048
tokens)..."}}`; OpenAI: 400 code `context_length_exceeded`, "This model's maximum context length
is 8192 tokens. However, your messages resulted in 9000 tokens"; vLLM: 400 "This model's maximum
context length is 4096 tokens. However, you requested 5000 tokens (4800 in the messages, 200 in
the completion)". The figures are taken from the body's fields when given, else from the message.
"""
from __future__ import annotations

import re
from typing import Any

from actors.ai.errors import ContextTooLong

# a prompt longer than the context, as llama.cpp, OpenAI, vLLM, Ollama and LM Studio say it
_CONTEXT_TYPES = {"exceed_context_size_error", "context_length_exceeded"}
_CONTEXT_TEXT = re.compile(r"maximum context length|exceeds? (the )?(available )?context|context "
                           r"(length|size|window) (exceeded|is exceeded)|prompt is too long|"
                           r"too many tokens|input length.*exceeds", re.I)
_CTX_FIGURES = (re.compile(r"context (?:size|length|window) (?:is |of )?\(?(\d+)", re.I),
                re.compile(r"maximum context length is (\d+)", re.I))
_PROMPT_FIGURES = (re.compile(r"\((\d+) (?:tokens )?in the messages", re.I),
                   re.compile(r"request \((\d+) tokens\)", re.I),
                   re.compile(r"(?:requested|resulted in|you requested) (\d+) tokens", re.I))


def _first(patterns: tuple[re.Pattern, ...], text: str) -> int | None:
    for pat in patterns:
        m = pat.search(text)
        if m:
            return int(m.group(1))
    return None


def context_error(status: int, err: dict[str, Any], what: str) -> ContextTooLong | None:
    """A ContextTooLong when the error body says the prompt exceeds the context, with the
    server's figures (llama.cpp's `n_ctx` / `n_prompt_tokens`, else read from the message)."""
    if status not in (400, 413, 422):
        return None
    message = str(err.get("message") or "")
    kinds = {str(err.get("type") or ""), str(err.get("code") or "")}
    if not (kinds & _CONTEXT_TYPES or _CONTEXT_TEXT.search(message)):
        return None

    def number(key: str) -> int | None:
        v = err.get(key)
        return v if isinstance(v, int) and v > 0 else None

    n_ctx = number("n_ctx") or _first(_CTX_FIGURES, message)
    n_prompt = number("n_prompt_tokens") or _first(_PROMPT_FIGURES, message)
    figures = f" ({n_prompt or '?'} tokens, context {n_ctx or '?'})" if n_ctx or n_prompt else ""
    return ContextTooLong(f"{what}: the prompt exceeds the model's context{figures}",
                          n_ctx=n_ctx, n_prompt=n_prompt)
