"""The YAML-driven site adapter (`SpecAdapter`): everything that knows a site's pages (login,
popups, inbox, paged conversations, the reply box), on one Playwright page, driven entirely by the
site spec (conf/sites/<site>.yaml; one class for every site the YAML can describe). It is one
implementation of the `Site` protocol (site.py), the session's only view of a site; a site the
YAML cannot describe names its own class in its spec (`adapter: module:Class`). No storage, no
events: the session decides what is new and what to emit.

Reading proves every message (see extract.py) or fails naming the elements that miss. Sending is
confirmed by seeing the new outgoing message appear after the *anchor* (anchors.py: the
fingerprint of the last messages before the click) in the DOM, which works for form posts and XHR
sends alike.

One concern per module beside it: pageops.py (the page: navigation, popups, the ready wait, the
logged-out and challenge checks, the proven messages; this class's base), routes.py (URLs on
several hosts, routes in the fragment, ids from full links), waiting.py (a page is read once
rendered), loginflow.py (login as steps), navigation.py (by click), inbox.py (items, status
previews, typing), sending.py (click / Enter / either), paging.py (reading back to the cursor,
older messages by link or by scrolling).
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Callable

from playwright.async_api import Error as PlaywrightError

from actors.browser import navigation, paging, waiting
from actors.browser.anchors import Anchor, after_anchor, sent_after
from actors.browser.errors import (LoggedOut, LoginFailed, NeedsLogin, SendNotConfirmed,  # noqa: F401
                                   SendUnproven, SiteUnavailable)   # (callers import them here)
from actors.browser.extract import norm_text
from actors.browser.inbox import INBOX_JS, InboxItem, is_status, js_args
from actors.browser.loginflow import login_steps, uses_steps
from actors.browser.pageops import PageOps
from actors.browser.sending import submit_reply
from actors.browser.site import WATCH_BINDING
from contracts.events import ChatMessage
from contracts.ids import account_hash

log = logging.getLogger(__name__)


# Installed once per loaded inbox document of a live site (the binding survives navigations, the
# observer does not): every change of the page's content calls WATCH_BINDING.
_WATCH_JS = """
(binding) => {
  if (window.__replydeskWatching) return;
  window.__replydeskWatching = true;
  new MutationObserver(() => window[binding] && window[binding]())
    .observe(document.body, {subtree: true, childList: true, characterData: true});
}
"""


class SpecAdapter(PageOps):
    """The site as its spec describes it (constructor: PageOps)."""

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

    async def ensure_logged_in(self) -> None:
        """Open the inbox, logging in only if the restored session is missing or expired."""
        await self.visit(self.url("inbox"))

    # ------------------------------------------------------------ reading

    async def watch(self) -> None:
        """Report every change of the open inbox page through WATCH_BINDING (a live site)."""
        await self.page.evaluate(_WATCH_JS, WATCH_BINDING)

    def on_newest_page(self, conversation_id: str) -> bool:
        """The page is the conversation's newest page (a link-paged read may have left it on an
        older one; a scroll-paged one stays on it)."""
        url = self.url("conversation", conversation_id=conversation_id)
        if self.site.older_by == "link":
            return self.page.url == url
        return self.routes.at(self.page.url, url)

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

    def day_of(self, message: ChatMessage) -> str:
        """The calendar day a message is shown under, in the site's time zone (for the cursor)."""
        moment = datetime.fromisoformat(message.sent_at.replace("Z", "+00:00"))
        return moment.astimezone(self.reader.tz).date().isoformat()

    async def conversation(self, conversation_id: str, cursor: dict | None,
                           max_pages: int) -> list[ChatMessage]:
        """Messages newer than the cursor's last message, oldest first (paging.read_back)."""
        await self.open_conversation(conversation_id)
        return await paging.read_back(self, conversation_id, cursor, max_pages)

    async def open_conversation(self, conversation_id: str) -> None:
        """Open a conversation's newest page as the spec says (navigate.conversation)."""
        if self.site.navigate.conversation == "url" or \
                not await navigation.by_click(self, "conversation", conversation_id):
            await self.visit(self.url("conversation", conversation_id=conversation_id),
                             ready="conversation_ready")

    # ------------------------------------------------------------ sending

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
                after = after_anchor(seen, anchor) if found and not misses else None
                pending = sum(1 for r in raws if r.get("pending", -1) >= 0)
                if not found:
                    last = "no 'message' selector matched"
                elif misses:
                    last = "; ".join(f"{m.element}: {m.detail}" for m in misses)
                elif after is None:
                    last = "the messages before the send (its anchor) are no longer on the page"
                elif pending and not sent_after(after, text):
                    last = (f"{pending} message(s) still marked pending (message_pending "
                            f"{self.site.selectors('message_pending')}): the site never confirmed it")
                elif sent_after(after, text):
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


SiteAdapter = SpecAdapter   # the name callers and tests have always used
