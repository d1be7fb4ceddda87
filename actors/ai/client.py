"""One HTTP attempt at an OpenAI-compatible chat-completions endpoint.

Each worker owns one ClientSession (created inside its event loop) whose connector pools
keep-alive connections up to the worker's concurrency. Outcomes are mapped to the error types the
retry policy understands; messages name the status and endpoint, never the key or headers.
"""
from __future__ import annotations

import asyncio
import email.utils
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from actors.ai.errors import TransientAIError
from contracts.errors import PermanentError

PATH = "/v1/chat/completions"
_PERMANENT_HINTS = {401: "check AI_API_KEY", 403: "the key is not allowed to use this model",
                    404: "check AI_API_URL and the model name", 400: "the request was rejected"}


@dataclass(frozen=True)
class Completion:
    content: str | None
    prompt_tokens: int
    completion_tokens: int

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from `retry-after-ms` (OpenAI) or `Retry-After` (seconds or HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class AIClient:
    def __init__(self, base_url: str, api_key: str, *, connect_timeout_s: float, timeout_s: float,
                 pool_size: int):
        self.endpoint = base_url.rstrip("/") + PATH
        self._auth = {"Authorization": f"Bearer {api_key}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=connect_timeout_s)
        self._timeout_s = timeout_s
        self._pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:  # never show the auth header
        return f"AIClient(endpoint={self.endpoint!r})"

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._pool_size, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout,
                                                  raise_for_status=False)
        return self._session

    async def complete(self, body: dict[str, Any]) -> Completion:
        """POST one request; raise TransientAIError (retry) or PermanentError (do not)."""
        session = self._ensure_session()
        try:
            async with session.post(self.endpoint, json=body, headers=self._auth) as resp:
                if resp.status != 200:
                    raise await self._status_error(resp)
                try:
                    data = await resp.json(content_type=None)
                except ValueError:
                    raise TransientAIError(f"AI endpoint {self.endpoint} answered HTTP 200 with a "
                                           f"body that is not JSON", status=200) from None
        except asyncio.TimeoutError:
            raise TransientAIError(f"AI endpoint {self.endpoint} did not answer within "
                                   f"{self._timeout_s:g} s") from None
        except aiohttp.ClientError as exc:
            raise TransientAIError(f"AI endpoint {self.endpoint} unreachable "
                                   f"({type(exc).__name__})") from None
        return self._completion(data)

    async def _status_error(self, resp: aiohttp.ClientResponse) -> Exception:
        status = resp.status
        etype = ""
        try:
            err = (await resp.json(content_type=None)).get("error") or {}
            etype = f", {err.get('type')}" if isinstance(err, dict) and err.get("type") else ""
        except (ValueError, AttributeError, aiohttp.ClientError):
            pass
        what = f"AI endpoint {self.endpoint} answered HTTP {status} ({resp.reason}{etype})"
        if status == 429 or status == 408 or status == 409 or status >= 500:
            return TransientAIError(what, status=status, retry_after=parse_retry_after(resp.headers))
        hint = _PERMANENT_HINTS.get(status, "not retried")
        return PermanentError(f"{what}: {hint}")

    def _completion(self, data: Any) -> Completion:
        try:
            content = data["choices"][0]["message"]["content"]
            usage = data.get("usage") or {}
            return Completion(content=content, prompt_tokens=int(usage.get("prompt_tokens") or 0),
                              completion_tokens=int(usage.get("completion_tokens") or 0))
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):
            raise TransientAIError(f"AI endpoint {self.endpoint} answered HTTP 200 without "
                                   f"choices[0].message.content", status=200) from None

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
