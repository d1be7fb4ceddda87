"""A notification receiver for tests and the demo: what apprise's `json://host:port/path` target
POSTs (`{"version", "title", "message", "type", ...}`) is kept in memory, in arrival order.

It stands in for Discord, Slack, ntfy and the rest: replydesk talks to all of them through apprise,
and apprise's JSON target is the one any HTTP server can receive. `POST /_admin/status
{"status": 503}` makes it refuse deliveries (a service having an outage); 200 restores it.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web

from standins.admin import AdminClient

RECEIVED = web.AppKey("received", list)
STATUS = web.AppKey("status", dict)


async def receive(request: web.Request) -> web.Response:
    status = request.app[STATUS]["status"]
    request.app[STATUS]["attempts"] += 1
    if status != 200:
        return web.Response(status=status, text="unavailable")
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="not JSON") from None
    request.app[RECEIVED].append({"path": request.path, **(body if isinstance(body, dict) else {"body": body})})
    return web.json_response({"ok": True})


async def received(request: web.Request) -> web.Response:
    return web.json_response({"received": request.app[RECEIVED], **request.app[STATUS]})


async def set_status(request: web.Request) -> web.Response:
    body = await request.json()
    request.app[STATUS]["status"] = int(body.get("status", 200))
    return web.json_response(request.app[STATUS])


async def reset(request: web.Request) -> web.Response:
    request.app[RECEIVED].clear()
    request.app[STATUS].update(status=200, attempts=0)
    return web.json_response({"ok": True})


def make_app(received_list: list | None = None) -> web.Application:
    """`received_list`: keep what arrives in this list (it outlives one server: stop and start a
    new app on the same port to take the receiver down for a while)."""
    app = web.Application()
    app[RECEIVED] = received_list if received_list is not None else []
    app[STATUS] = {"status": 200, "attempts": 0}
    app.router.add_get("/_admin/received", received)
    app.router.add_post("/_admin/status", set_status)
    app.router.add_post("/_admin/reset", reset)
    app.router.add_post("/{tail:.*}", receive)
    return app


class ReceiverAdmin(AdminClient):
    def received(self) -> list[dict[str, Any]]:
        return self._call("GET", "/received")["received"]

    def status(self, status: int) -> None:
        self._call("POST", "/status", {"status": status})

    def reset(self) -> None:
        self._call("POST", "/reset", {})

    def target(self, path: str = "notify") -> str:
        """The apprise URL that delivers here."""
        return "json://" + self.url.split("://", 1)[1] + "/" + path


if __name__ == "__main__":
    from standins.serve import main
    main(make_app, "notify receiver", 8302)
