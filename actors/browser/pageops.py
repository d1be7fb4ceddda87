"""The page and what every step on it shares: paced and retried navigation, popups, the ready
wait, the logged-out check, the challenge check, clicks, and reading the proven messages of the
page. `PageOps` is the base of the YAML-driven adapter (adapter.py); the step modules (loginflow,
navigation, paging, sending) take a `PageOps`, never the adapter, so none of them imports it.

Every navigation goes through `visit()`: paced (per-account limiter, node-wide slots), retried
on 5xx and network errors (tenacity, bounded by browser.page_retries), popups closed, and a
logged-out page (redirect to login or a logged-out marker) answered by logging in again once.
What depends on the steps (`login`, `open_inbox`) is the adapter's to define.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import date, datetime
from typing import Awaitable, Callable

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page
from tenacity import (AsyncRetrying, retry_if_exception_type, stop_after_attempt,
                      wait_exponential)

from actors.browser import waiting
from actors.browser.errors import LoggedOut, NeedsLogin, SiteUnavailable
from actors.browser.extract import Reader, Seen, identify
from actors.browser.limits import NodeSlots, SlidingWindowLimiter
from actors.browser.routes import Routes
from actors.browser.selectors import Selectors
from contracts.events import ChatMessage, utcnow
from contracts.ids import account_hash
from contracts.settings import AccountConf, Config, Credentials

log = logging.getLogger(__name__)


class PageOps:
    def __init__(self, page: Page, config: Config, account: AccountConf, credentials: Credentials,
                 selectors: Selectors, navigations: SlidingWindowLimiter, slots: NodeSlots,
                 on_login: Callable[[], Awaitable[None]] | None = None,
                 clock: Callable[[], datetime] = utcnow,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.page = page
        self.config = config
        self.account = account
        self.credentials = credentials
        self.site = config.site(account.site)
        self.base_url = config.site_url(account.site)
        self.selectors = selectors
        self.navigations = navigations
        self.slots = slots
        self.on_login = on_login
        self.clock = clock
        self.sleep = sleep            # the backoff between login attempts (injectable)
        self.reader = Reader(self.site, me=account.id)
        self.routes = Routes(self.site, self.base_url, config.host_urls(account.site))
        self.logins = 0
        self.login_bounces = 0

    # what the adapter defines (they depend on the step modules, which depend on this one)

    async def login(self) -> None:
        raise NotImplementedError

    async def open_inbox(self) -> None:
        raise NotImplementedError

    def url(self, path_key: str, **kw: str) -> str:
        return self.routes.url(path_key, **kw)

    def location(self) -> str:
        """The page's URL now (named in errors)."""
        return self.page.url

    async def close(self) -> None:
        """Nothing is held besides the page (the session closes it)."""

    # ------------------------------------------------------------ navigation

    async def visit(self, url: str, ready: str | None = None) -> None:
        """Open `url` as a logged-in user: log in again once if the session has expired. `ready`:
        the element (inbox_ready, conversation_ready) the page must render before it is read."""
        try:
            await self._open(url, ready=ready)
        except LoggedOut:
            log.info("not logged in (no stored session, expired or revoked); logging in",
                     extra={"account": account_hash(self.account.id), "url": url})
            await self.login()
            await self._open(url, ready=ready)

    async def _open(self, url: str, *, expect_login: bool = False, ready: str | None = None) -> None:
        await waiting.mark_stale(self.page, self.selectors)
        browser_conf = self.config.app.browser
        async for attempt in AsyncRetrying(
                stop=stop_after_attempt(browser_conf.page_retries + 1),
                wait=wait_exponential(multiplier=browser_conf.retry_backoff_s, max=5),
                retry=retry_if_exception_type((SiteUnavailable, PlaywrightError)), reraise=True):
            with attempt:
                await self.navigations.acquire()
                async with self.slots.hold():
                    if "#" in url and self.page.url == url:   # a fragment route already shown:
                        resp = await self.page.reload(             # going there again is no load
                            wait_until="domcontentloaded",
                            timeout=browser_conf.navigation_timeout_s * 1000)
                    else:
                        resp = await self.page.goto(url, wait_until="domcontentloaded",
                                                    timeout=browser_conf.navigation_timeout_s * 1000)
                if resp is not None and resp.status >= 500:
                    log.warning("site error, retrying", extra={"status": resp.status, "url": url})
                    raise SiteUnavailable(f"{url} answered HTTP {resp.status}")
        await self.close_popups()
        if not expect_login and await self.logged_out():
            raise LoggedOut(url)
        if ready:
            await self.rendered(ready)

    async def rendered(self, ready: str) -> None:
        """Wait for the page's ready element (a client-rendered page), then close the popups
        its render may have brought; a page that turns out logged out raises LoggedOut."""
        if self.site.element(ready) is None:
            return

        async def check() -> None:
            if await self.logged_out():
                raise LoggedOut(self.page.url)
        await waiting.wait_ready(self.page, self.selectors, ready, self.site.ready_timeout_s, check)
        await self.close_popups()

    def on_inbox(self) -> bool:
        """The page shows the inbox (a live site's page is left there, watched, between passes)."""
        return self.routes.at(self.page.url, self.url("inbox"))

    async def logged_out(self) -> bool:
        if self.routes.at(self.page.url, self.url("login")):
            return True
        for sel in self.selectors.candidates("logged_out"):
            if await self.page.locator(sel).count():
                return True
        return False

    async def close_popups(self) -> None:
        """Close any modal covering the page (it would swallow clicks)."""
        for _ in range(3):
            found = await self.selectors.probe(self.page, "popup_close")
            if not found:
                return
            button = found[0].first
            if not await button.is_visible():
                return
            # it is there and visible: clicking it may still take a while on a loaded machine
            # (Playwright's actionability checks), so the budget is the navigation timeout
            await button.click(timeout=self.config.app.browser.navigation_timeout_s * 1000)
            try:
                await button.wait_for(state="hidden", timeout=2000)
            except PlaywrightError:
                pass

    async def _click(self, element: str, *, page_load: bool) -> None:
        """Click `element` (popups closed first); with `page_load`, wait (bounded) for the page the
        click may load: a form post loads one, a page script handling the click does not."""
        await self.close_popups()
        button, _ = await self.selectors.first(self.page, element)
        timeout = self.config.app.browser.navigation_timeout_s * 1000
        await self.navigations.acquire()
        async with self.slots.hold():
            if not page_load:
                await button.first.click(timeout=timeout)
                return
            try:
                async with self.page.expect_navigation(wait_until="domcontentloaded", timeout=timeout):
                    await button.first.click(timeout=timeout)
            except PlaywrightError:
                log.info("no page load after the click (handled by the page's script?)",
                         extra={"site": self.site.name, "element": element})
        await self.close_popups()

    async def check_challenge(self) -> None:
        """A challenge page (site spec `login_challenge`) raises NeedsLogin: handed to a person."""
        if self.site.element("login_challenge") is None:
            return
        found = await self.selectors.probe(self.page, "login_challenge")
        if not found:
            return
        kind = await found[0].first.get_attribute("data-challenge") or "challenge"
        shot, html = await self.selectors.save_artifacts(self.page, "login-challenge")
        where = self.page.url.split("?", 1)[0].split("#", 1)[0]  # a challenge URL may carry a one-time token
        raise NeedsLogin(
            f"site {self.site.name!r} asks for a {kind} at {where} "
            f"({self.selectors.candidates('login_challenge')[found[1]]!r} matched): a person must log "
            f"in (./run login {self.account.id}); screenshot: {shot}, html: {html}",
            self.site.name, where, shot, html)

    # ------------------------------------------------------------ the messages on the page

    async def read_seen(self) -> list[Seen]:
        """The proven messages on the current conversation page, oldest first; SelectorNotFound
        naming every element that misses when any message cannot be proven."""
        return await self._proven(await self._read_raw())

    async def _read_raw(self) -> list[dict]:
        loc, idx = await self.selectors.first(self.page, "message")
        return await self.reader.raw(self.page, self.selectors.candidates("message")[idx])

    async def _proven(self, raws: list[dict], start_day: date | None = None) -> list[Seen]:
        seen, misses = self._prove(raws, start_day)
        if misses:
            first = misses[0]
            for m in misses[1:]:
                self.selectors.health.miss(self.site.name, m.element, self.page.url, list(m.tried), m.detail)
            others = "; also " + "; ".join(f"{m.element}: {m.detail}" for m in misses[1:]) if misses[1:] else ""
            raise await self.selectors.not_found(self.page, first.element, first.detail + others,
                                                 list(first.tried))
        return seen

    def _prove(self, raws: list[dict], start_day: date | None = None) -> tuple[list[Seen], list]:
        seen, misses, used = self.reader.prove(raws, self.clock(), start_day)
        for name, i in used.items():
            self.selectors.matched(name, i)
        if "message_direction" not in {m.element for m in misses}:
            self.selectors.health.ok("message_direction")
        return seen, misses

    def identify(self, conversation_id: str, seen: list[Seen]) -> list[ChatMessage]:
        return identify(self.account.id, self.site.name, conversation_id, seen)
