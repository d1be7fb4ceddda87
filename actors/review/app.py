"""`make_app(config, store)`: the review desk's aiohttp application, without Ray, so tests and
the demo can serve it directly (standins.serve.ServedApp) and the actor just runs it."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Callable

from aiohttp import web

from actors.review import accounts, api, conversations, export
from actors.review.errors import Handler, errors_middleware
from actors.review.releaser import releasing
from actors.review.security import (auth_middleware, body_limit_middleware, cors_middleware,
                                    rate_limit_middleware, require_tokens, security_headers)
from actors.store import AsyncStore, Store
from contracts import telemetry
from contracts.events import utcnow
from contracts.settings import Config

STATIC = Path(__file__).with_name("static")


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


@web.middleware
async def _trace(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One server span per request, so a 500's trace id leads to its log lines and spans."""
    resource = request.match_info.route.resource
    route = resource.canonical if resource else "unmatched"
    with telemetry.span(f"review {request.method} {route}", method=request.method) as span:
        response = await handler(request)
        span.set_attribute("http.status_code", response.status)
        return response


def make_app(config: Config, store: AsyncStore | Store, *,
             clock: Callable[[], datetime] = utcnow) -> web.Application:
    """Raises ConfigError naming REVIEW_TOKEN when there is no usable reviewer token. While it
    serves, it releases held approvals (undo window) by `clock`. The desk reads and writes with
    an AsyncStore on its own loop (a `Store` given, e.g. by a test, stands for its `aio`)."""
    store = store.aio if isinstance(store, Store) else store
    conf = config.app.review
    reviewers = require_tokens(config)
    app = web.Application(client_max_size=conf.max_body_bytes, middlewares=[
        cors_middleware(conf),            # outermost: CORS headers on every answer, errors too
        _trace,
        errors_middleware,                # everything below leaves as {"error": ...}
        rate_limit_middleware(conf),      # before auth: token guessing is rate limited too
        body_limit_middleware(conf),
        auth_middleware(reviewers),
    ])
    app[api.CONFIG] = config
    app[api.STORE] = store
    app[api.CLOCK] = clock
    app.cleanup_ctx.append(releasing(store, clock))
    app.router.add_get("/", _index)
    app.router.add_routes(conversations.routes)   # before api's /api/conversations/{a}/{c:.+}
    app.router.add_routes(api.routes)
    app.router.add_routes(accounts.routes)
    app.router.add_routes(export.routes)             # the log as CSV (no sheet needed)
    app.router.add_static("/static/", STATIC, show_index=False, follow_symlinks=False)
    app.on_response_prepare.append(security_headers)
    return app
