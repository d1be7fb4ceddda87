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

What single-page apps add lives beside it, one concern per module: routes.py (URLs on several
hosts, routes in the fragment, ids from full links), waiting.py (a page is read once rendered),
loginflow.py (login as steps), navigation.py (by click), inbox.py (items, status previews,
typing), sending.py (click / Enter / either), paging.py (older messages by scrolling).
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import date, datetime
from typing import Awaitable, Callable
from urllib.parse import urljoin

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page
from tenacity import (AsyncRetrying, retry_if_exception_type, stop_after_attempt,
                      wait_exponential)

from actors.browser import navigation, paging, waiting
from actors.browser.extract import Reader, Seen, norm_text, identify
from actors.browser.inbox import INBOX_JS, InboxItem, is_status, js_args
from actors.browser.limits import NodeSlots, SlidingWindowLimiter
from actors.browser.loginflow import login_steps, uses_steps
from actors.browser.routes import Routes
from actors.browser.selectors import Selectors
from actors.browser.sending import submit_reply
from contracts.events import ChatMessage, utcnow
from contracts.ids import account_hash
from contracts.settings import AccountConf, Config, Credentials

log = logging.getLogger(__name__)

Anchor = list[list[str]]  # the shapes of the last messages before a send's click


from actors.browser.errors import (LoggedOut, LoginFailed, NeedsLogin, SendNotConfirmed,  # noqa: F401
                                   SendUnproven, SiteUnavailable)


# A live site's open inbox tells the session of every change to its content (installed once per
# loaded inbox document; the binding survives navigations, the observer does not).
WATCH_BINDING = "replydeskInboxChanged"
_WATCH_JS = """
(binding) => {
  if (window.__replydeskWatching) return;
  window.__replydeskWatching = true;
  new MutationObserver(() => window[binding] && window[binding]())
    .observe(document.body, {subtree: true, childList: true, characterData: true});
}
"""


class SiteAdapter:
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

    def url(self, path_key: str, **kw: str) -> str:
        return self.routes.url(path_key, **kw)

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

    # ------------------------------------------------------------ login

    async def login(self) -> None:
        """Submit the login form; LoginFailed when the site keeps showing it (a spec with login
        steps: loginflow.py)."""
        if uses_steps(self.site):
            await login_steps(self, self.sleep)
            self.logins += 1
            log.info("logged in", extra={"account": account_hash(self.account.id)})
            if self.on_login:
                await self.on_login()
            return
        await self._open(self.url("login"), expect_login=True)
        await self.check_challenge()  # some sites ask before showing the form
        user, _ = await self.selectors.first(self.page, "login_username")
        await user.first.fill(self.credentials.username)
        pw, _ = await self.selectors.first(self.page, "login_password")
        await pw.first.fill(self.credentials.password.get_secret_value())
        await self._click("login_submit", page_load=True)
        await self.check_challenge()
        if await self.logged_out():
            raise LoginFailed(f"site {self.site.name!r} rejected the login of account "
                              f"{account_hash(self.account.id)} (check its credentials)")
        self.logins += 1
        log.info("logged in", extra={"account": account_hash(self.account.id)})
        if self.on_login:
            await self.on_login()

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

    async def ensure_logged_in(self) -> None:
        """Open the inbox, logging in only if the restored session is missing or expired."""
        await self.visit(self.url("inbox"))

    # ------------------------------------------------------------ reading

    def on_inbox(self) -> bool:
        """The page shows the inbox (a live site's page is left there, watched, between passes)."""
        return self.routes.at(self.page.url, self.url("inbox"))

    def on_newest_page(self, conversation_id: str) -> bool:
        """The page is the conversation's newest page (a link-paged read may have left it on an
        older one; a scroll-paged one stays on it)."""
        url = self.url("conversation", conversation_id=conversation_id)
        if self.site.older_by == "link":
            return self.page.url == url
        return self.routes.at(self.page.url, url)

    async def watch(self) -> None:
        """Report every change of the open inbox page through WATCH_BINDING (a live site)."""
        await self.page.evaluate(_WATCH_JS, WATCH_BINDING)

    async def open_inbox(self) -> None:
        """Load the inbox page (watched, on a live site)."""
        if self.site.navigate.inbox == "url" or not await navigation.by_click(self, "inbox"):
            await self.visit(self.url("inbox"), ready="inbox_ready")
        if self.site.live:
            await self.watch()

    async def inbox(self, *, reload: bool = True) -> list["InboxItem"]:
        """The inbox items; `reload=False` reads the open inbox page as it is now (a live site's
        page keeps itself current), loading it only when the page shows something else."""
        if reload or not self.on_inbox():
            await self.open_inbox()
        elif self.site.element("inbox_ready") is not None:   # a live page re-rendering itself
            await waiting.wait_ready(self.page, self.selectors, "inbox_ready",
                                     self.site.ready_timeout_s, fresh=False)
        found = await self.selectors.probe(self.page, "inbox_item")
        if not found:
            why = await self._not_empty()
            if why is None:
                return []
            # a live inbox may have re-rendered in between: one more look before the miss
            found = await self.selectors.probe(self.page, "inbox_item")
            if not found:
                raise await self.selectors.not_found(self.page, "inbox_item", detail=why)
        items = []
        args = js_args(self.site)
        sources = args[0]
        unreadable = 0
        for raw in await found[0].evaluate_all(INBOX_JS, args):
            ref = (raw or {}).get("ref", "")
            conversation_id = (self.routes.conversation_id(ref, self.page.url) if raw and raw["href"]
                               else ref if ref and "/" not in ref else None)
            if conversation_id is None:
                unreadable += 1
                continue
            items.append(InboxItem.of(conversation_id, raw["text"], raw.get("unread"),
                                      is_status(self.site, raw)))
        if unreadable:  # a conversation we cannot name is a conversation we would never read
            raise await self.selectors.not_found(
                self.page, "inbox_item", detail=f"{unreadable} inbox item(s) gave no conversation "
                f"id from {sources} (a link to {self.site.paths['conversation']} or an id)")
        return items

    async def _not_empty(self) -> str | None:
        """No item matched: why the inbox is not taken for empty (a link to a conversation is
        on the page, or the spec's `inbox_empty` marker does not show), or None: it is empty."""
        hrefs = await self.page.eval_on_selector_all("a[href]", "els => els.map(a => a.href)")
        if any(self.routes.conversation_id(h, self.page.url) for h in hrefs):
            return "links to conversations are on the page, but no inbox_item selector matched"
        if self.site.element("inbox_empty") is not None and \
                not await self.selectors.probe(self.page, "inbox_empty"):
            return (f"no inbox_item matched and the inbox does not show its empty marker "
                    f"({self.site.selectors('inbox_empty')}) either: not taken for an empty inbox")
        return None

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

    def day_of(self, message: ChatMessage) -> str:
        """The calendar day a message is shown under, in the site's time zone (for the cursor)."""
        moment = datetime.fromisoformat(message.sent_at.replace("Z", "+00:00"))
        return moment.astimezone(self.reader.tz).date().isoformat()

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
        """Messages newer than the cursor's last message (oldest first). A conversation read for
        the first time is read `max_pages` deep; one with a cursor is paged back until the cursor
        is found (up to `account.catch_up_pages`: never a silent gap between what was stored and
        what is returned). Ids are recomputed over all pages read so far, so occurrence indexes
        are the same as when the whole conversation is read at once."""
        await self.open_conversation(conversation_id)
        limit = self.account.catch_up_pages if cursor else max_pages
        scroll = self.site.older_by == "scroll"
        exhausted = False
        headers = self.site.element("date_header") is not None
        cursor_day = (date.fromisoformat(cursor["last_day"])
                      if headers and cursor and cursor.get("last_day") else None)
        pages: list[list[dict]] = []
        for page_no in range(limit):
            if scroll:   # the whole list, grown by each scroll
                pages = [await self._read_raw()]
                older = None if exhausted or await paging.at_start(self) else "scroll"
            else:
                pages.insert(0, await self._read_raw())
                older = await self._older_href()
            raws = [r for p in pages for r in p]
            # Messages above the first date header read so far: a page that continues the day of
            # the page before it shows no header. Above the cursor with no header in between they
            # share its day; otherwise their day comes from an older page.
            head = next((i for i, r in enumerate(raws) if r.get("header")), len(raws))
            if cursor_day is not None and head:
                seen = await self._proven(raws, cursor_day)
                msgs = self.identify(conversation_id, seen)
                pos = _find_cursor(msgs, cursor)
                if pos is not None and pos < head and self._proven_match(seen, pos, older):
                    return msgs[pos + 1:]
            seen = await self._proven(raws)
            msgs = self.identify(conversation_id, seen)
            guessed = next((i for i, m in enumerate(seen) if not m.day_guessed), len(seen)) if headers else 0
            pos = _find_cursor(msgs, cursor)
            if pos is not None and pos >= guessed and self._proven_match(seen, pos, older):
                return msgs[pos + 1:]
            if older is None:  # the conversation's start: a time of day there is of the poll's day
                await self._check_oldest(cursor, pos)
                return msgs
            if page_no + 1 == limit:
                if cursor:
                    raise await self.selectors.not_found(
                        self.page, "older_messages", detail=f"paged {limit} pages back "
                        f"(catch_up_pages) without reaching the last stored message: the messages "
                        "in between would be lost; if the markup changed how sender, time or text "
                        "read, the spec must read them as before")
                return msgs[guessed:]  # the first read's depth: what cannot be dated is left
            if scroll:
                exhausted = not await paging.scroll_older(self)
            else:
                await self.visit(urljoin(self.page.url, older), ready="conversation_ready")
        return []

    async def open_conversation(self, conversation_id: str) -> None:
        """Open a conversation's newest page as the spec says (navigate.conversation)."""
        if self.site.navigate.conversation == "url" or \
                not await navigation.by_click(self, "conversation", conversation_id):
            await self.visit(self.url("conversation", conversation_id=conversation_id),
                             ready="conversation_ready")

    @staticmethod
    def _proven_match(seen: list[Seen], pos: int, older: str | None) -> bool:
        """A cursor match whose minute is also the oldest minute read may have identical messages
        further back (its occurrence index is then not proven): page on while there are pages."""
        return older is None or seen[0].minute != seen[pos].minute

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

    def anchor(self, seen: list[Seen], text: str) -> Anchor:
        """The fingerprint of the last messages before a send: where "after the send" starts.
        At least `anchor_messages` long, and longer until it is unique on the page and not made
        only of messages that look like the reply itself (else the reply, once shown, would form
        the anchor again one message later, and "after the anchor" would start after the reply)."""
        shapes = [m.shape for m in seen]
        want = norm_text(text)
        k = min(self.site.anchor_messages, len(shapes))
        while k < len(shapes):
            window = shapes[-k:]
            reply_like = all(sh[0] == "out" and sh[3] == want for sh in window)
            if not reply_like and len(_ends(shapes, window)) == 1:
                break
            k += 1
        return [list(sh) for sh in shapes[len(shapes) - k:]]

    @staticmethod
    def after_anchor(seen: list[Seen], anchor: Anchor) -> list[Seen] | None:
        """The messages after the one place the anchor appears; None if it is not on the page, or
        appears more than once (then "after the send" is not proven)."""
        if not anchor:
            return seen
        ends = _ends([m.shape for m in seen], [tuple(a) for a in anchor])
        return seen[ends[0]:] if len(ends) == 1 else None

    @staticmethod
    def sent_after(after: list[Seen], text: str) -> int:
        want = norm_text(text)
        return sum(1 for m in after if m.direction == "out" and norm_text(m.text) == want)

    async def send(self, conversation_id: str, text: str, anchor: Anchor,
                   after_click: Callable[[], None] | None = None) -> ChatMessage:
        """Type and submit a reply on the open conversation page, then wait until it shows after
        the anchor (a form post reloads the page, an XHR send updates it: both are seen)."""
        how = await submit_reply(self, text)
        log.info("reply submitted", extra={"site": self.site.name, "by": how})
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
                raws = await self.reader.raw(
                    self.page, self.selectors.candidates("message")[found[1]]) if found else []
                seen, misses = self._prove(raws) if found else ([], [])
                after = self.after_anchor(seen, anchor) if found and not misses else None
                pending = sum(1 for r in raws if r.get("pending", -1) >= 0)
                if not found:
                    last = "no 'message' selector matched"
                elif misses:
                    last = "; ".join(f"{m.element}: {m.detail}" for m in misses)
                elif after is None:
                    last = "the messages before the send (its anchor) are no longer on the page"
                elif pending and not self.sent_after(after, text):
                    last = (f"{pending} message(s) still marked pending (message_pending "
                            f"{self.site.selectors('message_pending')}): the site never confirmed it")
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


def _ends(shapes: list, window: list) -> list[int]:
    """Every index just past a place where `window` occurs in `shapes`."""
    n = len(window)
    return [end for end in range(n, len(shapes) + 1) if shapes[end - n:end] == window]


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
