"""The doctor's checks (supervisor/doctor.py is its command line): which page each element is
looked for on, whether the spec needs it, a row per element with what matched, and a `Visit`
that checks and saves every page it is given (supervisor/doctor_site.py says where pages come
from, supervisor/doctor_report.py prints the rows)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from actors.browser.extract import FIELDS, Reader, identify
from contracts.sitespec import ELEMENTS, SiteConf
from supervisor.capture import Masker, save_page, write_manifest
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


assert {e for names in PAGES.values() for e in names} == set(ELEMENTS)  # every element has a page
