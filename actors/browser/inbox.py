"""Reading an inbox page: per item, the conversation it names and its signature (the text a new
message changes), as the site spec describes items.

Per item the script returns the first source (`@attr` on the item or its first descendant that
has it; an `@href` resolved to a full URL, read by the conversation route in routes.py) with a
value; the item's visible text without its typing indicator (`inbox_typing`: it comes and goes,
no message) and without its unread badge (`inbox_unread`, kept apart: the badge our own read
clears is no change); and whether its preview is our own message or a status (`inbox_status`:
an element inside the item, or a `pattern` on the text of `inbox_preview`, such as "Sent: ..."
or "Seen"): such an item shows nothing new from the contact.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

INBOX_JS = """
(els, [from, unread, typing, statusSels, previewSels]) => els.map(el => {
  for (const src of from) {
    const attr = src.slice(1);
    const f = el.hasAttribute(attr) ? el : el.querySelector('[' + CSS.escape(attr) + ']');
    const v = f ? f.getAttribute(attr) : null;
    if (!(v && v.trim())) continue;
    const ref = attr === 'href' ? new URL(v, location.href).href : v.trim();
    const rest = el.cloneNode(true);
    for (const sel of typing) rest.querySelectorAll(sel).forEach(t => t.remove());
    let badge = null;
    for (const sel of unread) {   // the first badge selector that matches inside the item
      const badges = Array.from(rest.querySelectorAll(sel));
      if (!badges.length) continue;
      badge = badges.map(b => b.textContent).join(' ');
      badges.forEach(b => b.remove());
      break;
    }
    const status = statusSels.some(sel => el.querySelector(sel) !== null);
    let preview = null;
    for (const sel of previewSels) {
      const p = rest.querySelector(sel);
      if (p) { preview = p.textContent; break; }
    }
    return {ref, href: attr === 'href', text: rest.textContent, unread: badge, status, preview};
  }
  return null;
})
"""


def js_args(site) -> list:
    status = site.element("inbox_status")
    return [[src for src in site.element("inbox_item").from_ if src.startswith("@")],
            site.selectors("inbox_unread"), site.selectors("inbox_typing"),
            list(status.selectors) if status else [], site.selectors("inbox_preview")]


def is_status(site, raw: dict) -> bool:
    """The item's preview is our own message or a status line, not new text from the contact."""
    if raw.get("status"):
        return True
    status = site.element("inbox_status")
    preview = " ".join((raw.get("preview") or "").split())
    return bool(status and preview and any(re.search(p, preview) for p in status.patterns))


BADGE = "\x1f"   # in a signature: the item's text, then the unread badge when the spec names it


@dataclass(frozen=True)
class InboxItem:
    conversation_id: str
    signature: str  # the item's visible text (preview, time, unread badge): changes on arrival
    status: bool = False  # the preview is our own message or a status (inbox_status)

    @classmethod
    def of(cls, conversation_id: str, text: str, badge: str | None, status: bool = False) -> "InboxItem":
        """`badge`: the text of the item's `inbox_unread` element (None: the spec names none, or
        none is shown); kept after BADGE so the text without it can be compared alone."""
        text = " ".join(text.split())
        badge = " ".join((badge or "").split())
        return cls(conversation_id, f"{text}{BADGE}{badge}" if badge else text, status)

    def unchanged_since(self, recorded: str | None) -> bool:
        """Nothing new since the signature recorded at the last read: the same, or the same text
        with only the unread badge gone (the read cleared it, as a person's reading does). A
        new message changes the text or brings a badge back; what changes neither (the same
        text again, read elsewhere) is found by the revisit."""
        if recorded is None:
            return False
        if self.status:   # our reply, "Sent", "Seen": nothing new from the contact (revisits
            return True   # still come, as for any unchanged-looking conversation)
        return recorded == self.signature or (
            BADGE not in self.signature and BADGE in recorded
            and recorded.partition(BADGE)[0] == self.signature)


