"""The MeetMe site adapter: everything that knows the site's pages (login, popups, inbox, paged
conversations, the reply form), on one Playwright page. No storage, no events: the session
actor decides what is new and what to emit.

Every navigation goes through `visit()`: paced (per-account limiter, node-wide slots), retried
on 5xx and network errors (tenacity, bounded by browser.page_retries), popups closed, and a
logged-out page (redirect to login or a logged-out marker) answered by logging in again once.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Awaitable, Callable
from urllib.parse import urljoin, urlparse

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page
from tenacity import (AsyncRetrying, retry_if_exception_type, stop_after_attempt,
                      wait_exponential)

from actors.browser.limits import NodeSlots, SlidingWindowLimiter
from actors.browser.selectors import Selectors, record_match
from contracts.errors import PermanentError
from contracts.events import ChatMessage
from contracts.ids import account_hash, message_id
from contracts.settings import AccountConf, Config, Credentials

log = logging.getLogger(__name__)


class SiteUnavailable(Exception):
    """The site answered 5xx (retried)."""


class LoggedOut(Exception):
    """A page showed the login form: the session expired or was revoked."""


class LoginFailed(PermanentError):
    """The site rejected the credentials: retrying will not help."""


class SendNotConfirmed(RuntimeError):
    """The reply was submitted but could not be read back from the conversation."""


@dataclass(frozen=True)
class InboxItem:
    conversation_id: str
    signature: str  # the item's visible text (preview, time, unread badge): changes on arrival


# Reads every message of a page in one round trip; field selectors are tried in order.
_EXTRACT_JS = """
(els, s) => els.map(el => {
  const pick = (sels) => { for (let i = 0; i < sels.length; i++) {
      const f = el.matches(sels[i]) ? el : el.querySelector(sels[i]); if (f) return [f, i]; }
    return [null, -1]; };
  const [snd, si] = pick(s.sender), [txt, ti] = pick(s.text), [tm, mi] = pick(s.time);
  return {site_id: el.getAttribute('data-message-id'),
          sender: snd ? snd.textContent : null, text: txt ? txt.textContent : null,
          time: tm ? (tm.getAttribute('datetime') || tm.textContent) : null,
          out: s.out.some(x => el.matches(x)), idx: {message_sender: si, message_text: ti, message_time: mi}};
})
"""

_INBOX_JS = """
els => els.map(el => { const a = el.matches('a[href]') ? el : el.querySelector('a[href]');
  return a ? {href: new URL(a.getAttribute('href'), location.href).pathname, text: el.textContent} : null; })
"""


class MeetMeAdapter:
    def __init__(self, page: Page, config: Config, account: AccountConf, credentials: Credentials,
                 selectors: Selectors, navigations: SlidingWindowLimiter, slots: NodeSlots,
                 on_login: Callable[[], Awaitable[None]] | None = None):
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
        self.logins = 0
        conv_path = self.site.paths["conversation"]
        prefix, _, suffix = conv_path.partition("{conversation_id}")
        self._conv_re = re.compile("^" + re.escape(prefix) + r"([^/?#]+)" + re.escape(suffix) + "$")

    def url(self, path_key: str, **kw: str) -> str:
        return self.base_url + self.site.paths[path_key].format(**kw)

    # ------------------------------------------------------------ navigation

    async def visit(self, url: str) -> None:
        """Open `url` as a logged-in user: log in again once if the session has expired."""
        try:
            await self._open(url)
        except LoggedOut:
            log.info("not logged in (no stored session, expired or revoked); logging in",
                     extra={"account": account_hash(self.account.id), "url": url})
            await self.login()
            await self._open(url)

    async def _open(self, url: str, *, expect_login: bool = False) -> None:
        browser_conf = self.config.app.browser
        async for attempt in AsyncRetrying(
                stop=stop_after_attempt(browser_conf.page_retries + 1),
                wait=wait_exponential(multiplier=browser_conf.retry_backoff_s, max=5),
                retry=retry_if_exception_type((SiteUnavailable, PlaywrightError)), reraise=True):
            with attempt:
                await self.navigations.acquire()
                async with self.slots.hold():
                    resp = await self.page.goto(url, wait_until="domcontentloaded",
                                                timeout=browser_conf.navigation_timeout_s * 1000)
                if resp is not None and resp.status >= 500:
                    log.warning("site error, retrying", extra={"status": resp.status, "url": url})
                    raise SiteUnavailable(f"{url} answered HTTP {resp.status}")
        await self.close_popups()
        if not expect_login and await self.logged_out():
            raise LoggedOut(url)

    async def logged_out(self) -> bool:
        if urlparse(self.page.url).path == self.site.paths["login"]:
            return True
        for sel in self.site.logged_out_markers:
            if await self.page.locator(sel).count():
                return True
        return False

    async def close_popups(self) -> None:
        """Close any modal covering the page (it would swallow clicks)."""
        for _ in range(3):
            found = await self.selectors.optional(self.page, "popup_close")
            if not found:
                return
            button = found[0].first
            if not await button.is_visible():
                return
            await button.click(timeout=self.config.app.browser.selector_timeout_s * 1000)
            try:
                await button.wait_for(state="hidden", timeout=2000)
            except PlaywrightError:
                pass

    async def _click_navigating(self, element: str) -> None:
        """Click a submit button and wait for the page it leads to (popups closed first)."""
        await self.close_popups()
        button, _ = await self.selectors.first(self.page, element)
        timeout = self.config.app.browser.navigation_timeout_s * 1000
        await self.navigations.acquire()
        async with self.slots.hold():
            async with self.page.expect_navigation(wait_until="domcontentloaded", timeout=timeout):
                await button.first.click(timeout=timeout)
        await self.close_popups()

    # ------------------------------------------------------------ login

    async def login(self) -> None:
        """Submit the login form; LoginFailed when the site keeps showing it."""
        await self._open(self.url("login"), expect_login=True)
        user, _ = await self.selectors.first(self.page, "login_username")
        await user.first.fill(self.credentials.username)
        pw, _ = await self.selectors.first(self.page, "login_password")
        await pw.first.fill(self.credentials.password.get_secret_value())
        await self._click_navigating("login_submit")
        if await self.logged_out():
            raise LoginFailed(f"site {self.site.name!r} rejected the login of account "
                              f"{account_hash(self.account.id)} (check its credentials)")
        self.logins += 1
        log.info("logged in", extra={"account": account_hash(self.account.id)})
        if self.on_login:
            await self.on_login()

    async def ensure_logged_in(self) -> None:
        """Open the inbox, logging in only if the restored session is missing or expired."""
        await self.visit(self.url("inbox"))

    # ------------------------------------------------------------ reading

    async def inbox(self) -> list[InboxItem]:
        await self.visit(self.url("inbox"))
        found = await self.selectors.optional(self.page, "inbox_item")
        if not found:
            # An empty inbox is normal; conversation links without matching items are not.
            prefix = self.site.paths["conversation"].partition("{")[0].strip("/")
            if await self.page.locator(f"a[href*='{prefix}/']").count():
                raise await self.selectors.not_found(self.page, "inbox_item")
            return []
        items = []
        for raw in await found[0].evaluate_all(_INBOX_JS):
            m = self._conv_re.match(raw["href"]) if raw else None
            if m:
                items.append(InboxItem(m.group(1), " ".join(raw["text"].split())))
        return items

    async def read_page(self, conversation_id: str) -> list[ChatMessage]:
        """The messages on the current conversation page, oldest first."""
        loc, _ = await self.selectors.first(self.page, "message")
        sel = self.site.selectors
        raws = await loc.evaluate_all(_EXTRACT_JS, {
            "sender": sel["message_sender"], "text": sel["message_text"],
            "time": sel["message_time"], "out": sel.get("message_outgoing", [])})
        msgs = []
        for n, raw in enumerate(raws):
            for element, idx in raw["idx"].items():
                if idx < 0:
                    raise await self.selectors.not_found(self.page, element)
                if n == 0:
                    record_match(self.site.name, element, idx)
            sent_at = raw["time"].strip()
            msgs.append(ChatMessage(
                message_id=message_id(self.account.id, conversation_id, raw["site_id"],
                                      raw["sender"], sent_at, raw["text"]),
                account_id=self.account.id, site=self.site.name, conversation_id=conversation_id,
                site_message_id=raw["site_id"], sender=raw["sender"].strip(), text=raw["text"],
                sent_at=sent_at, direction="out" if raw["out"] else "in"))
        return msgs

    async def conversation(self, conversation_id: str, after: str | None, max_pages: int) -> list[ChatMessage]:
        """Messages newer than message id `after` (oldest first), paging back until `after` is
        found or `max_pages` pages were read (then everything read is returned: the store's
        unique ids drop what was already seen)."""
        await self.visit(self.url("conversation", conversation_id=conversation_id))
        collected: list[ChatMessage] = []
        for page_no in range(max_pages):
            msgs = await self.read_page(conversation_id)
            ids = [m.message_id for m in msgs]
            if after in ids:
                return msgs[ids.index(after) + 1:] + collected
            collected = msgs + collected
            if page_no + 1 == max_pages:
                break
            older = await self.selectors.optional(self.page, "older_messages")
            if not older:
                break
            href = await older[0].first.get_attribute("href")
            await self.visit(urljoin(self.page.url, href))
        return collected

    # ------------------------------------------------------------ sending

    @staticmethod
    def find_outgoing(msgs: list[ChatMessage], text: str, after_site_id: str) -> ChatMessage | None:
        """An outgoing message with `text` newer than `after_site_id` ("" = anywhere on the page)."""
        start = 0
        ids = [m.site_message_id for m in msgs]
        if after_site_id and after_site_id in ids:
            start = ids.index(after_site_id) + 1
        want = _norm(text)
        for m in msgs[start:]:
            if m.direction == "out" and _norm(m.text) == want:
                return m
        return None

    async def send(self, conversation_id: str, text: str, after_site_id: str,
                   after_click: Callable[[], None] | None = None) -> ChatMessage:
        """Type and submit a reply on the open conversation page, then read it back."""
        await self.close_popups()
        box, _ = await self.selectors.first(self.page, "reply_box")
        await box.first.fill(text)
        await self._click_navigating("send_button")
        if after_click:
            after_click()
        if await self.logged_out():
            raise LoggedOut(self.page.url)
        sent = self.find_outgoing(await self.read_page(conversation_id), text, after_site_id)
        if sent is None:
            raise SendNotConfirmed(f"reply in conversation {conversation_id} not found after sending")
        return sent


def _norm(text: str) -> str:
    """Browsers submit textarea newlines as CRLF; compare texts modulo that and edge whitespace."""
    return text.replace("\r\n", "\n").strip()
