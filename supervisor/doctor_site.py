"""Where the doctor's pages come from (supervisor/doctor.py has the checks and the CLI): a visit of
the site (the start page, the login page, the login itself: a challenge is finished by a person
in the browser `--headed` shows, as `./run login` has them do, or a login made elsewhere comes
with `--state`; the inbox, one conversation and its older messages), or saved pages (`--html`);
each page checked, given suggestions and saved through `Visit.page`."""
from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from urllib.parse import urljoin

from playwright.async_api import Error as PlaywrightError

from actors.browser.adapter import NeedsLogin
from actors.browser.selectors import SelectorNotFound
from supervisor.doctor_checks import PAGES, Row, Visit, needed


async def visit_site(visit: Visit, handle, config, account, conversation: str | None,
                     headed: bool, login_timeout_s: float, logged_in: bool = False) -> None:
    from actors.browser import paging
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
    if spec.element("login_open") is not None:   # a client-rendered start page: let it render
        await _shows(page, spec, ("login_open", "login_username", "logged_in"))
    await visit.page(page, "start", check=False)
    await adapter._open(adapter.url("login"), expect_login=True)
    if spec.element("login_open") is not None and await _shows(page, spec, ("login_open",)) \
            and not await _shows(page, spec, ("login_username",), 0):
        opener = await selectors.probe(page, "login_open")
        await opener[0].first.click()
        await _shows(page, spec, ("login_username",))
    await visit.page(page, "login")
    try:
        if logged_in:   # a stored login (--state): the inbox visit below logs in only if it expired
            await adapter.visit(adapter.url("inbox"))
        else:
            await adapter.login()
    except NeedsLogin as exc:
        if not headed:
            visit.rows.append(Row("login", "login", True, problem=f"{exc}; run the doctor again with "
                                  "--headed on a machine with a screen to finish it there, or with "
                                  "--state FILE of a login made elsewhere"))
            return
        if not await _person_logs_in(adapter, login_timeout_s):
            visit.rows.append(Row("login", "login", True, problem=f"the login was not finished "
                                  f"within {login_timeout_s:g} s"))
            return
    except Exception as exc:  # noqa: BLE001 - still report what was checked
        visit.rows.append(Row("login", "login", True, problem=f"login failed: {exc}"))
        return
    await _open(adapter, adapter.url("inbox"), "inbox_ready")
    await _preview_hints(visit, page)
    rows = await visit.page(page, "inbox")
    if conversation is None:
        conversation = await _first_conversation(adapter, rows)
    if conversation is None:
        visit.rows += [Row(e, "conversation", needed(spec, e),
                           problem="no conversation to open (name one with --conversation)")
                       for e in PAGES["conversation"] if spec.element(e) is not None]
        return
    await _open(adapter, adapter.url("conversation", conversation_id=conversation), "conversation_ready")
    rows = await visit.page(page, "conversation")
    if spec.older_by == "scroll":
        try:
            if await paging.scroll_older(adapter) or await paging.at_start(adapter):
                await visit.page(page, "older", check=False)
        except (SelectorNotFound, PlaywrightError):  # the misses are in the rows already
            pass
        return
    older = next((r.selector or (r.suggestions[0].selector if r.suggestions else None)
                  for r in rows if r.element == "older_messages"), None)
    if older and await page.locator(older).count():
        href = await page.locator(older).first.get_attribute("href")
        if href and not href.startswith("#"):
            await page.goto(urljoin(page.url, href), wait_until="domcontentloaded")
        else:
            await page.locator(older).first.click()
        await visit.page(page, "older", check=False)


async def _preview_hints(visit: Visit, page) -> None:
    """The inbox previews that are the contacts' last texts (not "Sent: ..." / "Seen"): texts
    the suggestions can find messages by, and that a masked capture hides everywhere."""
    from actors.browser.inbox import is_status
    el = visit.spec.element("inbox_preview")
    for sel in (el.selectors if el else []):
        try:
            texts = await page.locator(sel).all_inner_texts()
        except PlaywrightError:
            continue
        if texts:
            texts = [t for t in texts if t.strip() and not is_status(visit.spec, {"preview": t})]
            visit.texts += texts
            visit.masker.known(texts)
            return


async def _shows(page, spec, elements: tuple[str, ...], timeout_s: float | None = None) -> bool:
    """Wait (up to the spec's ready_timeout_s) until one of `elements` is on the page."""
    sels = [s for e in elements for s in spec.selectors(e)]
    if not sels:
        return False
    try:
        await page.locator(", ".join(sels)).first.wait_for(
            state="visible", timeout=(spec.ready_timeout_s if timeout_s is None else timeout_s) * 1000 or 1)
        return True
    except PlaywrightError:
        return False


async def _open(adapter, url: str, ready: str) -> None:
    """Go to a page as the session does (logged in again if needed, rendered, popups closed); a
    page that does not render is still checked and saved: its ready element is in the rows."""
    try:
        await adapter.visit(url, ready=ready)
    except SelectorNotFound:
        await adapter.close_popups()


async def _first_conversation(adapter, rows: list[Row]) -> str | None:
    """The first conversation of the inbox: by the spec, else by the first link to a route."""
    if not any(r.element == "inbox_item" and r.problem for r in rows):
        try:
            items = await adapter.inbox(reload=False)
            if items:
                return items[0].conversation_id
        except (SelectorNotFound, PlaywrightError):  # a miss is already in the rows: links below
            pass
    hrefs = await adapter.page.eval_on_selector_all("a[href]", "els => els.map(a => a.href)")
    return next((c for h in hrefs if (c := adapter.routes.conversation_id(h, adapter.page.url))), None)


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


async def saved_pages(visit: Visit, page, folder: Path, manifest: dict | None) -> None:
    """Check captured pages (scripts off: a single-page app's shell would render itself again)."""
    listed = {p["name"]: (folder / p["files"]["html"], p.get("checked", True))
              for p in (manifest or {}).get("pages", [])}
    for name in ("start", "login", "inbox", "conversation", "older"):
        f, check = listed.get(name, (folder / f"{name}.html", name in PAGES))
        if not f.is_file():
            if name in PAGES:
                visit.rows += [Row(e, name, needed(visit.spec, e), problem=f"{f} not found")
                               for e in PAGES[name] if visit.spec.element(e) is not None]
            continue
        await page.set_content(f.read_text(encoding="utf-8"))
        await visit.page(page, name, check=check, url=f.resolve().as_uri())
