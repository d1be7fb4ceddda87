"""Waiting for a client-rendered page: a page is read only once its `ready` element (site spec
`inbox_ready` / `conversation_ready`) shows, rendered AFTER the navigation that led there.

A single-page app changes its route without a page load (a hash change) and renders the new
view a moment later: right after the navigation the old view is still in the DOM. So before
every navigation the ready elements on the page are marked as stale, and only an unmarked one
counts (a re-render makes new elements; a full page load starts a new document). A page that
does not render in `ready_timeout_s` is a loud miss of the ready element (selectors tried, URL,
screenshot and HTML), never a read of a half-rendered page.
"""
from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

from actors.browser.selectors import Selectors

READY = ("inbox_ready", "conversation_ready")

_MARK_JS = """(sels) => { for (const s of sels) document.querySelectorAll(s).forEach(e => { e.__replydeskStale = true; }); }"""
_FRESH_JS = """([sels, fresh]) => sels.findIndex(s => Array.from(document.querySelectorAll(s)).some(e => !fresh || !e.__replydeskStale))"""


async def mark_stale(page: Page, selectors: Selectors) -> None:
    """Mark the ready elements now on the page: they belong to the view being left."""
    for element in READY:
        if selectors.site.element(element) is None:
            continue
        try:
            frame = await selectors.frame(page, element)
            if frame is not None:
                await frame.evaluate(_MARK_JS, selectors.candidates(element))
        except PlaywrightError:   # the page is navigating away already: nothing to mark
            pass


async def wait_ready(page: Page, selectors: Selectors, element: str, timeout_s: float,
                     check: Callable[[], Awaitable[None]] | None = None, fresh: bool = True) -> None:
    """Wait until `element` (a ready marker) is rendered; `check` runs on every round and may
    raise (a logged-out page is not going to render the inbox). No-op when the spec has none.
    `fresh=False`: any ready element counts (a page read as it is, no navigation before)."""
    if selectors.site.element(element) is None:
        return
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            frame = await selectors.frame(page, element)
            index = await frame.evaluate(_FRESH_JS, [selectors.candidates(element), fresh]) \
                if frame else -1
        except PlaywrightError:   # navigating (a redirect, a client-side route change): again
            index = -1
        if index >= 0:
            selectors.matched(element, index)
            return
        if check is not None:
            await check()
        if time.monotonic() >= deadline:
            raise await selectors.not_found(
                page, element, detail=f"the page did not render it within {timeout_s:g} s "
                f"(ready_timeout_s): nothing on it is read")
        await asyncio.sleep(0.1)
