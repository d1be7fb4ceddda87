"""The retry policy (tenacity): which failures are retried and how long to wait.

Retried: TransientAIError (timeouts, connection errors, 5xx, 429) -- but not BreakerOpen, which
means the whole pool agreed to stop for a while. Not retried: PermanentError (400/401/403...) and
anything else. Wait: the server's Retry-After when it gave one (never less, plus up to 10% jitter
so a pool does not come back in lock-step), else exponential backoff with full jitter.
"""
from __future__ import annotations

import asyncio
import random
from typing import Awaitable, Callable

from tenacity import (AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt,
                      wait_random_exponential)

from actors.ai.errors import BreakerOpen, TransientAIError
from contracts.settings import AIConf


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, TransientAIError) and not isinstance(exc, BreakerOpen)


class wait_retry_after_or_backoff:
    """tenacity wait: >= Retry-After when the failure carries one, else jittered exponential."""

    def __init__(self, initial_s: float, max_s: float):
        self._backoff = wait_random_exponential(multiplier=initial_s, max=max_s)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hint = getattr(exc, "retry_after", None)
        if hint is not None:
            return hint + random.uniform(0, hint * 0.1)
        return self._backoff(state)


def policy(conf: AIConf, on_retry: Callable[[RetryCallState], None] | None = None,
           sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> AsyncRetrying:
    """A fresh AsyncRetrying for one logical request; `on_retry` runs before each `sleep`."""
    return AsyncRetrying(
        sleep=sleep,
        stop=stop_after_attempt(conf.max_attempts),
        wait=wait_retry_after_or_backoff(conf.backoff_initial_s, conf.backoff_max_s),
        retry=retry_if_exception(_retryable),
        before_sleep=on_retry,
        reraise=True,
    )
