"""The two aiohttp apps of the phoenix site (www: start page and login; app: the logged-in
single-page app, its JSON API and the admin API) over one shared state, and a server that runs
both from one thread and event loop."""
from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from standins.chatsite import STATE
from standins.phoenix import api
from standins.phoenix.admin import PhoenixAdmin, add_admin_routes
from standins.phoenix.state import PhoenixState
from standins.serve import ServedApp

_JS = Path(__file__).with_name("static") / "phoenix.js"


def _shell(host: str, brand: str) -> str:
    """What every page load returns: an empty container and the script that renders into it."""
    return ("<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{brand}</title></head><body>"
            "<div id=\"global-layer-main-content\"></div>"
            f"<script src=\"/static/phoenix.js\" data-host=\"{host}\"></script></body></html>")


async def _script(request: web.Request) -> web.Response:
    return web.Response(text=_JS.read_text(), content_type="application/javascript",
                        headers={"Cache-Control": "no-store"})


def _count_view(st: PhoenixState, kind: str) -> None:
    st.stats["page_views"] += 1
    st.stats["views"][kind] = st.stats["views"].get(kind, 0) + 1


async def www_shell(request: web.Request) -> web.Response:
    st = api.state(request)
    _count_view(st, "www")
    return web.Response(text=_shell("www", st.brand), content_type="text/html")


async def app_shell(request: web.Request) -> web.Response:
    """The app's shell for a logged-in browser; without a session, the www start page."""
    st = api.state(request)
    if not st.session_user(request):
        raise web.HTTPFound(f"{st.www_origin}/#home")
    _count_view(st, "app")
    return web.Response(text=_shell("app", st.brand), content_type="text/html")


@web.middleware
async def _faults(request: web.Request, handler):
    """chatsite's `slow_ms` on everything but the admin API and the live stream, and its `http500`
    on the next N shell loads."""
    if request.path.startswith(("/_admin", "/api/live")):
        return await handler(request)
    st = api.state(request)
    if st.faults.slow_ms:
        await asyncio.sleep(st.faults.slow_ms / 1000)
    if st.faults.http500 > 0 and request.method == "GET" and request.path == "/":
        st.faults.http500 -= 1
        st.stats["errors_500"] += 1
        return web.Response(status=500, text="<h1>500 Internal Server Error</h1>", content_type="text/html")
    return await handler(request)


async def _shutdown(app: web.Application) -> None:
    app[STATE].end_streams()
    app[STATE].release_held()


def make_apps(st: PhoenixState | None = None) -> tuple[web.Application, web.Application]:
    """(www app, app app) sharing `st` (a new PhoenixState by default)."""
    st = st or PhoenixState()
    www = web.Application(middlewares=[_faults])
    www[STATE] = st
    www.router.add_get("/", www_shell)
    www.router.add_get("/static/phoenix.js", _script)
    www.router.add_get("/api/config", api.www_config)
    www.router.add_post("/api/login", api.www_login)
    www.router.add_get("/login/bounce", api.www_bounce)

    app = web.Application(middlewares=[_faults])
    app[STATE] = st
    app.on_shutdown.append(_shutdown)
    app.router.add_get("/", app_shell)
    app.router.add_get("/static/phoenix.js", _script)
    app.router.add_get("/auth", api.app_auth)
    app.router.add_get("/api/me", api.app_me)
    app.router.add_get("/api/meet", api.app_meet)
    app.router.add_get("/api/conversations", api.app_conversations)
    app.router.add_get("/api/conversations/{cid}/messages", api.app_messages)
    app.router.add_post("/api/conversations/{cid}/messages", api.app_send)
    app.router.add_get("/api/live", api.app_live)
    add_admin_routes(app)
    return www, app


class ServedPhoenix(ServedApp):
    """Both hosts from one background thread and event loop: www on `http://localhost:<port_www>`,
    the app on `http://127.0.0.1:<port_app>` (different host names, so cookies differ). Port 0
    picks a free port. `.admin()` is a PhoenixAdmin on it."""

    def __init__(self, port_www: int = 0, port_app: int = 0, brand: str = "MeetMe"):
        self.state = PhoenixState(brand)
        self.www_app, app = make_apps(self.state)
        super().__init__(app, "127.0.0.1", port_app)
        self.port_www = port_www
        self._www_runner: web.AppRunner | None = None

    async def _start(self) -> None:
        await super()._start()
        self._www_runner = web.AppRunner(self.www_app, access_log=None, handler_cancellation=True,
                                         shutdown_timeout=5.0)
        await self._www_runner.setup()
        await web.TCPSite(self._www_runner, "127.0.0.1", self.port_www).start()
        self.port_www = self._www_runner.addresses[0][1]
        self.state.www_origin, self.state.app_origin = self.www_url, self.app_url

    @property
    def www_url(self) -> str:
        return f"http://localhost:{self.port_www}"

    @property
    def app_url(self) -> str:
        return self.url

    def admin(self) -> PhoenixAdmin:
        return PhoenixAdmin(self.app_url, self.www_url)

    def stop(self) -> None:
        if self._thread.is_alive() and self._www_runner is not None:
            asyncio.run_coroutine_threadsafe(self._www_runner.cleanup(), self.loop).result(30)
        super().stop()
