"""Getting a browser for one session, in either layout (config browser.layout):

- own_browser: the session launches its own Chromium (via its own Playwright driver).
- hosted: one process per node (hosted.SessionHost) runs every session there, on one Playwright
  driver and one Chromium it launched; each session is a context of its own (`open_context`).

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
    playwright: Playwright | None   # None: the browser and its driver are a host's (`open_context`)
    browser: Browser
    context: BrowserContext
    page: Page
    scratch: Path | None

    async def close(self) -> None:
        """Close page and context, and the browser and the driver when they are this
        session's own."""
        await _close_quietly(self.page.close, self.context.close)
        if self.playwright is not None:
            await close_browser(self.browser, self.playwright, self.scratch)


async def _close_quietly(*closers) -> None:
    for closer in closers:
        try:
            await closer()
        except Exception:  # already gone (crashed browser): keep closing the rest
            pass


async def close_browser(browser: Browser | None, pw: Playwright | None, scratch: Path | None) -> None:
    """Close a browser, stop its driver and delete its scratch directory (whatever is given)."""
    try:
        await _close_quietly(*((browser.close,) if browser else ()))
    finally:
        try:
            if pw is not None:
                await pw.stop()
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)


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
                       headless: bool | None = None) -> BrowserSessionHandle:
    """Launch Chromium and open one context restored from `storage_state` (`headless`: the
    config's setting unless given; the doctor shows a browser for a person to finish a login)."""
    pw = await start_playwright(scratch)
    try:
        browser = await launch_browser(pw, config, headless)
        handle = await open_context(config, browser, storage_state)
    except BaseException:
        await pw.stop()
        raise
    handle.playwright, handle.scratch = pw, scratch
    return handle


async def launch_browser(pw: Playwright, config: Config, headless: bool | None = None) -> Browser:
    return await pw.chromium.launch(executable_path=config.settings.chromium_path,
                                    headless=config.settings.headless if headless is None else headless,
                                    args=CHROMIUM_FLAGS)


async def open_context(config: Config, browser: Browser,
                       storage_state: dict[str, Any] | None) -> BrowserSessionHandle:
    """One context (and its page) on a browser the caller keeps: closing the handle closes only
    them."""
    context = await browser.new_context(storage_state=storage_state)
    try:
        context.set_default_timeout(config.app.browser.navigation_timeout_s * 1000)
        page = await context.new_page()
    except BaseException:
        await context.close()
        raise
    return BrowserSessionHandle(None, browser, context, page, None)
