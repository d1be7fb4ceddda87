"""`ReviewDesk`: the Ray actor that serves the review desk on config.app.review host/port.

Started by the supervisor as "review:desk". `start()` is idempotent (a restarted supervisor adopts
the running actor and calls it again) and, before serving, re-queues the send event of any draft
approved but not yet being sent (see decisions.py).
"""
from __future__ import annotations

import asyncio
import logging
import ssl
import time
from typing import Any

import ray
from aiohttp import web

from actors.review.app import make_app
from actors.review.decisions import Reviewer
from actors.review.errors import Handler
from actors.review.quiet import QuietAppRunner
from actors.review.security import require_tokens
from actors.store import AsyncStore
from contracts import names, telemetry
from contracts.metrics import histogram
from contracts.settings import Config, ReviewConf, resolve

log = logging.getLogger("replydesk.review")

ACTOR_NAME = names.REVIEW
LATENCY = histogram("replydesk_review_request_seconds", "Review desk request latency",
                    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], ("route", "status"))


@web.middleware
async def _measure(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    response = await handler(request)
    route = request.match_info.route.resource
    LATENCY.observe(time.perf_counter() - started,
                    tags={"route": route.canonical if route else "unmatched",
                          "status": str(response.status)})
    return response


def tls_context(conf: ReviewConf) -> ssl.SSLContext | None:
    """The server's TLS context (TLS 1.2 or newer) when the config names a certificate."""
    if conf.tls_cert_file is None or conf.tls_key_file is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(resolve(conf.tls_cert_file), resolve(conf.tls_key_file))
    return ctx


@ray.remote(num_cpus=0)
class ReviewDesk:
    def __init__(self, config: Config):
        telemetry.setup_from(config, "review")
        self.config = config
        self.conf = config.app.review
        if self.conf.enabled:
            require_tokens(config)         # fail at creation, naming REVIEW_TOKEN
        self.store = AsyncStore.from_config(config)
        self._backfill_task: asyncio.Task | None = None
        self._runner: web.AppRunner | None = None
        self.url: str | None = None

    async def start(self) -> dict[str, Any]:
        """Bind and serve; {"url": ...} with the actual port (config port 0 picks a free one)."""
        if self._runner is not None or not self.conf.enabled:
            return {"url": self.url, "enabled": self.conf.enabled}
        await self.store.ensure_indexes()
        self._backfill_task = asyncio.create_task(self._backfill(), name="summaries-backfill")
        requeued = await Reviewer(self.store, self.conf.token_name).requeue_approved()
        app = make_app(self.config, self.store)
        app.middlewares.insert(0, _measure)
        runner = QuietAppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, self.conf.host, self.conf.port, ssl_context=tls_context(self.conf))
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        host, port = runner.addresses[0][:2]      # the bound socket (port 0: the one chosen)
        scheme = "https" if self.conf.https else "http"
        self.url = f"{scheme}://{host if ':' not in host else f'[{host}]'}:{port}"
        log.info("review desk serving", extra={"url": self.url, "requeued_sends": requeued})
        return {"url": self.url, "enabled": True, "requeued_sends": requeued}

    async def _backfill(self) -> None:
        """Summaries for conversations stored before they existed (see actors/store/backfill.py),
        in the background: the desk serves meanwhile."""
        from actors.store.backfill import backfill
        try:
            await backfill(self.store)
        except Exception:        # the desk serves meanwhile; the next start tries again
            log.exception("conversation summaries backfill failed")

    async def ping(self) -> dict[str, Any]:
        return {"ok": True, "url": self.url}

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            log.info("review desk stopped", extra={"url": self.url})
