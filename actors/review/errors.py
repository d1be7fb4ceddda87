"""Every failure leaves as a JSON body {"error": "..."} with a fitting status; never a stack trace.

Handlers raise `ApiError` (or aiohttp's HTTPException); anything else is logged here with its
stack and answered with a 500 that carries only the trace id to look it up by.
"""
from __future__ import annotations

import logging
from typing import Awaitable, Callable

from aiohttp import web
from pymongo.errors import ConnectionFailure

from contracts import telemetry

log = logging.getLogger("replydesk.review")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """A client-visible failure: `message` is shown to the reviewer as is."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None,
                 extra: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}


def error_response(status: int, message: str, headers: dict[str, str] | None = None,
                   extra: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message, **(extra or {})}, status=status, headers=headers)


_REASONS = {401: "authentication required", 403: "forbidden", 404: "not found",
            405: "method not allowed", 413: "request body too large"}


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.message, exc.headers, exc.extra)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        message = _REASONS.get(exc.status) or exc.reason.lower()
        if exc.status == 413 and exc.text:      # aiohttp names the limit and the actual size
            message = f"{message}: {exc.text}"
        return error_response(exc.status, message, headers)
    except ConnectionFailure as exc:
        log.error("database unavailable", exc_info=True,
                  extra={"path": request.path, "error_type": type(exc).__name__})
        return error_response(503, "the database is unavailable; please retry in a moment", {"Retry-After": "5"})
    except Exception:
        log.exception("review request failed", extra={"path": request.path, "method": request.method})
        ref = telemetry.current_trace_id()
        return error_response(500, "internal error in the review desk; nothing was sent"
                              + (f" (trace {ref})" if ref else ""))
