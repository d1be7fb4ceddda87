"""Older messages by scrolling (site spec `older_by: scroll`, `scroll_container`): the container is
scrolled to its top, which makes an infinite-scroll conversation load the previous messages above
the ones shown; then the page is watched until more messages are there, `conversation_start`
shows, or `ready_timeout_s` passes with nothing more (the oldest reachable). The adapter reads
the whole list again after each scroll, up to its page bound (max_pages / catch_up_pages).
"""
from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from playwright.async_api import Error as PlaywrightError

if TYPE_CHECKING:
    from actors.browser.adapter import SiteAdapter

_TOP_JS = "el => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }"


async def at_start(adapter: "SiteAdapter") -> bool:
    """The start-of-conversation marker shows: nothing older to load."""
    if adapter.site.element("conversation_start") is None:
        return False
    return bool(await adapter.selectors.probe(adapter.page, "conversation_start"))


async def _count(adapter: "SiteAdapter") -> int:
    found = await adapter.selectors.probe(adapter.page, "message")
    return await found[0].count() if found else 0


async def scroll_older(adapter: "SiteAdapter") -> bool:
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
