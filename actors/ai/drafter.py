"""Ask the model, validate the answer, correct once: the core of a draft, without Ray or MongoDB.

The prompt is fitted to the model's context first (actors/ai/fit.py: the newest messages whole,
older ones dropped, an over-long one cut in the middle, the cut recorded on the Tally); a server
that still finds it too long (a context error from any server) teaches its real context and the
prompt is fitted again, at most MAX_CONTEXT_RETRIES times. Each HTTP attempt runs under the
gate's permits -- at most as many in flight as the endpoint can take (its slots, or adapted to
its latency: actors/ai/limiter.py), the rest waiting here -- and the tenacity policy (outages
only). A 200 answer that is not a valid, safe AIAnswer -- no choices, a tool call, not JSON,
truncated, wrong shape, a leak -- is the model's problem: it never counts against the circuit
breaker, gets ONE corrective follow-up telling the model what was wrong (a truncated one is
re-asked with `max_tokens_on_truncation` when configured), and a second invalid answer is an
AIGaveUp (a DeadLetter the worker also hands to a person) with the precise reason.

The answer's JSON schema is sent as `response_format`; an endpoint that rejects it is asked with
`json_object`, then with the prompt alone, and the step is remembered for that endpoint.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from tenacity import RetryCallState

from actors.ai import metrics, retry
from actors.ai.client import AIClient, Completion
from actors.ai.errors import (AIGaveUp, BreakerOpen, ContextTooLong, InvalidAnswer,
                              ParameterRejected, TransientAIError)
from actors.ai.fit import Fitted, Fitter
from actors.ai.guard import LeakGuard
from actors.ai.permits import LeaseFn, Permits, RecordFn, SleepFn
from actors.ai.prompt import Prompt
from actors.ai.schema import AIAnswer, length_caps, parse_answer, response_format
from actors.ai.server import ServerInfo
from contracts.events import ChatMessage
from contracts.settings import AIConf, Config

log = logging.getLogger(__name__)
# response_format kinds tried in order; a rejected one is skipped from then on for that endpoint
# and model, in this process (each worker learns it with one rejected request)
_LADDER: dict[str, tuple[str | None, ...]] = {
    "auto": ("json_schema", "json_object", None), "json_schema": ("json_schema", None),
    "json_object": ("json_object", None), "none": (None,)}
_FORMAT_STEP: dict[tuple[str, str], int] = {}
MAX_CONTEXT_RETRIES = 3   # prompts shrunk after a server said "too long", per answer


@dataclass
class Tally:
    """What one classification cost: reported as span attributes and metrics."""
    attempts: int = 0
    retries: int = 0
    rate_limited: int = 0
    tokens: int = 0
    corrected: bool = False
    context_retries: int = 0
    cut: dict[str, Any] | None = None   # what the prompt left out to fit the context
    started: float = field(default_factory=time.monotonic)

    @property
    def latency_s(self) -> float:
        return time.monotonic() - self.started

    def attributes(self) -> dict[str, Any]:
        return {"ai.attempts": self.attempts, "ai.retries": self.retries,
                "ai.rate_limited": self.rate_limited, "ai.tokens": self.tokens,
                "ai.corrected": self.corrected, "ai.context_retries": self.context_retries,
                "ai.prompt_cut": self.cut is not None,
                "ai.latency_ms": round(self.latency_s * 1000, 1)}


class Drafter:
    def __init__(self, conf: AIConf, model: str, client: AIClient, permits: Permits,
                 prompt: Prompt, guard: LeakGuard, sleep: SleepFn = asyncio.sleep):
        self.conf = conf
        self.info = ServerInfo(client, model, context_tokens=conf.context_tokens,
                               max_in_flight=conf.max_in_flight)
        self.fitter = Fitter(prompt, self.info)
        self.sleep = sleep        # the retry policy's waits (tests inject a clock's)
        self.model = model
        self.client = client
        self.permits = permits
        self.prompt = prompt
        self.guard = guard

    @classmethod
    def from_config(cls, config: Config, name: str, lease: LeaseFn, record: RecordFn,
                    sleep: SleepFn = asyncio.sleep) -> "Drafter":
        """Wire client, permits (on the given gate calls), prompt and leak guard from config;
        `sleep` is every wait between attempts (retry backoff, Retry-After, the gate's pace)."""
        ai = config.app.ai
        key = config.settings.ai_key          # "" when the server needs none
        prompt = Prompt.load(ai.prompt_file)
        permits = Permits(name, lease, record, batch=ai.concurrency,
                          slots=min(ai.concurrency, max(1, ai.max_concurrent_requests // ai.workers)),
                          fail_fast=ai.breaker.fail_fast, sleep=sleep)
        client = AIClient(config.settings.ai_api_url, key, connect_timeout_s=ai.connect_timeout_s,
                          timeout_s=ai.timeout_s, pool_size=ai.concurrency)
        return cls(ai, config.settings.ai_model or ai.model, client, permits, prompt,
                   LeakGuard(prompt.instructions, config.secret_values()), sleep)

    async def prepare(self) -> None:
        """Learn what the endpoint is (once) and bound what this worker keeps in flight there:
        `ai.max_in_flight` or the server's slots, split between the workers; else adapted."""
        await self.info.discover()
        if self.info.slots:
            self.permits.limiter.fix(max(1, self.info.slots // self.conf.workers))
        else:
            self.permits.limiter.adapt()

    async def classify(self, conversation: list[ChatMessage], tally: Tally,
                       context: dict[str, Any] | None = None,
                       instruction: str | None = None) -> AIAnswer:
        """A validated answer for the conversation; AIGaveUp (a DeadLetter) when it cannot get
        one (after one corrective retry, or a prompt that cannot be fitted), PermanentError
        when the endpoint refuses the request. `instruction`: a reviewer's request for this
        draft, sent as data in the user message (never as system text)."""
        await self.prepare()
        max_tokens = self.conf.max_tokens
        extra: list[dict[str, str]] = []
        try:
            try:
                return await self._fitted_answer(conversation, extra, max_tokens, tally, instruction)
            except InvalidAnswer as exc:
                self._log_invalid("AI answer rejected, asking once more", exc, tally, context)
                tally.corrected = True
                if exc.truncated and self.conf.max_tokens_on_truncation:
                    max_tokens = self.conf.max_tokens_on_truncation
                else:
                    extra = self.prompt.correction_turn(exc.content, exc.problem)
            try:
                return await self._fitted_answer(conversation, extra, max_tokens, tally, instruction)
            except InvalidAnswer as exc:
                self._log_invalid("AI answer invalid after a corrective retry", exc, tally, context)
                raise AIGaveUp(f"AI answer invalid after a corrective retry: {exc.problem}") from None
        finally:
            metrics.count("tokens", tally.tokens, self.model)
            metrics.count("retries", tally.retries, self.model)
            metrics.count("rate_limited", tally.rate_limited, self.model)

    async def _fitted_answer(self, conversation: list[ChatMessage], extra: list[dict[str, str]],
                             max_tokens: int | None, tally: Tally, instruction: str | None = None) -> AIAnswer:
        """The answer to the conversation fitted to the context; a context error shrinks it."""
        for tries in range(MAX_CONTEXT_RETRIES + 1):
            try:
                fitted: Fitted = await self.fitter.fit(conversation, max_tokens, extra, instruction)
            except AIGaveUp:
                if len(extra) < 2:
                    raise
                # the rejected answer, echoed back, leaves no room: the correction alone
                extra = extra[-1:]
                fitted = await self.fitter.fit(conversation, max_tokens, extra, instruction)
            tally.cut = fitted.cut
            try:
                return await self._answer(fitted.messages, max_tokens, tally)
            except ContextTooLong as exc:
                if tries == MAX_CONTEXT_RETRIES:
                    raise AIGaveUp(f"the prompt still exceeds the model's context after "
                                   f"{tries} smaller tries ({exc})", kind="context") from None
                tally.context_retries += 1
                sent = fitted.tokens or await self.fitter.measure(fitted.messages)
                self.info.learn(exc, sent)
        raise AssertionError("unreachable")

    def _log_invalid(self, what: str, exc: InvalidAnswer, tally: Tally,
                     context: dict[str, Any] | None) -> None:
        log.warning(what, extra={**(context or {}), "problem": exc.problem, "model": self.model,
                                 "endpoint": self.client.endpoint, "attempts": tally.attempts,
                                 "truncated": exc.truncated, "leak": exc.leak,
                                 "content_chars": len(exc.content or "")})

    async def _answer(self, messages: list[dict[str, str]], max_tokens: int | None,
                      tally: Tally) -> AIAnswer:
        completion = await self._call(messages, max_tokens, tally)
        try:
            answer = parse_answer(completion.content, self.conf.max_reply_chars)
        except InvalidAnswer as exc:
            raise InvalidAnswer(exc.problem, content=completion.content) from None
        leak = self.guard.problem(answer.reply)
        if leak:
            raise InvalidAnswer(leak, leak=True)
        metrics.observe_latency(tally.latency_s, self.model)
        return answer

    # ------------------------------------------------------------------ structured output
    @property
    def _format_key(self) -> tuple[str, str]:
        return self.client.endpoint, self.model

    def response_format(self) -> str | None:
        """The response_format kind this endpoint is asked for now (None: prompt only)."""
        ladder = _LADDER[self.conf.response_format]
        return ladder[min(_FORMAT_STEP.get(self._format_key, 0), len(ladder) - 1)]

    def _step_down(self, kind: str, exc: ParameterRejected) -> None:
        ladder = _LADDER[self.conf.response_format]
        step = max(_FORMAT_STEP.get(self._format_key, 0), ladder.index(kind) + 1)
        _FORMAT_STEP[self._format_key] = step
        log.warning("AI endpoint rejected response_format; falling back", extra={
            "endpoint": self.client.endpoint, "model": self.model, "rejected": kind,
            "now": ladder[min(step, len(ladder) - 1)] or "prompt only", "error": str(exc)})

    def body(self, messages: list[dict[str, str]], max_tokens: int | None,
             kind: str | None) -> dict[str, Any]:
        """The chat-completions request for these messages (the benchmark sends the same)."""
        body: dict[str, Any] = {"model": self.model, "messages": messages,
                                "temperature": self.conf.temperature}
        if kind:   # a grammar-enforcing server (llama.cpp) also gets length caps
            caps = length_caps(max_tokens, self.conf.max_reply_chars) \
                if self.info.kind == "llama.cpp" else None
            body["response_format"] = response_format(kind, caps)
        if max_tokens:
            body["max_tokens"] = max_tokens
        return body

    async def _call(self, messages: list[dict[str, str]], max_tokens: int | None,
                    tally: Tally) -> Completion:
        while True:
            kind = self.response_format()
            body = self.body(messages, max_tokens, kind)
            try:
                return await self._send(body, tally)
            except ParameterRejected as exc:
                if kind is None or exc.param != "response_format":
                    raise
                self._step_down(kind, exc)

    async def _send(self, body: dict[str, Any], tally: Tally) -> Completion:
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
            async for step in retry.policy(self.conf, on_retry, self.sleep):
                with step:
                    completion = await self.permits.run(attempt)
        except BreakerOpen:
            raise
        except TransientAIError as exc:
            raise TransientAIError(f"{exc} (gave up after {tally.attempts} attempts)",
                                   status=exc.status, retry_after=exc.retry_after) from None
        tally.tokens += completion.tokens
        return completion

