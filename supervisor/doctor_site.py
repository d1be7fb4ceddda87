"""The doctor's visit of a real site (supervisor/doctor.py has the checks and the CLI): the start
page, the login page, the login itself (a challenge is finished by a person in the browser
`--headed` shows, as `./run login` has them do), the inbox, one conversation and its older
messages, each checked, given suggestions and saved through `Visit.page`."""
from __future__ import annotations

import asyncio
import sys
import time
from urllib.parse import urljoin

from playwright.async_api import Error as PlaywrightError

from actors.browser.adapter import NeedsLogin
from supervisor.doctor import PAGES, Row, Visit
from supervisor.suggest_page import route_pattern

_FIRST_ROUTE_JS = """
(route) => {
  const re = new RegExp(route + '$');
  for (const a of document.querySelectorAll('a[href]')) {
    try { const u = new URL(a.getAttribute('href'), location.href);
          if (re.test(u.pathname + u.search + u.hash)) return u.href; } catch (e) {}
  }
  return null;
}
"""


async def visit_site(visit: Visit, handle, config, account, conversation: str | None,
                     headed: bool, login_timeout_s: float) -> None:
    from actors.browser.adapter import SiteAdapter
    from actors.browser.launcher import scratch_root
    from actors.browser.limits import NodeSlots, SlidingWindowLimiter
    from actors.browser.selectors import Selectors

    spec, page, browser = visit.spec, handle.page, config.app.browser
    selectors = Selectors(spec, visit.out / "misses", browser.selector_timeout_s)
    adapter = SiteAdapter(page, config, account, config.credentials(account), selectors,
                          SlidingWindowLimiter(account.navigations_per_minute),
                          NodeSlots(browser.max_concurrent_navigations, scratch_root() / "nav-slots"))
    await page.goto(adapter.base_url.rstrip("/") + "/", wait_until="domcontentloaded")
    await visit.page(page, "start", check=False)
    await adapter._open(adapter.url("login"), expect_login=True)
    await visit.page(page, "login")
    try:
        await adapter.login()
    except NeedsLogin as exc:
        if not headed:
            visit.rows.append(Row("login", "login", True, problem=f"{exc}; run the doctor again with "
                                  "--headed on a machine with a screen to finish it there"))
            return
        if not await _person_logs_in(adapter, login_timeout_s):
            visit.rows.append(Row("login", "login", True, problem=f"the login was not finished "
                                  f"within {login_timeout_s:g} s"))
            return
    except Exception as exc:  # still report what was checked
        visit.rows.append(Row("login", "login", True, problem=f"login failed: {exc}"))
        return
    await page.goto(adapter.url("inbox"), wait_until="domcontentloaded")
    await adapter.close_popups()
    rows = await visit.page(page, "inbox")
    if conversation is None:
        conversation = await _first_conversation(adapter, rows)
    if conversation is None:
        visit.rows += [Row(e, "conversation", bool(spec.element(e).required),
                           problem="no conversation to open (name one with --conversation)")
                       for e in PAGES["conversation"] if spec.element(e) is not None]
        return
    await page.goto(adapter.url("conversation", conversation_id=conversation), wait_until="domcontentloaded")
    await adapter.close_popups()
    rows = await visit.page(page, "conversation")
    older = next((r.selector or (r.suggestions[0].selector if r.suggestions else None)
                  for r in rows if r.element == "older_messages"), None)
    if older and await page.locator(older).count():
        href = await page.locator(older).first.get_attribute("href")
        if href and not href.startswith("#"):
            await page.goto(urljoin(page.url, href), wait_until="domcontentloaded")
        else:
            await page.locator(older).first.click()
        await visit.page(page, "older", check=False)


async def _first_conversation(adapter, rows: list[Row]) -> str | None:
    """The first conversation of the inbox: by the spec, else by the first link to a route."""
    if not any(r.element == "inbox_item" and r.problem for r in rows):
        try:
            items = await adapter.inbox()
            return items[0].conversation_id if items else None
        except Exception:  # noqa: BLE001 - a miss is already in the rows; try the links below
            pass
    href = await adapter.page.evaluate(_FIRST_ROUTE_JS, route_pattern(adapter.site.paths["conversation"]))
    if not href:
        return None
    from urllib.parse import urlsplit
    parts = urlsplit(href)
    m = adapter._conv_re.match(parts.path)
    return m.group(1) if m else None


async def _person_logs_in(adapter, timeout_s: float) -> bool:
    """A person finishes the login in the visible browser; True once it is done."""
    print(f"doctor: the site asks for a login challenge: finish it in the browser window "
          f"(waiting up to {timeout_s:g} s)", file=sys.stderr)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if adapter.page.is_closed():
            return False
        try:
            if not await adapter.logged_out() and not await adapter.selectors.probe(adapter.page, "login_challenge"):
                return True
        except PlaywrightError:  # the page is navigating
            pass
        await asyncio.sleep(0.5)
    return False
