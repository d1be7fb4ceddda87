"""`python -m supervisor doctor SITE` (also `./run doctor SITE`): check EVERY element of a site
spec at once, on the pages the adapter reads, before a spec edit is reloaded.

It logs in with one of the site's configured accounts (a fresh browser context: the stored
session is not touched), visits the login page, the inbox and one conversation, and prints per
element: required or optional, the selector that matched (or none), how many elements matched,
and sample values (id, sender, parsed time, direction, text excerpt). With `--html DIR` it reads
saved pages instead (`login.html`, `inbox.html`, `conversation.html`, e.g. the HTML a miss saved),
with no site and no login. A screenshot and the HTML of every page are saved. Exit status: 0 when
every required element matches and every message on the conversation page is proven, 1 otherwise.
"""
from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from actors.browser.extract import FIELDS, Reader, identify
from contracts.settings import Config, resolve
from contracts.sitespec import ELEMENTS, SiteConf

PAGES = {  # which page each element is looked for on
    "login": ("login_open", "login_username", "login_password", "login_submit", "logged_out",
              "login_challenge", "login_error"),
    "inbox": ("inbox_ready", "logged_in", "nav_inbox", "inbox_item", "inbox_preview", "inbox_status",
              "inbox_typing", "inbox_unread", "inbox_empty", "popup_close"),
    "conversation": ("conversation_ready", "conversation_contact", "scroll_container", "message",
                     *FIELDS, "message_direction", "message_pending", "date_header", "older_messages",
                     "conversation_start", "reply_box", "send_button"),
}
@dataclass
class Row:
    element: str
    page: str
    required: bool
    selector: str | None = None
    count: int = 0
    samples: list[str] = field(default_factory=list)
    problem: str = ""

    @property
    def failed(self) -> bool:
        """A required element that misses (or a declared message field: a read would fail)."""
        return bool(self.problem) and (self.required or self.element in FIELDS)


async def _count(page, selectors: list[str]) -> tuple[str | None, int]:
    for sel in selectors:
        n = await page.locator(sel).count()
        if n:
            return sel, n
    return None, 0


async def _check_page(page, spec: SiteConf, name: str, reader: Reader, now: datetime) -> list[Row]:
    rows = []
    for element in PAGES[name]:
        el = spec.element(element)
        if el is None:
            continue
        row = Row(element, name, bool(el.required))
        if element in FIELDS or element == "message_direction":
            rows.append(row)
            continue  # filled from the proof of the messages below
        row.selector, row.count = await _count(page, el.selectors)
        if not row.count:
            row.problem = f"none of {el.selectors} matched"
        rows.append(row)
    if name == "conversation":
        await _check_messages(page, spec, reader, now, rows)
    return rows


async def _check_messages(page, spec: SiteConf, reader: Reader, now: datetime, rows: list[Row]) -> None:
    by = {r.element: r for r in rows}
    msg = by.get("message")
    if msg is None or not msg.selector:
        for name in (*FIELDS, "message_direction"):
            if name in by:
                by[name].problem = "no message to look inside"
        return
    raws = await reader.raw(page, msg.selector)
    seen, misses, used = reader.prove(raws, now)
    for name in FIELDS:
        if name in by:
            el = spec.element(name)
            hits = sum(1 for r in raws if r["fields"][name]["sel"] >= 0)
            by[name].count = hits
            by[name].selector = el.selectors[used[name]] if name in used else None
    if "message_direction" in by:
        d = spec.element("message_direction")
        by["message_direction"].count = sum(1 for r in raws if (r["out"] >= 0) != (r["inc"] >= 0))
        by["message_direction"].selector = f"out {d.outgoing} / in {d.incoming}"
    for m in misses:
        if m.element in by:
            by[m.element].problem = f"{m.detail} (tried {list(m.tried)})"
    msgs = identify("doctor", spec.name, "conversation", seen)
    for s, m in list(zip(seen, msgs))[-3:]:
        sample = {"message_id": m.site_message_id or f"(content) {m.message_id.rsplit(':', 1)[-1][:10]}",
                  "message_sender": s.sender, "message_time": m.sent_at,
                  "message_direction": s.direction, "message_text": _excerpt(s.text)}
        for name, value in sample.items():
            if name in by:
                by[name].samples.append(value)


def _excerpt(text: str, n: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def format_table(rows: list[Row]) -> str:
    lines = [f"{'element':<20} {'page':<12} {'req':<4} {'n':>3}  {'matched selector':<44} samples / problem"]
    for r in rows:
        status = "FAIL" if r.failed else ("warn" if r.problem else "ok")
        detail = r.problem if r.problem else "; ".join(r.samples)
        lines.append(f"{r.element:<20} {r.page:<12} {'yes' if r.required else 'no':<4} {r.count:>3}  "
                     f"{(r.selector or '-')[:44]:<44} {status}: {detail}")
    return "\n".join(lines)


async def _save(page, out: Path, name: str) -> None:
    await page.screenshot(path=str(out / f"{name}.png"), full_page=True)
    (out / f"{name}.html").write_text(await page.content(), encoding="utf-8")


async def run(config: Config, site_name: str, *, html_dir: Path | None = None,
              conversation: str | None = None, out_dir: Path | None = None,
              now: datetime | None = None) -> tuple[list[Row], Path]:
    """Check every element of `site_name`'s spec; returns the rows and where artifacts went."""
    from actors.browser.adapter import SiteAdapter
    from actors.browser.launcher import open_session, scratch_root, session_dir
    from actors.browser.limits import NodeSlots, SlidingWindowLimiter
    from actors.browser.selectors import Selectors

    spec = config.site(site_name)
    reader = Reader(spec)
    now = now or datetime.now(timezone.utc)
    out = out_dir or resolve(config.app.browser.artifacts_dir) / f"doctor-{site_name}-{time.strftime('%Y%m%dT%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    account = next((a for a in config.app.accounts if a.site == site_name), None)
    handle = await open_session(config, session_dir(site_name, f"doctor-{account.id if account else 'html'}"), None)
    rows: list[Row] = []
    try:
        page = handle.page
        if html_dir is not None:
            for name in PAGES:
                f = html_dir / f"{name}.html"
                if not f.is_file():
                    rows += [Row(e, name, bool(spec.element(e).required), problem=f"{f} not found")
                             for e in PAGES[name] if spec.element(e) is not None]
                    continue
                await page.set_content(f.read_text(encoding="utf-8"))
                await _save(page, out, name)
                rows += await _check_page(page, spec, name, reader, now)
            return rows, out
        if account is None:
            raise SystemExit(f"doctor: no account in the config uses site {site_name!r}")
        browser = config.app.browser
        selectors = Selectors(spec, out, browser.selector_timeout_s)
        adapter = SiteAdapter(page, config, account, config.credentials(account), selectors,
                              SlidingWindowLimiter(account.navigations_per_minute),
                              NodeSlots(browser.max_concurrent_navigations, scratch_root() / "nav-slots"))
        await adapter._open(adapter.url("login"), expect_login=True)
        await _save(page, out, "login")
        rows += await _check_page(page, spec, "login", reader, now)
        try:
            await adapter.login()
        except Exception as exc:  # still check what can be checked
            rows.append(Row("login", "login", True, problem=f"login failed: {exc}"))
            return rows, out
        await page.goto(adapter.url("inbox"), wait_until="domcontentloaded")
        await _save(page, out, "inbox")
        rows += await _check_page(page, spec, "inbox", reader, now)
        if conversation is None:
            try:
                items = await adapter.inbox()
            except Exception:
                items = []
            conversation = items[0].conversation_id if items else None
        if conversation is None:
            rows += [Row(e, "conversation", bool(spec.element(e).required),
                         problem="no conversation to open (name one with --conversation)")
                     for e in PAGES["conversation"] if spec.element(e) is not None]
            return rows, out
        await page.goto(adapter.url("conversation", conversation_id=conversation), wait_until="domcontentloaded")
        await _save(page, out, "conversation")
        rows += await _check_page(page, spec, "conversation", reader, now)
        return rows, out
    finally:
        await handle.close()


def main(config: Config, argv: list[str]) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="python -m supervisor doctor", description=__doc__.splitlines()[0])
    p.add_argument("site", help="the site spec to check (conf/sites/<site>.yaml)")
    p.add_argument("--html", type=Path, default=None, help="read saved pages from this folder instead")
    p.add_argument("--conversation", default=None, help="conversation id to open (default: the first)")
    p.add_argument("--out", type=Path, default=None, help="where screenshots and HTML go")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = p.parse_args(argv)
    if args.site not in config.sites:
        print(f"doctor: site {args.site!r} is not used by any account in the config "
              f"(sites: {sorted(config.sites)})", file=sys.stderr)
        return 2
    rows, out = asyncio.run(run(config, args.site, html_dir=args.html, conversation=args.conversation,
                                out_dir=args.out))
    failed = [r.element for r in rows if r.failed]
    if args.json:
        print(json.dumps([{**r.__dict__, "failed": r.failed} for r in rows]))
    else:
        print(format_table(rows))
        print(f"\nscreenshots and HTML: {out}")
        print(f"{'FAILED: ' + ', '.join(failed) if failed else 'all required elements match'}")
    return 1 if failed else 0


assert set(e for names in PAGES.values() for e in names) == set(ELEMENTS)
