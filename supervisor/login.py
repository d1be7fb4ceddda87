"""`python -m supervisor login ACCOUNT` (also `./run login ACCOUNT`): a person completes a login
the site guards with a challenge (captcha, 2FA, device check), and the account's session resumes
by itself from its cursors, with no other actor restarted.

- `--import state.json`: a Playwright storage-state file (what `playwright codegen
  --save-storage=state.json URL` writes on a machine with a screen) is stored as the account's
  login state.
- without it: a visible Chromium opens the site's login page (a display is needed: DISPLAY), the
  username and password are filled in, and the person completes the rest; once the inbox shows,
  the login state is stored. replydesk never solves the challenge itself.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from contracts.settings import Config


class LoginError(Exception):
    """What the person must fix, in one line."""


def validate_state(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get("cookies"), list) \
            or not isinstance(data.get("origins", []), list):
        raise LoginError(f"{where}: not a Playwright storage state (expected {{\"cookies\": [...], "
                         "\"origins\": [...]}}, as `playwright codegen --save-storage` writes)")
    for c in data["cookies"]:
        if not isinstance(c, dict) or not {"name", "value", "domain", "path"} <= set(c):
            raise LoginError(f"{where}: a cookie lacks name, value, domain or path")
    return {"cookies": data["cookies"], "origins": data.get("origins", [])}


def import_state(config: Config, account_id: str, path: Path) -> int:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LoginError(f"{path}: cannot be read as JSON ({exc})") from None
    state = validate_state(data, str(path))
    from actors.store import Store
    Store.from_config(config).accounts.save_storage_state(account_id, state)
    return len(state["cookies"])


async def headed_login(config: Config, account_id: str, timeout_s: float) -> int:
    """Open a visible browser for a person; store the state once the inbox shows."""
    if not os.environ.get("DISPLAY"):
        raise LoginError("no display (DISPLAY is not set): log in on a machine with a screen and "
                         f"use `./run login {account_id} --import state.json`")
    from playwright.async_api import async_playwright

    from actors.browser.launcher import CHROMIUM_FLAGS
    from actors.browser.routes import Routes
    from actors.store import Store
    account = config.account(account_id)
    site = config.site(account.site)
    routes = Routes(site, config.site_url(account.site), config.host_urls(account.site))
    cred = config.credentials(account)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=config.settings.chromium_path,
                                           headless=False, args=CHROMIUM_FLAGS)
        try:
            context = await browser.new_context()
            page = await context.new_page()
            await page.goto(routes.url("login"), wait_until="domcontentloaded")
            filled = 0
            for element, value in (("login_username", cred.username),
                                   ("login_password", cred.password.get_secret_value())):
                for sel in site.selectors(element):
                    if await page.locator(sel).count():
                        await page.locator(sel).first.fill(value)
                        filled += 1
                        break
            if filled == 2:  # the form is filled and sent; the person completes what follows
                for sel in site.selectors("login_submit"):
                    if await page.locator(sel).count():
                        await page.locator(sel).first.click()
                        break
            print(f"login: complete the login in the browser window (waiting up to {timeout_s:g} s)",
                  file=sys.stderr)
            deadline = time.monotonic() + timeout_s
            inbox = routes.url("inbox")
            success = routes.absolute(site.login.success_url) if site.login.success_url else None
            while time.monotonic() < deadline:
                if page.is_closed():
                    raise LoginError("the browser window was closed before the login completed")
                # the inbox shows, or the spec's sign of a logged-in user (a single-page app)
                there = routes.at(page.url, inbox) or (success and routes.starts(page.url, success)) \
                    or await _any(page, site.selectors("logged_in"))
                if there and not await _any(page, site.selectors("logged_out")) \
                        and not await _any(page, site.selectors("login_challenge")):
                    state = await context.storage_state()
                    Store.from_config(config).accounts.save_storage_state(account_id, state)
                    return len(state["cookies"])
                await asyncio.sleep(0.5)
            raise LoginError(f"the login did not complete within {timeout_s:g} s: nothing stored")
        finally:
            await browser.close()


async def _any(page, selectors: list[str]) -> bool:
    for sel in selectors:
        if await page.locator(sel).count():
            return True
    return False


def main(config: Config, argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m supervisor login", description=__doc__.splitlines()[0])
    p.add_argument("account", help="the account id (conf/replydesk.yaml)")
    p.add_argument("--import", dest="import_file", type=Path, default=None,
                   help="a Playwright storage-state JSON file to store instead of logging in here")
    p.add_argument("--timeout", type=float, default=600, help="seconds to wait for the person")
    args = p.parse_args(argv)
    if args.account not in {a.id for a in config.app.accounts}:
        print(f"login: no account {args.account!r} in the config "
              f"(accounts: {sorted(a.id for a in config.app.accounts)})", file=sys.stderr)
        return 2
    try:
        if args.import_file is not None:
            n = import_state(config, args.account, args.import_file)
        else:
            n = asyncio.run(headed_login(config, args.account, args.timeout))
    except LoginError as exc:
        print(f"login: {exc}", file=sys.stderr)
        return 1
    print(f"login: stored the login state of {args.account} ({n} cookies); its session resumes "
          "on its next pass")
    return 0
