"""Errors of the AI layer. Retryable ones carry what the retry policy needs (status, Retry-After);
none of them ever carries request headers, so the API key cannot leak through an exception.

Three kinds, told apart because each is handled differently:
- TransientAIError: the server is unreachable, slow, failing (5xx) or busy (429): retried with
  backoff; counted by the shared circuit breaker (except 429).
- InvalidAnswer: the server answered 200 but the answer is unusable (no choices, a tool call, not
  JSON, truncated...): the model's problem, not the server's -- one corrective retry, then a dead
  letter; the breaker never sees it.
- contracts.errors.PermanentError (400/401/403/404): retrying cannot help; dead-lettered at once.
  Except ContextTooLong (a 400 saying the prompt exceeds the model's context): the prompt is
  shrunk and sent again, a bounded number of times.
"""
from __future__ import annotations

from contracts.errors import DeadLetter, PermanentError


class TransientAIError(Exception):
    """Worth retrying: timeout, connection error, 5xx, 429. `retry_after` is the server's hint."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after

    @property
    def counts_as_failure(self) -> bool:
        """Whether the circuit breaker should count it: a 429 means busy, not broken."""
        return self.status != 429


class BreakerOpen(TransientAIError):
    """The shared circuit breaker is open and the pool is configured to fail fast."""


class InvalidAnswer(Exception):
    """The model answered, but not with a valid, safe answer; `problem` says what was wrong (and
    is what the corrective retry tells the model). `content` is the rejected text when it may be
    shown to the model again (never after a leak); `truncated` marks finish_reason "length"."""

    def __init__(self, problem: str, *, leak: bool = False, content: str | None = None,
                 truncated: bool = False):
        super().__init__(problem)
        self.problem = problem
        self.leak = leak  # the answer echoed secrets or instructions: never send it back
        self.content = None if leak else content
        self.truncated = truncated


class ParameterRejected(PermanentError):
    """HTTP 400/422 naming a request parameter the server does not support (`param`), e.g. a
    `response_format` it cannot honour: the caller may drop the parameter and ask again."""

    def __init__(self, message: str, param: str):
        super().__init__(message)
        self.param = param


class ContextTooLong(PermanentError):
    """The server refused the prompt as longer than its context (llama.cpp
    `exceed_context_size_error`, OpenAI `context_length_exceeded`, vLLM's "maximum context
    length"): not permanent for the conversation -- a shorter prompt may fit. `n_ctx` and
    `n_prompt` are the server's figures when it gave them."""

    def __init__(self, message: str, *, n_ctx: int | None = None, n_prompt: int | None = None):
        super().__init__(message)
        self.n_ctx = n_ctx
        self.n_prompt = n_prompt

    def __reduce__(self):   # across Ray: keep the figures
        return (_context_too_long, (str(self), self.n_ctx, self.n_prompt))


class AIGaveUp(DeadLetter):
    """The AI could not draft this conversation (an answer still invalid after its corrective
    retry, a prompt that cannot be made to fit): dead-lettered AND handed to a person, who sees
    `reason` in the desk. `kind` is the store's failure kind (actors/store/aifailures.py)."""

    def __init__(self, reason: str, kind: str = "invalid_answer"):
        super().__init__(reason)
        self.kind = kind

    def __reduce__(self):
        return (AIGaveUp, (self.reason, self.kind))


def _context_too_long(message: str, n_ctx: int | None, n_prompt: int | None) -> ContextTooLong:
    return ContextTooLong(message, n_ctx=n_ctx, n_prompt=n_prompt)
