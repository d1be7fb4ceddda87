"""Errors of the AI layer. Retryable ones carry what the retry policy needs (status, Retry-After);
none of them ever carries request headers, so the API key cannot leak through an exception."""
from __future__ import annotations


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
    is what the corrective retry tells the model)."""

    def __init__(self, problem: str, *, leak: bool = False):
        super().__init__(problem)
        self.problem = problem
        self.leak = leak  # the answer echoed secrets or instructions: never send it back
