"""Reading a conversation back to its cursor, page by page (`read_back`), and older messages by
link (`older_messages`) or by scrolling.

By scrolling (site spec `older_by: scroll`, `scroll_container`): the container is scrolled to its
top, which makes an infinite-scroll conversation load the previous messages above the ones
shown; then the page is watched until more messages are there, `conversation_start` shows, or
`ready_timeout_s` passes with nothing more (the oldest reachable). The whole list is read again
after each scroll, up to the page bound (max_pages / catch_up_pages).
"""
from __future__ import annotations

import asyncio
import time
from datetime import date
from urllib.parse import urljoin

from playwright.async_api import Error as PlaywrightError

from actors.browser.extract import Seen
from actors.browser.pageops import PageOps
from contracts.events import ChatMessage

_TOP_JS = "el => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }"


async def at_start(adapter: PageOps) -> bool:
    """The start-of-conversation marker shows: nothing older to load."""
    if adapter.site.element("conversation_start") is None:
        return False
    return bool(await adapter.selectors.probe(adapter.page, "conversation_start"))


async def _count(adapter: PageOps) -> int:
    found = await adapter.selectors.probe(adapter.page, "message")
    return await found[0].count() if found else 0


async def scroll_older(adapter: PageOps) -> bool:
    """Scroll to the top once; True when older messages loaded, False when nothing more did."""
    page = adapter.page
    before = await _count(adapter)
    container, _ = await adapter.selectors.first(page, "scroll_container")
    await adapter.navigations.acquire()     # loading older messages is a request to the site
    async with adapter.slots.hold():
        await container.first.evaluate(_TOP_JS)
    deadline = time.monotonic() + adapter.site.ready_timeout_s
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        try:
            if await _count(adapter) > before:
                return True
            if await at_start(adapter):
                return False
        except PlaywrightError:
            pass
    return False


async def read_back(ops: PageOps, conversation_id: str, cursor: dict | None,
                    max_pages: int) -> list[ChatMessage]:
    """Messages newer than the cursor's last message (oldest first), read from the open newest
    page. A conversation read for the first time is read `max_pages` deep; one with a cursor is
    paged back until the cursor is found (up to `account.catch_up_pages`: never a silent gap
    between what was stored and what is returned). Ids are recomputed over all pages read so far,
    so occurrence indexes are the same as when the whole conversation is read at once."""
    site = ops.site
    limit = ops.account.catch_up_pages if cursor else max_pages
    scroll = site.older_by == "scroll"
    exhausted = False
    headers = site.element("date_header") is not None
    cursor_day = (date.fromisoformat(cursor["last_day"])
                  if headers and cursor and cursor.get("last_day") else None)
    pages: list[list[dict]] = []
    for page_no in range(limit):
        if scroll:   # the whole list, grown by each scroll
            pages = [await ops._read_raw()]
            older = None if exhausted or await at_start(ops) else "scroll"
        else:
            pages.insert(0, await ops._read_raw())
            older = await _older_href(ops)
        raws = [r for p in pages for r in p]
        # Messages above the first date header read so far: a page that continues the day of
        # the page before it shows no header. Above the cursor with no header in between they
        # share its day; otherwise their day comes from an older page.
        head = next((i for i, r in enumerate(raws) if r.get("header")), len(raws))
        if cursor_day is not None and head:
            seen = await ops._proven(raws, cursor_day)
            msgs = ops.identify(conversation_id, seen)
            pos = _find_cursor(msgs, cursor)
            if pos is not None and pos < head and _proven_match(seen, pos, older):
                return msgs[pos + 1:]
        seen = await ops._proven(raws)
        msgs = ops.identify(conversation_id, seen)
        guessed = next((i for i, m in enumerate(seen) if not m.day_guessed), len(seen)) if headers else 0
        pos = _find_cursor(msgs, cursor)
        if pos is not None and pos >= guessed and _proven_match(seen, pos, older):
            return msgs[pos + 1:]
        if older is None:  # the conversation's start: a time of day there is of the poll's day
            await _check_oldest(ops, cursor, pos)
            return msgs
        if page_no + 1 == limit:
            if cursor:
                raise await ops.selectors.not_found(
                    ops.page, "older_messages", detail=f"paged {limit} pages back "
                    f"(catch_up_pages) without reaching the last stored message: the messages "
                    "in between would be lost; if the markup changed how sender, time or text "
                    "read, the spec must read them as before")
            return msgs[guessed:]  # the first read's depth: what cannot be dated is left
        if scroll:
            exhausted = not await scroll_older(ops)
        else:
            await ops.visit(urljoin(ops.page.url, older), ready="conversation_ready")
    return []


async def _older_href(ops: PageOps) -> str | None:
    element = ops.site.element("older_messages")
    if element is None:
        return None
    found = await ops.selectors.probe(ops.page, "older_messages")
    if not found:
        return None
    for src in element.from_:
        value = (await found[0].first.get_attribute(src[1:]) if src.startswith("@")
                 else await found[0].first.text_content())
        if value and value.strip():
            return value.strip()
    return None


def _proven_match(seen: list[Seen], pos: int, older: str | None) -> bool:
    """A cursor match whose minute is also the oldest minute read may have identical messages
    further back (its occurrence index is then not proven): page on while there are pages."""
    return older is None or seen[0].minute != seen[pos].minute


async def _check_oldest(ops: PageOps, cursor: dict | None, pos: int | None) -> None:
    """On a page with no link to older messages: prove it really is the oldest one."""
    if cursor and pos is None:
        raise await ops.selectors.not_found(
            ops.page, "older_messages", detail="the last stored message is not on this page "
            "and no link to older messages matched: messages in between would be lost")
    if ops.site.element("conversation_start") is not None and cursor is None:
        if not await ops.selectors.probe(ops.page, "conversation_start"):
            raise await ops.selectors.not_found(
                ops.page, "conversation_start", detail="neither a link to older messages nor "
                "the start-of-conversation marker matched: older messages would be lost")


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
