"""Getting a browser for one session, in either layout (config browser.layout):

- own_browser: the session launches its own Chromium (via its own Playwright driver).
- shared_browser: one Chromium per node (host.BrowserHost) and each session connects over CDP and
  opens its own context there; contexts never share cookies or storage.

The Playwright driver runs with TMPDIR set to a directory the session owns, so the profile and
scratch files Chromium leaves behind when a process is killed land there and are deleted by the
next session for the same account (or by `stop()`).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, Page, Playwright, async_playwright

from contracts.ids import stable_hash
from contracts.settings import Config

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


# Resolved at import: tempfile caches its answer on first use, and start_playwright() briefly
# points TMPDIR at a session's own directory.
_SCRATCH_ROOT = Path(tempfile.gettempdir()) / "replydesk-browser"


def scratch_root() -> Path:
    return _SCRATCH_ROOT


def session_dir(site: str, account_id: str) -> Path:
    """A fresh scratch directory for this process's session of the account.

    It is unique per process: a killed predecessor may still be tearing down and deleting its own
    directory while its successor starts. Leftovers of predecessors whose process is gone are wiped.
    """
    prefix = f"{site}-{stable_hash(site, account_id, length=12)}-"
    root = scratch_root()
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob(prefix + "*"):
        pid = old.name[len(prefix):]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    d = root / f"{prefix}{os.getpid()}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    return d


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


@dataclass
class BrowserSessionHandle:
    playwright: Playwright
    browser: Browser
    context: BrowserContext
    page: Page
    scratch: Path

    async def close(self) -> None:
        """Close page, context, browser (a CDP browser is only disconnected) and the driver."""
        try:
            for closer in (self.page.close, self.context.close, self.browser.close):
                try:
                    await closer()
                except Exception:  # already gone (crashed browser): keep closing the rest
                    pass
        finally:
            try:
                await self.playwright.stop()
            finally:
                shutil.rmtree(self.scratch, ignore_errors=True)


async def start_playwright(scratch: Path) -> Playwright:
    """Start a Playwright driver whose temp files (and its browsers') go under `scratch`."""
    old = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(scratch)  # copied into the driver's env synchronously on start
    try:
        return await async_playwright().start()
    finally:
        if old is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = old


async def open_session(config: Config, scratch: Path, storage_state: dict[str, Any] | None,
                       cdp_endpoint: str | None = None) -> BrowserSessionHandle:
    """Launch (or connect to) Chromium and open one context restored from `storage_state`."""
    pw = await start_playwright(scratch)
    try:
        if cdp_endpoint:
            browser = await pw.chromium.connect_over_cdp(cdp_endpoint)
        else:
            browser = await pw.chromium.launch(executable_path=config.settings.chromium_path,
                                               headless=config.settings.headless, args=CHROMIUM_FLAGS)
        context = await browser.new_context(storage_state=storage_state)
        context.set_default_timeout(config.app.browser.navigation_timeout_s * 1000)
        page = await context.new_page()
    except BaseException:
        await pw.stop()
        raise
    return BrowserSessionHandle(pw, browser, context, page, scratch)
