"""Submitting a reply as the site spec says (`send_by`): clicking `send_button`, pressing Enter in
the reply box, or `either` (the button when it is there and enabled, else Enter).

The reply box is filled (Playwright's fill fires the `input` event a page listens to before it
enables its button). What counts as sent is the adapter's to decide (adapter._confirm): the reply
read after the anchor, not marked `message_pending`; the exactly-once rules are the same for every
mode, since the anchor is persisted before any of them submits.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from playwright.async_api import Error as PlaywrightError

if TYPE_CHECKING:
    from actors.browser.pageops import PageOps


async def _button_ready(adapter: "PageOps") -> bool:
    if adapter.site.element("send_button") is None:
        return False
    found = await adapter.selectors.probe(adapter.page, "send_button")
    if not found:
        return False
    try:
        return await found[0].first.is_visible() and await found[0].first.is_enabled()
    except PlaywrightError:
        return False


async def submit_reply(adapter: "PageOps", text: str) -> str:
    """Type `text` into the reply box and submit it; returns how ("click" or "enter")."""
    await adapter.close_popups()
    box, _ = await adapter.selectors.first(adapter.page, "reply_box")
    await box.first.fill(text)
    mode = adapter.site.send_by
    if mode == "either":
        mode = "click" if await _button_ready(adapter) else "enter"
    if mode == "click":
        await adapter._click("send_button", page_load=False)
        return "click"
    await adapter.navigations.acquire()
    async with adapter.slots.hold():
        await box.first.press("Enter")
    return "enter"
