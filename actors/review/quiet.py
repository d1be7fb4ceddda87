"""An aiohttp runner whose answer to an unreadable request echoes nothing of it.

aiohttp answers a request it cannot parse (a header line over its 8190-byte limit, a malformed
request line) with 400 and the parser's message as the body, and logs that message with a
traceback. The message quotes the offending bytes: an over-long `Authorization` header would put
the reviewer's token in the response and in the desk's log. Here such a request gets a fixed 400
body and one log line naming only the error's type and the client's address.
"""
from __future__ import annotations

import logging
from http import HTTPStatus

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server

log = logging.getLogger("replydesk.review")

UNREADABLE = ("the request could not be read: a request line or header over the size limit, "
              "or malformed HTTP\n")


class _QuietHandler(RequestHandler):
    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status == HTTPStatus.INTERNAL_SERVER_ERROR:  # aiohttp's own 500 body quotes nothing
            return super().handle_error(request, status, exc, message)
        log.warning("unreadable request refused", extra={
            "status": status, "error": type(exc).__name__ if exc else None, "client": request.remote})
        if request.writer.output_size > 0:
            raise ConnectionError("response already started: cannot send the error")
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        resp = web.Response(status=status, text=f"{status} {phrase}: {UNREADABLE}")
        resp.force_close()
        return resp


class _QuietServer(Server):
    def __call__(self) -> RequestHandler:
        return _QuietHandler(self, loop=self._loop, **self._kwargs)


class QuietAppRunner(web.AppRunner):
    """`web.AppRunner` whose connections answer unreadable requests without quoting them."""

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        server.__class__ = _QuietServer  # same state, the quiet handler factory
        return server
