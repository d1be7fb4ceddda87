"""The site adapter: everything that knows a site's pages (login, popups, inbox, paged
conversations, the reply box), on one Playwright page, driven entirely by the site spec
(conf/sites/<site>.yaml; one class for every site). No storage, no events: the session actor
decides what is new and what to emit.

Every navigation goes through `visit()`: paced (per-account limiter, node-wide slots), retried
on 5xx and network errors (tenacity, bounded by browser.page_retries), popups closed, and a
logged-out page (redirect to login or a logged-out marker) answered by logging in again once.

Reading proves every message (see extract.py) or fails naming the elements that miss. Sending is
confirmed by seeing the new outgoing message appear after the *anchor* (the fingerprint of the
last messages before the click) in the DOM, which works for form posts and XHR sends alike.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Awaitable, Callable
from urllib.parse import urljoin, urlparse

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page
from tenacity import (AsyncRetrying, retry_if_exception_type, stop_after_attempt,
                      wait_exponential)

from actors.browser.extract import Reader, Seen, norm_text, identify
from actors.browser.limits import NodeSlots, SlidingWindowLimiter
from actors.browser.selectors import Selectors
from contracts.errors import PermanentError
from contracts.events import ChatMessage
from contracts.ids import account_hash
from contracts.settings import AccountConf, Config, Credentials

log = logging.getLogger(__name__)

Anchor = list[list[str]]  # the shapes of the last messages before a send's click


class SiteUnavailable(Exception):
    """The site answered 5xx (retried)."""


class LoggedOut(Exception):
    """A page showed the login form: the session expired or was revoked."""


class LoginFailed(PermanentError):
    """The site rejected the credentials: retrying will not help."""


class SendNotConfirmed(RuntimeError):
    """The reply was submitted but could not be read back after its anchor."""

    def __init__(self, message: str, site: str = "", url: str = "", screenshot: str | None = None,
                 html: str | None = None):
        super().__init__(message)
        self.site, self.element, self.url = site, "send_button", url
        self.screenshot, self.html = screenshot, html

    def __reduce__(self):  # crosses Ray process boundaries intact
        return (SendNotConfirmed, (str(self), self.site, self.url, self.screenshot, self.html))


# Per inbox item: the first source (`@attr` on the item or its first descendant that has it) with a
# value, and the item's visible text (its signature: preview, time and unread count change on arrival).
_INBOX_JS = """
(els, from) => els.map(el => {
  for (const src of from) {
    const attr = src.slice(1);
    const f = el.hasAttribute(attr) ? el : el.querySelector('[' + CSS.escape(attr) + ']');
    const v = f ? f.getAttribute(attr) : null;
    if (v && v.trim()) return {ref: attr === 'href' ? new URL(v, location.href).pathname : v.trim(),
                               text: el.textContent};
  }
  return null;
})
"""


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class SiteAdapter:
    def __init__(self, page: Page, config: Config, account: AccountConf, credentials: Credentials,
                 selectors: Selectors, navigations: SlidingWindowLimiter, slots: NodeSlots,
                 on_login: Callable[[], Awaitable[None]] | None = None,
                 clock: Callable[[], datetime] = _utcnow):
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
        self.reader = Reader(self.site)
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
            await button.click(timeout=self.config.app.browser.selector_timeout_s * 1000)
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

    # ------------------------------------------------------------ login

    async def login(self) -> None:
        """Submit the login form; LoginFailed when the site keeps showing it."""
        await self._open(self.url("login"), expect_login=True)
        user, _ = await self.selectors.first(self.page, "login_username")
        await user.first.fill(self.credentials.username)
        pw, _ = await self.selectors.first(self.page, "login_password")
        await pw.first.fill(self.credentials.password.get_secret_value())
        await self._click("login_submit", page_load=True)
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

    async def inbox(self) -> list["InboxItem"]:
        await self.visit(self.url("inbox"))
        found = await self.selectors.probe(self.page, "inbox_item")
        if not found:
            # An empty inbox is normal; conversation links without matching items are not.
            prefix = self.site.paths["conversation"].partition("{")[0].rstrip("/")
            if await self.page.locator(f"a[href*='{prefix}/']").count():
                raise await self.selectors.not_found(
                    self.page, "inbox_item", detail="links to conversations are on the page, but "
                                                    "no inbox_item selector matched")
            return []
        items = []
        sources = [src for src in self.site.element("inbox_item").from_ if src.startswith("@")]
        unreadable = 0
        for raw in await found[0].evaluate_all(_INBOX_JS, sources):
            ref = (raw or {}).get("ref", "")
            m = self._conv_re.match(ref)
            conversation_id = m.group(1) if m else (ref if ref and "/" not in ref else None)
            if conversation_id is None:
                unreadable += 1
                continue
            items.append(InboxItem(conversation_id, " ".join(raw["text"].split())))
        if unreadable:  # a conversation we cannot name is a conversation we would never read
            raise await self.selectors.not_found(
                self.page, "inbox_item", detail=f"{unreadable} inbox item(s) gave no conversation "
                f"id from {sources} (a link to {self.site.paths['conversation']} or an id)")
        return items

    async def read_seen(self) -> list[Seen]:
        """The proven messages on the current conversation page, oldest first; SelectorNotFound
        naming every element that misses when any message cannot be proven."""
        loc, idx = await self.selectors.first(self.page, "message")
        seen, misses = await self._prove(idx)
        if misses:
            first = misses[0]
            for m in misses[1:]:
                self.selectors.health.miss(self.site.name, m.element, self.page.url, list(m.tried), m.detail)
            others = "; also " + "; ".join(f"{m.element}: {m.detail}" for m in misses[1:]) if misses[1:] else ""
            raise await self.selectors.not_found(self.page, first.element, first.detail + others,
                                                 list(first.tried))
        return seen

    async def _prove(self, message_index: int) -> tuple[list[Seen], list]:
        raws = await self.reader.raw(self.page, self.selectors.candidates("message")[message_index])
        seen, misses, used = self.reader.prove(raws, self.clock())
        for name, i in used.items():
            self.selectors.matched(name, i)
        if "message_direction" not in {m.element for m in misses}:
            self.selectors.health.ok("message_direction")
        return seen, misses

    def identify(self, conversation_id: str, seen: list[Seen]) -> list[ChatMessage]:
        return identify(self.account.id, self.site.name, conversation_id, seen)

    async def _older_href(self) -> str | None:
        if self.site.element("older_messages") is None:
            return None
        found = await self.selectors.probe(self.page, "older_messages")
        if not found:
            return None
        for src in self.site.element("older_messages").from_:
            value = (await found[0].first.get_attribute(src[1:]) if src.startswith("@")
                     else await found[0].first.text_content())
            if value and value.strip():
                return value.strip()
        return None

    async def conversation(self, conversation_id: str, cursor: dict | None,
                           max_pages: int) -> list[ChatMessage]:
        """Messages newer than the cursor's last message (oldest first), paging back until it is
        found or `max_pages` pages were read (then everything read is returned: the store drops
        what it already has). Ids are recomputed over all pages read so far, so occurrence indexes
        are the same as when the whole conversation is read at once."""
        await self.visit(self.url("conversation", conversation_id=conversation_id))
        pages: list[list[Seen]] = []
        for page_no in range(max_pages):
            pages.insert(0, await self.read_seen())
            merged = [m for p in pages for m in p]
            msgs = self.identify(conversation_id, merged)
            older = await self._older_href()
            pos = _find_cursor(msgs, cursor)
            # A cursor match whose minute is also the oldest minute read may have identical
            # messages further back (its occurrence index is then not proven): page on.
            if pos is not None and (older is None or merged[0].minute != merged[pos].minute):
                return msgs[pos + 1:]
            if older is None:
                await self._check_oldest(cursor, pos)
                return msgs
            if page_no + 1 == max_pages:
                if cursor:
                    log.warning("paged max_pages back without reaching the last stored message",
                                extra={"site": self.site.name, "conversation_id": conversation_id,
                                       "max_pages": max_pages})
                return msgs
            await self.visit(urljoin(self.page.url, older))
        return []

    async def _check_oldest(self, cursor: dict | None, pos: int | None) -> None:
        """On a page with no link to older messages: prove it really is the oldest one."""
        if cursor and pos is None:
            raise await self.selectors.not_found(
                self.page, "older_messages", detail="the last stored message is not on this page "
                "and no link to older messages matched: messages in between would be lost")
        if self.site.element("conversation_start") is not None and cursor is None:
            if not await self.selectors.probe(self.page, "conversation_start"):
                raise await self.selectors.not_found(
                    self.page, "conversation_start", detail="neither a link to older messages nor "
                    "the start-of-conversation marker matched: older messages would be lost")

    # ------------------------------------------------------------ sending

    def anchor(self, seen: list[Seen]) -> Anchor:
        """The fingerprint of the last messages before a send: where "after the send" starts."""
        return [list(m.shape) for m in seen[-self.site.anchor_messages:]]

    @staticmethod
    def after_anchor(seen: list[Seen], anchor: Anchor) -> list[Seen] | None:
        """The messages after the last place the anchor appears; None if it is not on the page."""
        if not anchor:
            return seen
        want = [tuple(a) for a in anchor]
        shapes = [m.shape for m in seen]
        for end in range(len(shapes), len(want) - 1, -1):
            if shapes[end - len(want):end] == want:
                return seen[end:]
        return None

    @staticmethod
    def sent_after(after: list[Seen], text: str) -> int:
        want = norm_text(text)
        return sum(1 for m in after if m.direction == "out" and norm_text(m.text) == want)

    async def send(self, conversation_id: str, text: str, anchor: Anchor,
                   after_click: Callable[[], None] | None = None) -> ChatMessage:
        """Type and submit a reply on the open conversation page, then wait until it shows after
        the anchor (a form post reloads the page, an XHR send updates it: both are seen)."""
        await self.close_popups()
        box, _ = await self.selectors.first(self.page, "reply_box")
        await box.first.fill(text)
        await self._click("send_button", page_load=False)
        if after_click:
            after_click()
        return await self._confirm(conversation_id, text, anchor)

    async def _confirm(self, conversation_id: str, text: str, anchor: Anchor) -> ChatMessage:
        """Read the page until the reply shows after the anchor. A page in the middle of loading
        (form post) is read again; what still cannot be read at the deadline is the error."""
        timeout = self.config.app.browser.navigation_timeout_s
        deadline = time.monotonic() + timeout
        last, misses = "the page did not show it", []
        while True:
            try:
                await self.page.wait_for_load_state("domcontentloaded")
                if await self.logged_out():
                    raise LoggedOut(self.page.url)
                found = await self.selectors.probe(self.page, "message")
                seen, misses = await self._prove(found[1]) if found else ([], [])
                after = self.after_anchor(seen, anchor) if found and not misses else None
                if not found:
                    last = "no 'message' selector matched"
                elif misses:
                    last = "; ".join(f"{m.element}: {m.detail}" for m in misses)
                elif after is None:
                    last = "the messages before the send (its anchor) are no longer on the page"
                elif self.sent_after(after, text):
                    msgs = self.identify(conversation_id, seen)
                    i = len(seen) - 1 - next(j for j, m in enumerate(reversed(seen))
                                             if m.direction == "out" and norm_text(m.text) == norm_text(text))
                    await self.close_popups()
                    return msgs[i]
            except PlaywrightError as exc:  # the page is navigating: read it again
                last = str(exc).splitlines()[0]
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.1)
        for m in misses:
            self.selectors.health.miss(self.site.name, m.element, self.page.url, list(m.tried), m.detail)
        shot, html = await self.selectors.save_artifacts(self.page, "send")
        raise SendNotConfirmed(
            f"site {self.site.name!r}: the reply in conversation {conversation_id} was submitted "
            f"(element 'send_button' clicked) but no outgoing message with its text appeared after "
            f"the anchor within {timeout:g} s at {self.page.url}: {last} (selectors for 'message': "
            f"{self.selectors.candidates('message')}; screenshot: {shot}, html: {html}). The draft "
            "stays 'sending': the next attempt checks the page after the anchor before sending again",
            self.site.name, self.page.url, shot, html)


@dataclass(frozen=True)
class InboxItem:
    conversation_id: str
    signature: str  # the item's visible text (preview, time, unread badge): changes on arrival


def _find_cursor(msgs: list[ChatMessage], cursor: dict | None) -> int | None:
    """Where the last stored message is in `msgs` (by id, else by content key: a markup change
    can change ids, never who wrote what when)."""
    if not cursor:
        return None
    for field, value in (("message_id", cursor.get("last_message_id")),
                         ("content_key", cursor.get("last_content_key"))):
        if value:
            for i in range(len(msgs) - 1, -1, -1):
                if getattr(msgs[i], field) == value:
                    return i
    return None
