"""A session's life: the browser (its own, or a context on a hosted one) opened with the stored
login state, the site built on its page (the YAML-driven adapter, or the class the site spec
names), the login handoff to a person, the reopen after a disconnect, and the status the
supervisor heartbeats.

A login challenge leaves the session alive in `needs_login`: it does not touch the site again
until a person stores a new login state (`./run login ACCOUNT`), then resumes (and the sender
sends what waited for it: `on_resume`). An account that never logged in here whose login the site
rejects is handed to a person the same way. The page is one: reads and sends take turns
(`page_lock`); a live site's open inbox reports its changes through `changed`.
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Awaitable, Callable

from playwright.async_api import Browser

from actors.browser.adapter import SpecAdapter
from actors.browser.errors import LoginFailed, NeedsLogin
from actors.browser.launcher import BrowserSessionHandle, open_context, open_session, scratch_root, session_dir
from actors.browser.limits import NodeSlots, SlidingWindowLimiter
from actors.browser.selectors import Health, Selectors
from actors.browser.site import WATCH_BINDING, Site, SiteContext, adapter_class
from actors.store.client import AsyncStore
from contracts.events import NeedsLogin as NeedsLoginEvent
from contracts.ids import account_hash
from contracts.metrics import counter, gauge
from contracts.settings import Config, resolve

log = logging.getLogger(__name__)

NEEDS_LOGIN = gauge("replydesk_needs_login", "1 while an account waits for a person to log in", ("account",))
BROWSER_REOPENED = counter("replydesk_browser_reopened_total",
                           "Sessions opened again because their browser disconnected", ("site",))


class SessionLife:
    def __init__(self, config: Config, account_id: str, clock: Callable[[], datetime],
                 browser_source: Callable[[], Awaitable[Browser]] | None = None):
        self.config = config
        self.account = config.account(account_id)
        self.site = config.site(self.account.site)
        self.site_class = adapter_class(self.account.site, self.site)   # a bad value stops here
        self.hash = account_hash(account_id)
        self.store = AsyncStore.from_config(config)
        browser = config.app.browser
        self.health = Health()
        self.selectors = Selectors(self.site, resolve(browser.artifacts_dir), browser.selector_timeout_s,
                                   self.health)
        self.navigations = SlidingWindowLimiter(self.account.navigations_per_minute)
        self.slots = NodeSlots(browser.max_concurrent_navigations, scratch_root() / "nav-slots")
        self.clock = clock  # poll time: resolves times of day, decides revisits
        self.handle: BrowserSessionHandle | None = None
        self.adapter: Site | None = None
        self.last_poll_at: float | None = None
        self.needs_login: str | None = None   # why a person must log in (a challenge page)
        self.on_resume: Callable[[], Awaitable[None]] | None = None   # after a handoff: send what waited
        self._state_seen = None               # the stored login state's saved_at at that time
        self._checked_stored_wait = False
        self._resumed = False
        self.page_lock = asyncio.Lock()  # one page: poll and send take turns
        self.changed = asyncio.Event()   # a live site's open inbox changed, or a pass is asked for
        self.reload_at = 0.0             # a live site's inbox is reloaded no later than this
        self._start_lock = asyncio.Lock()
        self.browser_source = browser_source
        self._on_disconnect: Callable | None = None

    async def start(self) -> dict:
        """Open the browser with the stored session; log in only when it is missing or expired."""
        async with self._start_lock:
            if self.adapter is None and not await self._waiting_for_person():
                try:
                    await self._open()
                except NeedsLogin as exc:
                    await self.hand_to_person(exc)
                except LoginFailed as exc:   # never logged in here: a person's first login, no loop
                    if await self.store.accounts.storage_state(self.account.id):
                        raise
                    await self.hand_to_person(NeedsLogin(
                        f"{exc}; no stored session: a person must log in (./run login "
                        f"{self.account.id}, or --import state.json)", self.site.name))
        if self._resumed and self.adapter is not None:
            self._resumed = False
            if self.on_resume is not None:
                await self.on_resume()
        return self.status()

    async def hand_to_person(self, exc: NeedsLogin) -> None:
        self.needs_login = str(exc)
        self._state_seen = await self.store.accounts.state_saved_at(self.account.id)
        # kept in the store: a restarted session waits too, instead of trying the form again
        await self.store.accounts.set_needs_login(self.account.id,
                                self.needs_login, self._state_seen)
        NEEDS_LOGIN.set(1, tags={"account": self.hash})
        event = NeedsLoginEvent.make(child=f"browser:{self.site.name}:{self.account.id}",
                                     account_id=self.account.id, error=str(exc), at=time.time())
        await self.store.outbox.add([event])  # the reviewers are told
        log.error("login needs a person", extra={"account": self.hash, "site": self.site.name,
                                                  "url": exc.url, "screenshot": exc.screenshot})

    async def _waiting_for_person(self) -> bool:
        """Still in needs_login: no login state stored since the challenge."""
        if self.needs_login is None and not self._checked_stored_wait:
            self._checked_stored_wait = True  # a previous run of this session may have handed off
            stored = await self.store.accounts.needs_login(self.account.id)
            if stored:
                self.needs_login, self._state_seen = stored["reason"], stored.get("state_at")
                NEEDS_LOGIN.set(1, tags={"account": self.hash})
        if self.needs_login is None:
            return False
        saved = await self.store.accounts.state_saved_at(self.account.id)
        if saved is None or saved == self._state_seen:
            return True
        log.info("a new login state was stored: resuming", extra={"account": self.hash})
        self.needs_login = None
        self._resumed = True
        await self.store.accounts.set_needs_login(self.account.id, None, None)
        NEEDS_LOGIN.set(0, tags={"account": self.hash})
        return False

    async def _open(self) -> None:
        state = await self.store.accounts.storage_state(self.account.id)
        if self.browser_source is not None:   # hosted: a context on the host's browser
            self.handle = await open_context(self.config, await self.browser_source(), state)
        else:
            self.handle = await open_session(self.config, session_dir(self.site.name, self.account.id),
                                             state)
        try:
            if self.site.live:   # the page calls it on every change of its inbox (adapter.watch)
                await self.handle.page.expose_binding(WATCH_BINDING, lambda _source: self.changed.set())
                # a waiting pass must not wait for a page that is gone: it opens the session again
                # (removed on stop: a hosted browser outlives the session's contexts)
                self._on_disconnect = lambda *_: self.changed.set()
                self.handle.browser.on("disconnected", self._on_disconnect)
                self.handle.page.on("crash", lambda *_: self.changed.set())
                self.reload_at = 0.0   # not watched yet: the next pass loads it (unless below)
            self.adapter = self._build_site()
            async with self.page_lock:
                await self.adapter.ensure_logged_in()
                if self.site.live and self.adapter.on_inbox():
                    # the inbox just loaded is watched from now on: the first pass reads it as it
                    # is (what changed before the watch began is on it), not after a second load
                    await self.adapter.watch()
                    self.reload_at = time.monotonic() + self.account.safety_poll_s
                    self.changed.set()
        except BaseException:
            await self.stop()
            raise
        log.info("session started", extra={"account": self.hash, "restored": state is not None,
                                           "logins": self.adapter.logins})

    def _build_site(self) -> Site:
        """The site on this session's page: the class the spec names (`adapter`), else the
        YAML-driven adapter."""
        credentials = self.config.credentials(self.account)
        if self.site_class is None:
            return SpecAdapter(self.handle.page, self.config, self.account, credentials, self.selectors,
                               self.navigations, self.slots, on_login=self._save_state, clock=self.clock)
        return self.site_class(SiteContext(self.handle.page, self.config, self.account, credentials,
                                           self.selectors, self.navigations, self.slots,
                                           on_login=self._save_state, clock=self.clock))

    async def _save_state(self) -> None:
        state = await self.handle.context.storage_state()
        await self.store.accounts.save_storage_state(self.account.id, state)

    def status(self) -> dict:
        return {"account": self.account.id, "site": self.site.name,
                "logged_in": self.adapter is not None, "last_poll_at": self.last_poll_at,
                "status": ("needs_login" if self.needs_login else
                           "degraded" if self.health.degraded else "ok"),
                "needs_login": self.needs_login,
                "missing": self.health.report()}

    async def stop(self) -> None:
        """Close the site, page, context and browser and delete this session's scratch directory."""
        handle, self.handle = self.handle, None
        adapter, self.adapter = self.adapter, None
        try:
            if adapter is not None:
                await adapter.close()
        finally:
            if handle is not None:
                if self._on_disconnect is not None:
                    handle.browser.remove_listener("disconnected", self._on_disconnect)
                    self._on_disconnect = None
                await handle.close()

    async def site_now(self) -> Site:
        """The site to work on: opened again when Chromium went away, started when not open;
        NeedsLogin while a person must log in (the site is not touched until then)."""
        if self.handle is not None and not self.handle.browser.is_connected():
            # Chromium is gone (it crashed, or the node's session host relaunched it): every page call
            # would fail from now on; open the session again (the stored login state is reused)
            log.warning("browser disconnected; opening the session again",
                        extra={"account": self.hash, "site": self.site.name})
            BROWSER_REOPENED.inc(tags={"site": self.site.name})
            await self.stop()
        if self.adapter is None:
            await self.start()
        if self.adapter is None:  # needs_login: the site is not touched until a person logs in
            raise NeedsLogin(self.needs_login or "a person must log in", self.site.name)
        return self.adapter
