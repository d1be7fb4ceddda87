"""Moving inside a single-page app by clicking, as a person does (site spec `navigate`):
a conversation is opened by clicking its inbox item, the inbox by clicking `nav_inbox`. With
`click` a click that does not get there is a loud miss; with `both` the adapter then goes to the
page's URL instead (by_click returns False). The first visit, before any page of the site is
open, is by URL in every mode (there is nothing to click yet).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from playwright.async_api import Error as PlaywrightError

from actors.browser import waiting
from actors.browser.inbox import INBOX_JS, js_args

if TYPE_CHECKING:
    from actors.browser.pageops import PageOps


async def _item_of(adapter: "PageOps", conversation_id: str):
    """The inbox item that names the conversation (its link, or the item itself), or None."""
    found = await adapter.selectors.probe(adapter.page, "inbox_item")
    if not found:
        return None
    raws = await found[0].evaluate_all(INBOX_JS, js_args(adapter.site))
    for i, raw in enumerate(raws):
        if not raw:
            continue
        cid = (adapter.routes.conversation_id(raw["ref"], adapter.page.url) if raw["href"]
               else raw["ref"])
        if cid == conversation_id:
            item = found[0].nth(i)
            link = item.locator("a[href]")
            return link.first if raw["href"] and await link.count() else item
    return None


async def by_click(adapter: "PageOps", where: str, conversation_id: str | None = None) -> bool:
    """Click through to the inbox (`where="inbox"`) or a conversation; True when the page got
    there and rendered. False (mode `both`: the caller goes by URL) or a loud miss (mode `click`)."""
    mode = getattr(adapter.site.navigate, where)
    if where == "inbox" and not adapter.routes.on_site(adapter.page.url):
        return False    # no page of the site open yet: the first visit is by its URL
    ready = "inbox_ready" if where == "inbox" else "conversation_ready"
    target = (adapter.url("inbox") if where == "inbox"
              else adapter.url("conversation", conversation_id=conversation_id))
    try:
        if where == "conversation":
            if not adapter.on_inbox():
                await adapter.open_inbox()
            element, clickable = "inbox_item", await _item_of(adapter, conversation_id)
        else:
            element = "nav_inbox"
            found = await adapter.selectors.probe(adapter.page, "nav_inbox")
            clickable = found[0].first if found else None
        if clickable is None:
            if mode == "both":
                return False
            raise await adapter.selectors.not_found(
                adapter.page, element, detail=f"nothing to click to reach {target} "
                f"(navigate.{where}: click)")
        await adapter.close_popups()
        await waiting.mark_stale(adapter.page, adapter.selectors)
        await adapter.navigations.acquire()
        async with adapter.slots.hold():
            await clickable.click(timeout=adapter.config.app.browser.navigation_timeout_s * 1000)
        if adapter.site.element(ready) is not None:
            await adapter.rendered(ready)
        if not adapter.routes.at(adapter.page.url, target):
            if mode == "both":
                return False
            raise await adapter.selectors.not_found(
                adapter.page, element, detail=f"the click led to {adapter.page.url}, not {target}")
        return True
    except PlaywrightError:
        if mode == "both":
            return False
        raise
