"""Ordered fallback selectors per element (conf/sites/<site>.yaml).

The first selector that matches wins; which index matched is logged (a warning when a fallback
was needed, since that means the site changed) and counted in the Ray metric
`replydesk_selector_match_total{site,element,index}` plus the in-process `MATCHES` counter (usable
outside Ray). When none matches, `SelectorNotFound` names the element, site and URL and a
screenshot plus the page HTML are saved for whoever fixes the site file.
"""
from __future__ import annotations

import collections
import logging
import time
from pathlib import Path

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Locator, Page

from contracts.metrics import counter
from contracts.settings import SiteConf

log = logging.getLogger(__name__)

MATCHES: collections.Counter[tuple[str, str, int]] = collections.Counter()
SELECTOR_MATCHES = counter("replydesk_selector_match_total",
                           "Which fallback selector matched, per site and element",
                           ("site", "element", "index"))


class SelectorNotFound(RuntimeError):
    """No selector of `element` matched on `url`; `screenshot`/`html` are the saved artifacts."""

    def __init__(self, site: str, element: str, url: str, screenshot: str | None, html: str | None):
        super().__init__(f"no selector for element {element!r} matched on site {site!r} at {url} "
                         f"(screenshot: {screenshot}, html: {html})")
        self.site, self.element, self.url = site, element, url
        self.screenshot, self.html = screenshot, html

    def __reduce__(self):  # crosses Ray process boundaries intact
        return (SelectorNotFound, (self.site, self.element, self.url, self.screenshot, self.html))


def record_match(site: str, element: str, index: int) -> None:
    """Count which fallback matched (log + Ray metric, a no-op outside Ray)."""
    MATCHES[(site, element, index)] += 1
    if index > 0:
        log.warning("selector fallback used", extra={"site": site, "element": element, "index": index})
    else:
        log.debug("selector matched", extra={"site": site, "element": element, "index": index})
    SELECTOR_MATCHES.inc(tags={"site": site, "element": element, "index": str(index)})


class Selectors:
    def __init__(self, site: SiteConf, artifacts_dir: Path, timeout_s: float):
        self.site = site
        self.artifacts_dir = artifacts_dir
        self.timeout_s = timeout_s

    def candidates(self, element: str) -> list[str]:
        return self.site.selectors[element]

    async def optional(self, page: Page, element: str) -> tuple[Locator, int] | None:
        """The first matching selector's locator and index, without waiting; None if none match."""
        for i, sel in enumerate(self.candidates(element)):
            loc = page.locator(sel)
            if await loc.count():
                record_match(self.site.name, element, i)
                return loc, i
        return None

    async def first(self, page: Page, element: str) -> tuple[Locator, int]:
        """Like `optional` but waits up to the timeout, then raises SelectorNotFound."""
        found = await self.optional(page, element)
        if found:
            return found
        try:
            await page.wait_for_selector(", ".join(self.candidates(element)), state="attached",
                                         timeout=self.timeout_s * 1000)
        except PlaywrightError:
            pass
        found = await self.optional(page, element)
        if found:
            return found
        raise await self.not_found(page, element)

    async def not_found(self, page: Page, element: str) -> SelectorNotFound:
        """Save a screenshot and the HTML, and build the error naming element, site and URL."""
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        stem = self.artifacts_dir / f"{self.site.name}-{element}-{time.strftime('%Y%m%dT%H%M%S')}-{time.monotonic_ns() % 10**6}"
        shot, html = f"{stem}.png", f"{stem}.html"
        try:
            await page.screenshot(path=shot, full_page=True)
        except PlaywrightError as exc:
            log.warning("screenshot failed", extra={"error": str(exc)})
            shot = None
        try:
            Path(html).write_text(await page.content(), encoding="utf-8")
        except PlaywrightError as exc:
            log.warning("saving HTML failed", extra={"error": str(exc)})
            html = None
        err = SelectorNotFound(self.site.name, element, page.url, shot, html)
        log.error(str(err), extra={"site": self.site.name, "element": element, "url": page.url})
        return err
