"""Logging in as steps (site spec `login` and the elements `login_open`, `logged_in`,
`login_error`), for sites whose login is a modal on a start page and whose success is shown by a
marker or a URL rather than by the form going away.

One attempt: open the login route, stop at a challenge (a person's), click `login_open` when the
form is not showing, type the fields (key by key at `type_delay_ms`, or filled at once), submit
(`click`, `enter`, `either`), then watch the page for up to `settle_s`:
- a challenge -> NeedsLogin (handed to a person, as before);
- `login_error` visible -> LoginFailed (permanent: the credentials are wrong);
- `logged_in` marker or the URL at `success_url` -> logged in;
- neither (the site sent the browser back to the start page without a reason, as real logins
  were seen to do) -> tried again after `backoff_s` (doubled each time; the sleep is injectable)
  up to `attempts` times, then NeedsLogin: a person looks. Never hammered.
A spec with none of these keys logs in as before (adapter.login: the form must go away).
"""
from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Awaitable, Callable

from playwright.async_api import Error as PlaywrightError

from actors.browser.errors import LoginFailed, NeedsLogin
from contracts.ids import account_hash

if TYPE_CHECKING:
    from actors.browser.pageops import PageOps

STEP_ELEMENTS = ("login_open", "logged_in", "login_error")


def uses_steps(site) -> bool:
    return bool(site.login.success_url) or any(site.element(e) is not None for e in STEP_ELEMENTS)


async def type_into(locator, text: str, delay_ms: int) -> None:
    """Fill a field, or type it key by key at a human pace."""
    if not delay_ms:
        await locator.fill(text)
        return
    await locator.fill("")
    await locator.press_sequentially(text, delay=delay_ms)


async def _visible(adapter: "PageOps", element: str) -> bool:
    if adapter.site.element(element) is None:
        return False
    found = await adapter.selectors.probe(adapter.page, element)
    if not found:
        return False
    try:
        return await found[0].first.is_visible()
    except PlaywrightError:
        return False


async def logged_in(adapter: "PageOps") -> bool:
    """The page proves a logged-in user (a marker, or the URL at `success_url`)."""
    success = adapter.site.login.success_url
    if success and adapter.routes.starts(adapter.page.url, adapter.routes.absolute(success)):
        return True
    if adapter.site.element("logged_in") is not None:
        return bool(await adapter.selectors.probe(adapter.page, "logged_in"))
    return False


async def _attempt(adapter: "PageOps") -> str:
    """One login attempt: "ok", or "neither" (no success, no error). Raises LoginFailed or
    NeedsLogin."""
    page, steps = adapter.page, adapter.site.login
    await adapter._open(adapter.url("login"), expect_login=True)
    await adapter.check_challenge()
    if await logged_in(adapter):
        return "ok"
    if adapter.site.element("login_open") is not None and not await _visible(adapter, "login_username"):
        await adapter._click("login_open", page_load=False)
    user, _ = await adapter.selectors.first(page, "login_username")
    await type_into(user.first, adapter.credentials.username, steps.type_delay_ms)
    pw, _ = await adapter.selectors.first(page, "login_password")
    await type_into(pw.first, adapter.credentials.password.get_secret_value(), steps.type_delay_ms)
    loads: list[str] = []

    def loaded(frame) -> None:
        if frame == page.main_frame:
            loads.append(frame.url)
    page.on("framenavigated", loaded)
    try:
        return await _submit_and_watch(adapter, pw, loads)
    finally:
        page.remove_listener("framenavigated", loaded)


async def _submit_and_watch(adapter: "PageOps", pw, loads: list[str]) -> str:
    page, steps = adapter.page, adapter.site.login
    submit = steps.submit
    if submit == "either":
        found = await adapter.selectors.probe(page, "login_submit") \
            if adapter.site.element("login_submit") is not None else None
        submit = "click" if found and await found[0].first.is_enabled() else "enter"
    if submit == "click":
        await adapter._click("login_submit", page_load=False)   # paced there
    else:
        await adapter.navigations.acquire()
        await pw.first.press("Enter")
    deadline = time.monotonic() + steps.settle_s
    while True:
        try:
            await adapter.check_challenge()
            if await _visible(adapter, "login_error"):
                raise LoginFailed(f"site {adapter.site.name!r} rejected the login of account "
                                  f"{account_hash(adapter.account.id)} (its login_error showed; "
                                  "check its credentials)")
            if await logged_in(adapter):
                return "ok"
            # sent away and back to the start page, the form closed, no error: a bounce
            if loads and await adapter.logged_out() and not await _visible(adapter, "login_username"):
                return "neither"
        except PlaywrightError:   # the page is navigating (to the app host): look again
            pass
        if time.monotonic() >= deadline:
            return "neither"
        await asyncio.sleep(0.1)


async def login_steps(adapter: "PageOps", sleep: Callable[[float], Awaitable[None]]) -> None:
    steps = adapter.site.login
    for attempt in range(steps.attempts):
        if attempt:
            await sleep(steps.backoff_s * 2 ** (attempt - 1))
        if await _attempt(adapter) == "ok":
            return
        adapter.login_bounces += 1
    shot, html = await adapter.selectors.save_artifacts(adapter.page, "login-bounced")
    where = adapter.page.url.split("?", 1)[0]
    raise NeedsLogin(
        f"site {adapter.site.name!r}: {steps.attempts} login attempts of account "
        f"{account_hash(adapter.account.id)} ended neither logged in (logged_in / "
        f"login.success_url) nor with an error (login_error), last at {where}: not trying again; "
        f"a person must log in (./run login {adapter.account.id}); screenshot: {shot}, html: {html}",
        adapter.site.name, where, shot, html)
