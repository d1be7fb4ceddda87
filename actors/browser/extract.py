"""Read the messages of a conversation page as the site spec describes them, and give each one an
identity that never merges two messages.

One `page.evaluate` walks the page in document order (messages and date headers interleaved) and
returns, per message and field, which selector matched and which source (`text`, `@attr`) gave
the value. Python then proves every message or refuses the page: a required field that matched
nothing, a time no format parses, a message whose direction is not proven (matches neither or
both of `outgoing`/`incoming`) are misses that fail the read, naming every element at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from actors.browser.timeparse import parse_day, parse_time_of
from contracts.events import ChatMessage
from contracts.ids import content_key, message_id
from contracts.sitespec import SiteConf

FIELDS = ("message_id", "message_sender", "message_text", "message_time")

_READ_JS = """
(s) => {
  const value = (el, from) => {
    for (let i = 0; i < from.length; i++) {
      const v = from[i] === 'text' ? el.textContent : el.getAttribute(from[i].slice(1));
      if (v !== null && v.trim() !== '') return [v, i];
    }
    return [null, -1];
  };
  const pick = (el, spec) => {
    for (let i = 0; i < spec.selectors.length; i++) {
      const sel = spec.selectors[i];
      const f = sel === ':scope' ? el : el.querySelector(sel);
      if (f) { const [v, src] = value(f, spec.from); return {sel: i, value: v, src}; }
    }
    return {sel: -1, value: null, src: -1};
  };
  const hits = (el, sels) => sels.findIndex(x => el.matches(x) || el.querySelector(x) !== null);
  const contact = s.contact ? pick(document, s.contact) : null;
  const nodes = document.querySelectorAll([s.message, ...s.headers].join(', '));
  let header = null;
  const out = [];
  for (const el of nodes) {
    if (!el.matches(s.message)) { header = pick(el, {selectors: [':scope'], from: s.headerFrom}).value; continue; }
    const fields = {};
    for (const [name, spec] of Object.entries(s.fields)) fields[name] = pick(el, spec);
    out.push({fields, out: hits(el, s.out), inc: hits(el, s.inc), header, contact,
              pending: hits(el, s.pending)});
  }
  return out;
}
"""


@dataclass(frozen=True)
class Miss:
    element: str
    detail: str
    tried: tuple[str, ...]


@dataclass(frozen=True)
class Seen:
    """One proven message of a page, before it has an identity."""
    site_id: str | None
    sender: str
    text: str
    sent_at: datetime
    direction: str
    day_guessed: bool = False  # a time of day with no date header above it: dated by the poll

    @property
    def minute(self) -> str:
        return self.sent_at.strftime("%Y-%m-%dT%H:%MZ")

    @property
    def shape(self) -> tuple[str, str, str, str]:
        """What two identical messages share (the anchor of a send compares these)."""
        return (self.direction, " ".join(self.sender.split()), self.minute, norm_text(self.text))


class Reader:
    """Reads conversation pages of one site. `me`: the sender of outgoing messages when the spec
    reads senders from the conversation header (`conversation_contact`) instead of messages."""

    def __init__(self, site: SiteConf, me: str = "me"):
        self.site = site
        self.me = me
        self.tz = ZoneInfo(site.timezone)
        header = site.element("date_header")
        direction = site.element("message_direction")
        self.args = {
            "fields": {n: {"selectors": el.selectors, "from": el.from_}
                       for n in FIELDS if (el := site.element(n)) is not None},
            "headers": header.selectors if header else [], "headerFrom": header.from_ if header else [],
            "out": direction.outgoing, "inc": direction.incoming,
            "pending": site.selectors("message_pending")}
        contact = site.element("conversation_contact")
        if contact is not None:
            self.args["contact"] = {"selectors": contact.selectors, "from": contact.from_}

    async def raw(self, page, message_selector: str) -> list[dict]:
        """Every message of the page (in the iframe the spec names, if any). Messages marked
        `message_pending` are returned with `pending` >= 0: prove() leaves them out."""
        frame = self.site.element("message").frame
        if frame:
            handle = await page.locator(frame).first.element_handle()
            page = await handle.content_frame() if handle is not None else page
        return await page.evaluate(_READ_JS, {**self.args, "message": message_selector})

    def prove(self, raws: list[dict], now: datetime, start_day: date | None = None
              ) -> tuple[list[Seen], list[Miss], dict[str, int]]:
        """Proven messages, the misses found (all of them), and which selector each field used.
        `raws` may span pages (oldest first): a message with no date header above it on its own
        page has the day of the last header before it, or `start_day` when there is none."""
        misses: dict[str, Miss] = {}
        used: dict[str, int] = {}
        seen: list[Seen] = []
        site = self.site
        carried = start_day

        def miss(element: str, detail: str, tried: list[str]) -> None:
            misses.setdefault(element, Miss(element, detail, tuple(tried)))

        for n, raw in enumerate(raws):
            if raw.get("pending", -1) >= 0:   # not sent yet: neither read nor a confirmation
                continue
            f = raw["fields"]
            ok = True
            for name in FIELDS:
                el = site.element(name)
                if el is None:
                    continue
                got = f[name]
                if got["sel"] < 0:
                    miss(name, f"matched nothing inside message #{n + 1} of the page", el.selectors)
                    ok = False
                    continue
                used.setdefault(name, got["sel"])
                if got["value"] is None:  # an empty text, sender, time or id is no proof either
                    miss(name, f"{el.selectors[got['sel']]!r} matched but no source {el.from_} "
                               f"had a value in message #{n + 1}", el.selectors)
                    ok = False
            direction = site.element("message_direction")
            out, inc = raw["out"] >= 0, raw["inc"] >= 0
            if out == inc:
                miss("message_direction",
                     f"message #{n + 1} matched {'both' if out else 'neither'} of outgoing "
                     f"{direction.outgoing} and incoming {direction.incoming}: its direction is not "
                     "proven", direction.outgoing + direction.incoming)
                ok = False
            if not ok:
                continue
            time_el = site.element("message_time")
            raw_time = f["message_time"]["value"]
            day = carried
            if raw.get("header"):
                header = site.element("date_header")
                day = carried = parse_day(raw["header"], header.formats, now, self.tz)
                if day is None:
                    miss("date_header", f"date header {raw['header'].strip()!r} matches none of "
                                        f"the formats {header.formats}", header.selectors)
                    continue
            sent_at, guessed = parse_time_of(raw_time, time_el.formats, now, self.tz, day)
            if sent_at is None:
                miss("message_time", f"time {raw_time.strip()!r} of message #{n + 1} matches none "
                                     f"of the formats {time_el.formats}", time_el.selectors)
                continue
            site_id = f.get("message_id", {}).get("value")
            sender = self._sender(raw, out, miss)
            if sender is None:
                continue
            seen.append(Seen(site_id=site_id.strip() if site_id else None,
                             sender=sender,
                             text=f["message_text"]["value"], sent_at=sent_at,
                             direction="out" if out else "in", day_guessed=guessed))
        return seen, list(misses.values()), used

    def _sender(self, raw: dict, out: bool, miss) -> str | None:
        """The message's own sender; else (no message_sender in the spec) the account for an
        outgoing message and the conversation header's contact for an incoming one."""
        if self.site.element("message_sender") is not None:
            return " ".join(raw["fields"]["message_sender"]["value"].split())
        if out:
            return self.me
        contact = self.site.element("conversation_contact")
        got = raw.get("contact") or {}
        if got.get("value") is None:
            miss("conversation_contact", "the contact's name (the sender of incoming messages) "
                 "is not on the page" if got.get("sel", -1) < 0 else "it matched but had no value",
                 contact.selectors if contact else [])
            return None
        return " ".join(got["value"].split())


def identify(account_id: str, site: str, conversation_id: str, seen: list[Seen]) -> list[ChatMessage]:
    """ChatMessages in page order. Without a site id a message's id is its content key: the
    occurrence index among identical messages (same sender, minute and text) keeps two "ok" in one
    minute apart, and is the same on every re-read of the same messages in the same order."""
    counts: dict[tuple, int] = {}
    msgs = []
    for s in seen:
        k = (s.sender, s.minute, norm_text(s.text))
        occurrence = counts.get(k, 0)
        counts[k] = occurrence + 1
        key = content_key(s.sender, s.minute, s.text, occurrence)
        msgs.append(ChatMessage(
            message_id=message_id(account_id, conversation_id, s.site_id, s.sender, s.minute,
                                  s.text, occurrence),
            account_id=account_id, site=site, conversation_id=conversation_id,
            site_message_id=s.site_id, sender=s.sender, text=s.text,
            sent_at=s.sent_at.isoformat().replace("+00:00", "Z"), direction=s.direction,
            content_key=key))
    return msgs


def norm_text(text: str) -> str:
    """A text as compared with what we sent, whitespace-insensitively: browsers submit textarea
    newlines as CRLF, and a contenteditable box turns spaces into NBSP, tabs into spaces and a
    blank line into two."""
    return " ".join(text.split())
