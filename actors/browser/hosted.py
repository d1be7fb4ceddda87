"""The hosted layout (`browser.layout: hosted`): one process per browser node runs every session
there, on one Playwright driver and one Chromium; each account keeps its own named actor.

- `SessionHost` (`browser-host:<node>`, a child of the supervisor pinned to its node) owns the
  driver and Chromium and holds one `AccountSession` per attached account, each in a context of
  its own (cookies and storage never shared). It relaunches Chromium itself when it went away;
  the sessions notice their browser disconnected and open again on the new one.
- `HostedSession` (`browser:<site>:<account>`, what the supervisor creates, heartbeats and
  restarts, and what the dashboard shows) is a thin proxy: it attaches its account to the host
  with the config it was started with (a restarted or reloaded account gets a fresh session) and
  forwards every call. When the host died, the call is attached again on the host the supervisor
  (or, first, this proxy) starts under the same name and runs again: a host crash costs every
  account on the node its pages, never a message (cursors move only after messages are stored),
  and each is back by its next call.

Why: per session, a Ray worker that imports Playwright and runs its own driver costs more than
the page itself (see the README's density figures). A proxy imports neither Playwright nor the
store, so this module keeps its heavy imports inside `SessionHost`'s methods.
"""
from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from contracts import names
from contracts.settings import Config

log = logging.getLogger(__name__)

REAP_S = 30.0          # how often the host drops sessions whose proxy actor is gone


class NotAttached(RuntimeError):
    """The host holds no session for this account (it restarted since): attach again."""


@ray.remote(num_cpus=0)
class SessionHost:
    def __init__(self, config: Config):
        self.config = config
        self.node_id = ray.get_runtime_context().get_node_id()
        self.sessions: dict[str, tuple[Any, str]] = {}   # account -> (AccountSession, proxy name)
        self._pw = None
        self._browser = None
        self._chromium: int | None = None    # its browser process (ops and tests see it in ping)
        self._scratch: Path | None = None
        self._launch = asyncio.Lock()
        self._reaper: asyncio.Task | None = None

    async def _ready(self) -> None:
        if self._reaper is None:   # on the actor's own event loop
            self._reaper = asyncio.ensure_future(self._reap_forever())

    async def browser(self):
        """The node's Chromium, launched (again) when there is none or it went away."""
        from actors.browser.launcher import launch_browser, session_dir, start_playwright
        async with self._launch:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            if self._pw is None:
                self._scratch = session_dir("host", self.node_id)
                self._pw = await start_playwright(self._scratch)
            if self._browser is not None:
                log.warning("the hosted Chromium went away: launching it again",
                            extra={"node": self.node_id[:12], "sessions": len(self.sessions)})
            self._browser = await launch_browser(self._pw, self.config)
            self._chromium = self._find_chromium()
            return self._browser

    async def attach(self, config: Config, account_id: str, proxy: str) -> None:
        """Hold a fresh session for the account (replacing any earlier one: a restarted or
        reloaded proxy brings its own config)."""
        from actors.browser.session import AccountSession
        await self._ready()
        old = self.sessions.pop(account_id, None)
        if old is not None:
            await self._stop(account_id, old[0])
        self.sessions[account_id] = (AccountSession(config, account_id, browser_source=self.browser), proxy)

    async def detach(self, account_id: str) -> None:
        held = self.sessions.pop(account_id, None)
        if held is not None:
            await self._stop(account_id, held[0])

    async def call(self, account_id: str, method: str, *args: Any) -> Any:
        held = self.sessions.get(account_id)
        if held is None:
            raise NotAttached(f"no session for account {account_id} on this host")
        return await getattr(held[0], method)(*args)

    async def ping(self) -> dict:
        """The supervisor's start call and heartbeat; launches Chromium when it is missing."""
        await self._ready()
        await self.browser()
        return {"pid": os.getpid(), "sessions": len(self.sessions), "chromium": self._chromium}

    @staticmethod
    def _find_chromium() -> int | None:
        """The pid of the hosted Chromium's browser process (a descendant of this process)."""
        from actors.browser.procs import descendants
        for pid in descendants(os.getpid()):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and b"chrom" in Path(argv[0].decode(errors="replace")).name.encode() \
                    and not any(a.startswith(b"--type=") for a in argv):
                return pid
        return None

    async def stop(self) -> None:
        """Stop every session, then Chromium and the driver."""
        for account_id, (session, _) in list(self.sessions.items()):
            await self._stop(account_id, session)
        self.sessions.clear()
        from actors.browser.launcher import close_browser
        browser, pw, self._browser, self._pw = self._browser, self._pw, None, None
        await close_browser(browser, pw, self._scratch)

    @staticmethod
    async def _stop(account_id: str, session: Any) -> None:
        try:
            await session.stop()
        except Exception:   # its pages are gone with a crashed browser: nothing left to close
            log.warning("hosted session did not stop cleanly", exc_info=True, extra={"account_id": account_id})

    async def _reap_forever(self) -> None:
        """A proxy killed without `stop` (hung, or its account removed while it was) leaves its
        session here: dropped once no actor holds the proxy's name."""
        ns = self.config.settings.namespace
        while True:
            await asyncio.sleep(REAP_S)
            for account_id, (session, proxy) in list(self.sessions.items()):
                try:
                    await asyncio.to_thread(ray.get_actor, proxy, ns)   # a blocking GCS lookup: a thread
                except ValueError:
                    if self.sessions.get(account_id, (None,))[0] is session:
                        log.info("dropping the session of a proxy that is gone", extra={"child": proxy})
                        await self.detach(account_id)
                except Exception:
                    log.debug("reaper: GCS lookup failed", exc_info=True)


def node_host(config: Config, node_id: str | None = None):
    """This node's session host, started here when the supervisor has not (yet): it adopts it
    under the same name."""
    node_id = node_id or ray.get_runtime_context().get_node_id()
    return SessionHost.options(
        name=names.browser_host(node_id), namespace=config.settings.namespace,
        get_if_exists=True, lifetime="detached",
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
    ).remote(config)


@ray.remote(num_cpus=0, concurrency_groups={"health": 2})
class HostedSession:
    """One account's actor in the hosted layout: the same calls as `BrowserSession`, run by the
    node's `SessionHost`.

    Ray runs each concurrency group of an async actor on its own event loop, in its own thread:
    an asyncio lock or event shared by the two would leave a waiter in one loop never woken by a
    release in the other (measured: a heartbeat hung behind an attach, the supervisor took the
    actor for hung and restarted it, and its session was started twice). So attaching is done by
    the default group's calls only, and the heartbeat (`health`) never waits on it: it asks the
    host it has, or says it is attaching."""

    def __init__(self, config: Config, account_id: str):
        self.config = config
        self.account_id = account_id
        self.name = names.browser(config.account(account_id).site, account_id)
        self.host = None
        self._attach = asyncio.Lock()   # default group only (see the class docstring)

    async def _host(self):
        async with self._attach:
            if self.host is None:
                host = node_host(self.config)
                await host.attach.remote(self.config, self.account_id, self.name)
                self.host = host
            return self.host

    async def _ask(self, host: Any, method: str, *args: Any) -> tuple[Any, Exception | None]:
        """One call of the account's session on `host`: (its result, None), or (None, why `host`
        cannot answer for it: it went away, or no longer holds the session). The session's own
        errors are raised as BrowserSession raises them."""
        try:
            return await host.call.remote(self.account_id, method, *args), None
        except RayTaskError as exc:
            if isinstance(exc.cause, NotAttached):
                return None, exc.cause
            raise exc.cause from None
        except RayActorError as exc:
            return None, exc

    async def _call(self, method: str, *args: Any) -> Any:
        for attempt in (1, 2):
            host = await self._host()
            result, gone = await self._ask(host, method, *args)
            if gone is None:
                return result
            if attempt == 2:
                raise gone
            if isinstance(gone, RayActorError):
                log.warning("the session host went away: attaching again", extra={"child": self.name})
            self._forget(host)

    def _forget(self, host: Any) -> None:
        if self.host is host:
            self.host = None

    async def start(self) -> dict:
        return await self._call("start")

    @ray.method(concurrency_group="health")
    async def ping(self) -> dict:
        """The session's health from the host; while attaching (no host yet, or the one it had
        went away or does not hold the session any more), only that this actor is alive: no
        `status`, so the health last reported stands. A hung host is the host's own heartbeat's
        to find."""
        host = self.host
        if host is not None:
            result, gone = await self._ask(host, "ping")
            if gone is None:
                return result
        return {"account": self.account_id, "attaching": True}

    async def poll(self, carrier: dict | None = None) -> dict:
        return await self._call("poll", carrier)

    async def wake(self) -> None:
        return await self._call("wake")

    async def send(self, event: dict, carrier: dict | None = None) -> dict:
        return await self._call("send", event, carrier)

    async def stop(self) -> None:
        host, self.host = self.host, None
        if host is not None:
            try:
                await host.detach.remote(self.account_id)
            except RayActorError:
                pass   # the host is gone, and its sessions with it
