"""Ask the model, validate the answer, correct once: the core of a draft, without Ray or MongoDB.

Each HTTP attempt runs under the gate's permits and the tenacity policy. A 200 answer that is not
a valid, safe AIAnswer gets ONE corrective follow-up telling the model what was wrong; a second
invalid answer is a DeadLetter with the reason (retrying the same conversation would not help).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from tenacity import RetryCallState

from actors.ai import metrics, retry
from actors.ai.client import AIClient, Completion
from actors.ai.errors import BreakerOpen, InvalidAnswer, TransientAIError
from actors.ai.guard import LeakGuard
from actors.ai.permits import LeaseFn, Permits, RecordFn
from actors.ai.prompt import Prompt
from actors.ai.schema import AIAnswer, parse_answer
from contracts.errors import DeadLetter
from contracts.events import ChatMessage
from contracts.settings import AIConf, Config

log = logging.getLogger(__name__)


@dataclass
class Tally:
    """What one classification cost: reported as span attributes and metrics."""
    attempts: int = 0
    retries: int = 0
    rate_limited: int = 0
    tokens: int = 0
    corrected: bool = False
    started: float = field(default_factory=time.monotonic)

    @property
    def latency_s(self) -> float:
        return time.monotonic() - self.started

    def attributes(self) -> dict[str, Any]:
        return {"ai.attempts": self.attempts, "ai.retries": self.retries,
                "ai.rate_limited": self.rate_limited, "ai.tokens": self.tokens,
                "ai.corrected": self.corrected, "ai.latency_ms": round(self.latency_s * 1000, 1)}


class Drafter:
    def __init__(self, conf: AIConf, model: str, client: AIClient, permits: Permits,
                 prompt: Prompt, guard: LeakGuard):
        self.conf = conf
        self.model = model
        self.client = client
        self.permits = permits
        self.prompt = prompt
        self.guard = guard

    @classmethod
    def from_config(cls, config: Config, name: str, lease: LeaseFn, record: RecordFn) -> "Drafter":
        """Wire client, permits (on the given gate calls), prompt and leak guard from config."""
        ai = config.app.ai
        key = config.settings.ai_api_key.get_secret_value()
        prompt = Prompt.load(ai.prompt_file)
        permits = Permits(name, lease, record, batch=ai.concurrency,
                          slots=min(ai.concurrency, max(1, ai.max_concurrent_requests // ai.workers)),
                          fail_fast=ai.breaker.fail_fast)
        client = AIClient(config.settings.ai_api_url, key, connect_timeout_s=ai.connect_timeout_s,
                          timeout_s=ai.timeout_s, pool_size=ai.concurrency)
        return cls(ai, config.settings.ai_model or ai.model, client, permits, prompt,
                   LeakGuard(prompt.system, config.secret_values()))

    async def classify(self, conversation: list[ChatMessage], tally: Tally) -> AIAnswer:
        """A validated answer for the conversation; DeadLetter when it cannot get one."""
        messages = self.prompt.messages(conversation)
        try:
            completion = await self._call(messages, tally)
            try:
                return self._validated(completion, tally)
            except InvalidAnswer as exc:
                log.warning("AI answer rejected, asking once more", extra={"problem": exc.problem})
                tally.corrected = True
                messages = self.prompt.corrected(
                    messages, None if exc.leak else completion.content, exc.problem)
            completion = await self._call(messages, tally)
            try:
                return self._validated(completion, tally)
            except InvalidAnswer as exc:
                raise DeadLetter(f"AI answer invalid after a corrective retry: {exc.problem}") from None
        finally:
            metrics.count("tokens", tally.tokens, self.model)
            metrics.count("retries", tally.retries, self.model)
            metrics.count("rate_limited", tally.rate_limited, self.model)

    def _validated(self, completion: Completion, tally: Tally) -> AIAnswer:
        answer = parse_answer(completion.content, self.conf.max_reply_chars)
        leak = self.guard.problem(answer.reply)
        if leak:
            raise InvalidAnswer(leak, leak=True)
        metrics.observe_latency(tally.latency_s, self.model)
        return answer

    async def _call(self, messages: list[dict[str, str]], tally: Tally) -> Completion:
        body = {"model": self.model, "messages": messages, "temperature": 0.2,
                "response_format": {"type": "json_object"}}

        async def attempt() -> Completion:
            tally.attempts += 1
            try:
                return await self.client.complete(body)
            except TransientAIError as exc:
                tally.rate_limited += exc.status == 429
                raise

        def on_retry(state: RetryCallState) -> None:
            tally.retries += 1
            exc = state.outcome.exception() if state.outcome else None
            log.warning("AI request failed, retrying", extra={
                "attempt": state.attempt_number, "error": str(exc),
                "wait_s": round(state.next_action.sleep, 3) if state.next_action else None})

        try:
            async for step in retry.policy(self.conf, on_retry):
                with step:
                    completion = await self.permits.run(attempt)
        except BreakerOpen:
            raise
        except TransientAIError as exc:
            raise TransientAIError(f"{exc} (gave up after {tally.attempts} attempts)",
                                   status=exc.status, retry_after=exc.retry_after) from None
        tally.tokens += completion.tokens
        return completion

