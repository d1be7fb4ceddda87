"""Run an aiohttp application on 127.0.0.1 in a background thread (tests, demo) or in the
foreground (`python -m standins.<name> --port N`)."""
from __future__ import annotations

import argparse
import asyncio
import threading
from typing import Callable

from aiohttp import web


class ServedApp:
    """An aiohttp app served from its own thread and event loop; `.url` is its base URL."""

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 0,
                 runner_class: type[web.AppRunner] = web.AppRunner):
        self.app = app
        self.runner_class = runner_class
        self.host = host
        self.port = port
        self.loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="standin-server", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as exc:  # surfaced to start()
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        # a stand-in never holds a shutdown for long: handlers still running after 5 s (a
        # long-lived stream whose client is gone) are cancelled
        self._runner = self.runner_class(self.app, access_log=None, handler_cancellation=True,
                                     shutdown_timeout=5.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]   # the bound socket (port 0: the one chosen)

    def start(self) -> "ServedApp":
        self._thread.start()
        self._started.wait(30)
        if self._error:
            raise self._error
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def call(self, fn: Callable, *args):
        """Run fn(*args) on the server's loop thread (to touch app state safely)."""
        fut = asyncio.run_coroutine_threadsafe(_acall(fn, *args), self.loop)
        return fut.result(30)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)

    def __enter__(self) -> "ServedApp":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


async def _acall(fn, *args):
    r = fn(*args)
    if asyncio.iscoroutine(r):
        r = await r
    return r


def main(make_app: Callable[[], web.Application], name: str, default_port: int) -> None:
    p = argparse.ArgumentParser(description=f"replydesk stand-in: {name}")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=default_port)
    a = p.parse_args()
    web.run_app(make_app(), host=a.host, port=a.port, access_log=None)
