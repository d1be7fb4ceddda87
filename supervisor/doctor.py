"""`python -m supervisor doctor SITE` (also `./run doctor SITE`): check EVERY element of a site
spec at once, on the pages the adapter reads, before a spec edit is reloaded; for a first contact
with a site (or after a redesign) capture those pages to share and get selector suggestions.

It logs in with one of the site's configured accounts (a fresh browser context: the stored
session is not touched; `--headed` shows the browser so a person can finish a login challenge;
`--state FILE` brings a login a person made elsewhere), visits the start page, the login page,
the inbox, one conversation and its older messages (by link or by scroll), and prints per element: required or optional, the selector that matched (or none), how many elements
matched, and sample values (id, sender, parsed time, direction, text excerpt). For every element
that misses it proposes checked selectors (supervisor/suggest.py) and prints them as YAML to paste
into the spec. Every page is saved (`--capture DIR`, default under `browser.artifacts_dir`): HTML,
screenshot, ARIA snapshot and `manifest.json` (supervisor/capture.py), secrets always masked and,
with `--mask`, the texts and names people wrote too. With `--html DIR` it reads saved pages
instead (a capture folder, or `login.html`, `inbox.html`, `conversation.html`, e.g. the HTML a miss
saved), with no site and no login. `--text` / `--name` name a message text / a contact name that
is on the pages: the suggestions find messages, senders and headers by them.
Exit status: 0 when every required element matches and every message on the conversation page is
proven, 1 otherwise.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from contracts.settings import Config, resolve
from supervisor.capture import Masker, read_manifest
from supervisor.doctor_checks import PAGES, Row, Visit, needed  # noqa: F401  (the doctor's API)

async def run(config: Config, site_name: str, *, html_dir: Path | None = None,
              conversation: str | None = None, out_dir: Path | None = None,
              now: datetime | None = None, mask: bool = False, texts: list[str] = (),
              names: list[str] = (), headed: bool = False, login_timeout_s: float = 600,
              state: dict | None = None) -> tuple[list[Row], Path]:
    """Check every element of `site_name`'s spec; returns the rows and where artifacts went."""
    from actors.browser.launcher import open_session, session_dir
    from supervisor.doctor_site import saved_pages, visit_site

    spec = config.site(site_name)
    now = now or datetime.now(timezone.utc)
    out = out_dir or resolve(config.app.browser.artifacts_dir) / f"doctor-{site_name}-{time.strftime('%Y%m%dT%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    account = next((a for a in config.app.accounts if a.site == site_name), None)
    if html_dir is None and account is None:
        raise SystemExit(f"doctor: no account in the config uses site {site_name!r}")
    masker = Masker(private=mask)
    if account is not None:
        cred = config.credentials(account)
        masker.secret(cred.username, cred.password.get_secret_value())
    manifest = read_manifest(html_dir) if html_dir is not None else None
    hints = (manifest or {}).get("hints", {})
    for cookie in (state or {}).get("cookies", []):
        masker.secret(cookie.get("value"))
    handle = await open_session(config, session_dir(site_name, f"doctor-{account.id if account else 'html'}"),
                                state, headless=False if headed else None)
    scratch_ctx = await handle.browser.new_context(java_script_enabled=False)
    try:
        scratch = await scratch_ctx.new_page()
        visit = Visit(spec, out, scratch, masker, now, [*texts, *hints.get("texts", [])],
                      [*names, *hints.get("names", [])], me=account.id if account else "me")
        if html_dir is not None:
            await saved_pages(visit, await scratch_ctx.new_page(), html_dir, manifest)
        else:
            await visit_site(visit, handle, config, account, conversation, headed, login_timeout_s,
                             logged_in=state is not None)
        visit.finish(site_name, "html" if html_dir is not None else "site")
        return visit.rows, out
    finally:
        await scratch_ctx.close()
        await handle.close()


def main(config: Config, argv: list[str]) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="python -m supervisor doctor", description=__doc__.splitlines()[0])
    p.add_argument("site", help="the site spec to check (conf/sites/<site>.yaml)")
    p.add_argument("--html", type=Path, default=None, help="read saved pages from this folder instead")
    p.add_argument("--conversation", default=None, help="conversation id to open (default: the first)")
    p.add_argument("--capture", "--out", dest="out", type=Path, default=None,
                   help="where the pages are saved (HTML, screenshot, ARIA snapshot, manifest.json)")
    p.add_argument("--mask", action="store_true",
                   help="mask what people wrote and their names in the saved files (to share them)")
    p.add_argument("--text", action="append", default=[], help="a message text shown on the pages")
    p.add_argument("--name", action="append", default=[], help="a contact name shown on the pages")
    p.add_argument("--headed", action="store_true",
                   help="show the browser: a person finishes a login challenge in it (needs DISPLAY)")
    p.add_argument("--login-timeout", type=float, default=600, help="seconds to wait for that person")
    p.add_argument("--state", type=Path, default=None,
                   help="a Playwright storage-state JSON of a login a person made elsewhere (as "
                        "`./run login ACCOUNT --import` takes): used instead of logging in")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = p.parse_args(argv)
    if args.site not in config.sites:
        print(f"doctor: site {args.site!r} is not used by any account in the config "
              f"(sites: {sorted(config.sites)})", file=sys.stderr)
        return 2
    if args.html is not None and not args.html.is_dir():
        print(f"doctor: --html {args.html} is not a folder", file=sys.stderr)
        return 2
    if args.headed and not os.environ.get("DISPLAY"):
        print("doctor: --headed needs a display (DISPLAY is not set): run it on a machine with a "
              "screen, or log in there and pass the login with --state FILE", file=sys.stderr)
        return 2
    state = None
    if args.state is not None:
        from supervisor.login import LoginError, validate_state
        try:
            state = validate_state(json.loads(args.state.read_text(encoding="utf-8")), str(args.state))
        except (OSError, ValueError, LoginError) as exc:
            print(f"doctor: --state {args.state}: {exc}", file=sys.stderr)
            return 2
    rows, out = asyncio.run(run(config, args.site, html_dir=args.html, conversation=args.conversation,
                                out_dir=args.out, mask=args.mask, texts=args.text, names=args.name,
                                headed=args.headed, login_timeout_s=args.login_timeout, state=state))
    failed = list(dict.fromkeys(r.element for r in rows if r.failed))
    if args.json:
        print(json.dumps([r.as_dict() for r in rows]))
    else:
        from supervisor.doctor_report import format_suggestions, format_table
        print(format_table(rows))
        suggestions = format_suggestions(config.site(args.site), rows)
        if suggestions:
            print("\n" + suggestions)
        print(f"\npages saved (HTML, screenshot, ARIA snapshot, manifest.json): {out}")
        print(f"{'FAILED: ' + ', '.join(failed) if failed else 'all required elements match'}")
    return 1 if failed else 0

