"""Ordered fallback selectors per element (the site spec, conf/sites/<site>.yaml), and loud misses.

The first selector that matches wins. Which one matched is logged by its text (a warning when a
fallback was needed: the site changed) and counted in `replydesk_selector_match_total{site,element,
selector}` plus the in-process `MATCHES` counter (usable outside Ray).

Every element, required or optional, that matches nothing where it should is a *miss*: logged with
site, element, URL and the selectors tried, counted in `replydesk_selector_miss_total{site,element}`
and kept in the session's `Health`, which makes the session report `degraded` until the element
matches again. A miss that stops an action raises `SelectorNotFound`, which names the same and
the screenshot and HTML saved for whoever fixes the site file.
"""
from __future__ import annotations

import collections
import logging
import time
from pathlib import Path

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Locator, Page

from contracts.metrics import counter
from contracts.sitespec import SiteConf

log = logging.getLogger(__name__)

MATCHES: collections.Counter[tuple[str, str, str]] = collections.Counter()
MISSES: collections.Counter[tuple[str, str]] = collections.Counter()
SELECTOR_MATCHES = counter("replydesk_selector_match_total",
                           "Which fallback selector matched, per site and element",
                           ("site", "element", "selector"))
SELECTOR_MISSES = counter("replydesk_selector_miss_total",
                          "Elements that matched nothing where they should, per site and element",
                          ("site", "element"))


class SelectorNotFound(RuntimeError):
    """`element` could not be read on `url`: no selector matched, or what matched could not be
    proven (`detail`). `screenshot`/`html` are the saved artifacts."""

    def __init__(self, site: str, element: str, url: str, screenshot: str | None, html: str | None,
                 tried: tuple[str, ...] = (), detail: str = ""):
        what = detail or "no selector matched"
        super().__init__(f"site {site!r}, element {element!r} at {url}: {what} "
                         f"(selectors tried: {list(tried)}; screenshot: {screenshot}, html: {html})")
        self.site, self.element, self.url = site, element, url
        self.screenshot, self.html = screenshot, html
        self.tried, self.detail = tuple(tried), detail

    def __reduce__(self):  # crosses Ray process boundaries intact
        return (SelectorNotFound, (self.site, self.element, self.url, self.screenshot, self.html,
                                   self.tried, self.detail))


def record_match(site: str, element: str, selector: str, fallback: bool) -> None:
    """Count which selector matched (log + Ray metric, a no-op outside Ray)."""
    MATCHES[(site, element, selector)] += 1
    if fallback:
        log.warning("selector fallback used", extra={"site": site, "element": element, "selector": selector})
    SELECTOR_MATCHES.inc(tags={"site": site, "element": element, "selector": selector})


class Health:
    """The elements of one session that currently miss: `degraded` while any does. During a poll
    pass a match does not clear a miss at once (one healthy conversation would hide a broken
    one): at the end of the pass, the elements seen in it are exactly what it found."""

    def __init__(self) -> None:
        self.missing: dict[str, dict] = {}
        self._pass: dict[str, dict] | None = None
        self._checked: set[str] = set()

    def begin_pass(self) -> None:
        self._pass, self._checked = {}, set()

    def end_pass(self) -> None:
        if self._pass is None:
            return
        for element in self._checked - set(self._pass):
            self._clear(element)
        self._pass = None

    def miss(self, site: str, element: str, url: str, tried: list[str], detail: str = "") -> None:
        first = element not in self.missing
        entry = {"element": element, "url": url, "selectors": list(tried),
                 "detail": detail or "no selector matched", "at": time.time()}
        self.missing[element] = entry
        if self._pass is not None:
            self._pass[element] = entry
            self._checked.add(element)
        MISSES[(site, element)] += 1
        SELECTOR_MISSES.inc(tags={"site": site, "element": element})
        (log.error if first else log.warning)(
            "site element missing", extra={"site": site, "element": element, "url": url,
                                           "selectors": list(tried), "detail": detail})

    def ok(self, element: str) -> None:
        if self._pass is not None:
            self._checked.add(element)
        else:
            self._clear(element)

    def _clear(self, element: str) -> None:
        if self.missing.pop(element, None) is not None:
            log.info("site element matches again", extra={"element": element})

    @property
    def degraded(self) -> bool:
        return bool(self.missing)

    def report(self) -> list[dict]:
        return [dict(v) for v in self.missing.values()]


class Selectors:
    def __init__(self, site: SiteConf, artifacts_dir: Path, timeout_s: float, health: Health | None = None):
        self.site = site
        self.artifacts_dir = artifacts_dir
        self.timeout_s = timeout_s
        self.health = health or Health()

    def candidates(self, element: str) -> list[str]:
        return self.site.selectors(element)

    def root(self, page: Page, element: str):
        """Where `element` is looked up: the page, or the iframe its spec names (`frame`)."""
        el = self.site.element(element)
        return page.frame_locator(el.frame) if el is not None and el.frame else page

    async def frame(self, page: Page, element: str):
        """The Frame `element` is in (to run a script there); None while its iframe is absent."""
        el = self.site.element(element)
        if el is None or not el.frame:
            return page.main_frame
        handle = await page.locator(el.frame).first.element_handle(timeout=self.timeout_s * 1000)
        return await handle.content_frame() if handle is not None else None

    def matched(self, element: str, index: int) -> None:
        """A selector of `element` matched (found by the caller, e.g. inside page JS)."""
        record_match(self.site.name, element, self.candidates(element)[index], index > 0)
        self.health.ok(element)

    async def probe(self, page: Page, element: str) -> tuple[Locator, int] | None:
        """The first matching selector's locator and index, without waiting and without counting a
        miss: for elements whose absence is normal (a popup, the last page's older link)."""
        root = self.root(page, element)
        for i, sel in enumerate(self.candidates(element)):
            loc = root.locator(sel)
            if await loc.count():
                self.matched(element, i)
                return loc, i
        return None

    async def first(self, page: Page, element: str) -> tuple[Locator, int]:
        """Like `probe` but waits up to the timeout; a miss raises SelectorNotFound."""
        found = await self.probe(page, element)
        if found:
            return found
        try:
            await self.root(page, element).locator(", ".join(self.candidates(element))).first.wait_for(
                state="attached", timeout=self.timeout_s * 1000)
        except PlaywrightError:
            pass
        found = await self.probe(page, element)
        if found:
            return found
        raise await self.not_found(page, element)

    async def not_found(self, page: Page, element: str, detail: str = "",
                        tried: list[str] | None = None) -> SelectorNotFound:
        """Record the miss, save a screenshot and the HTML, and build the error."""
        tried = self.candidates(element) if tried is None else tried
        self.health.miss(self.site.name, element, page.url, tried, detail)
        shot, html = await self.save_artifacts(page, element)
        return SelectorNotFound(self.site.name, element, page.url, shot, html, tuple(tried), detail)

    async def save_artifacts(self, page: Page, what: str) -> tuple[str | None, str | None]:
        self.artifacts_dir.mkdir(parents=True, exist_ok=True)
        stem = self.artifacts_dir / f"{self.site.name}-{what}-{time.strftime('%Y%m%dT%H%M%S')}-{time.monotonic_ns() % 10**6}"
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
        return shot, html
