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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from actors.browser.extract import FIELDS, Reader, identify
from contracts.settings import Config, resolve
from contracts.sitespec import ELEMENTS, SiteConf
from supervisor.capture import Masker, read_manifest, save_page, write_manifest
from supervisor.suggest import Candidate

PAGES = {  # which page each element is looked for on
    "login": ("login_open", "login_username", "login_password", "login_submit", "logged_out",
              "login_challenge", "login_error"),
    "inbox": ("inbox_ready", "logged_in", "nav_inbox", "inbox_item", "inbox_preview", "inbox_status",
              "inbox_typing", "inbox_unread", "inbox_empty", "popup_close"),
    "conversation": ("conversation_ready", "conversation_contact", "scroll_container", "message",
                     *FIELDS, "message_direction", "message_pending", "date_header", "older_messages",
                     "conversation_start", "reply_box", "send_button"),
}
# optional elements whose kind finds them reliably when they are there (suggested when they miss)
OPTIONAL_FOUND_BY_KIND = ("older_messages", "conversation_start", "send_button", "login_submit")
# what is inside these holds what people wrote: masked with --mask
PRIVATE_CONTAINERS = ("message", "inbox_item", "conversation_contact")


def needed(spec: SiteConf, element: str) -> bool:
    """Whether a miss of `element` stops the adapter (its own `required`, or what the spec's
    other choices rely on: a ready marker, the login opener, the header's contact name when the
    messages carry no sender, the scroll box of scroll paging, the inbox link of click navigation)."""
    el = spec.element(element)
    if el is None:
        return False
    return bool(el.required) or element in ("inbox_ready", "conversation_ready", "login_open") \
        or (element == "conversation_contact" and spec.element("message_sender") is None) \
        or (element == "scroll_container" and spec.older_by == "scroll") \
        or (element == "nav_inbox" and spec.navigate.inbox != "url")


@dataclass
class Row:
    element: str
    page: str
    required: bool
    selector: str | None = None
    count: int = 0
    samples: list[str] = field(default_factory=list)
    problem: str = ""
    found: int = 0                       # how many elements the suggestions found it as
    suggestions: list[Candidate] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """A required element that misses (or a declared message field: a read would fail)."""
        return bool(self.problem) and (self.required or self.element in FIELDS)

    def as_dict(self, samples: bool = True) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "suggestions"}
        d["suggestions"] = [{"selector": c.selector, "kind": c.kind, "count": c.count}
                            for c in self.suggestions]
        d["failed"] = self.failed
        if not samples:
            d["samples"] = []
        return d


async def _count(page, selectors: list[str]) -> tuple[str | None, int]:
    for sel in selectors:
        n = await page.locator(sel).count()
        if n:
            return sel, n
    return None, 0


async def _check_page(page, spec: SiteConf, name: str, reader: Reader, now: datetime,
                      masker: Masker | None = None) -> list[Row]:
    rows = []
    for element in PAGES[name]:
        el = spec.element(element)
        if el is None:
            continue
        row = Row(element, name, needed(spec, element))
        if element in FIELDS or element == "message_direction":
            rows.append(row)
            continue  # filled from the proof of the messages below
        if not el.selectors:   # inbox_status by its text patterns only
            row.samples = [f"patterns {el.patterns}"]
            rows.append(row)
            continue
        row.selector, row.count = await _count(page.frame_locator(el.frame) if el.frame else page,
                                               el.selectors)
        if not row.count:
            row.problem = f"none of {el.selectors} matched"
        rows.append(row)
    if name == "conversation":
        await _check_messages(page, spec, reader, now, rows, masker)
    return rows


async def _check_messages(page, spec: SiteConf, reader: Reader, now: datetime, rows: list[Row],
                          masker: Masker | None) -> None:
    by = {r.element: r for r in rows}
    msg = by.get("message")
    if msg is None or not msg.selector:
        for name in (*FIELDS, "message_direction"):
            if name in by:
                by[name].problem = "no message to look inside"
        return
    raws = await reader.raw(page, msg.selector)
    if masker is not None:  # what the messages say and who wrote them: never in a masked file
        masker.known([r["fields"]["message_text"]["value"] or "" for r in raws if "message_text" in r["fields"]],
                     [r["fields"]["message_sender"]["value"] or "" for r in raws if "message_sender" in r["fields"]]
                     + [(r.get("contact") or {}).get("value") or "" for r in raws])
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


class Visit:
    """One doctor run's pages: check, suggest, save, and the manifest of it all."""

    def __init__(self, spec: SiteConf, out: Path, scratch, masker: Masker, now: datetime,
                 texts: list[str], names: list[str], me: str = "me"):
        self.spec, self.out, self.scratch, self.masker, self.now = spec, out, scratch, masker, now
        self.reader = Reader(spec, me=me)
        self.texts, self.names = texts, names
        masker.known(texts, names)
        self.rows: list[Row] = []
        self.pages: list[dict] = []
        self._containers: list[str] = []

    async def page(self, page, name: str, *, check: bool = True, url: str | None = None) -> list[Row]:
        self.masker.secret(*[c["value"] for c in await page.context.cookies()])
        rows = (await _check_page(page, self.spec, name, self.reader, self.now, self.masker)
                if check and name in PAGES else [])
        await self._suggest(page, rows)
        by = {r.element: r for r in rows}
        containers = [s for e in PRIVATE_CONTAINERS if (r := by.get(e)) is not None
                      for s in ([r.selector] if r.selector else []) + [c.selector for c in r.suggestions[:1]]]
        # a page seen without checks (the older messages) is masked as the last checked one was
        containers = containers or self._containers or \
            [s for e in PRIVATE_CONTAINERS for s in self.spec.selectors(e) if name != "login"]
        self._containers = containers if rows else self._containers
        shown_url = self.masker.url(url or page.url)   # its tokens are secrets in the files too
        files = await save_page(page, self.scratch, self.out, name, self.masker, containers)
        self.pages.append({"name": name, "url": shown_url, "checked": bool(rows),
                           "files": files, "matched": [r.element for r in rows if not r.problem],
                           "missed": [r.element for r in rows if r.problem],
                           "elements": [r.as_dict(samples=not self.masker.private) for r in rows]})
        self.rows += rows
        return rows

    async def _suggest(self, page, rows: list[Row]) -> None:
        from supervisor.suggest_page import clear_marks, suggest
        by = {r.element: r for r in rows}
        texts = self.texts + list(self.masker.texts)
        names = self.names + list(self.masker.names)
        for r in rows:
            if not r.problem or r.element == "message_direction" or \
                    not (r.failed or r.element in OPTIONAL_FOUND_BY_KIND):
                continue   # an optional element's absence is normal (no error shown, no popup...)
            scope = None
            if r.element in FIELDS:
                msg = by.get("message")
                scope = msg.selector or (msg.suggestions[0].selector if msg.suggestions else None) if msg else None
                if scope is None:
                    continue
            r.found, r.suggestions = await suggest(page, self.spec, r.element, texts=texts,
                                                   names=names, scope=scope)
            await clear_marks(page)

    def finish(self, site: str, mode: str) -> Path:
        manifest = {"site": self.spec.name, "config_site": site, "mode": mode,
                    "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "masked": self.masker.private, "hints": self.masker.hints(), "pages": self.pages}
        return write_manifest(self.out, manifest, self.masker)


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


assert {e for names in PAGES.values() for e in names} == set(ELEMENTS)
