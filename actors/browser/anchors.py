"""Where "after the send" starts: the anchor of a send is the fingerprint (the shapes) of the last
messages on the page before its click. Pure functions over proven messages (extract.Seen), the
same for every site adapter: the session persists the anchor before any adapter submits, and a
reply counts as sent only when it is read after the one place the anchor appears.
"""
from __future__ import annotations

from actors.browser.extract import Seen, norm_text

Anchor = list[list[str]]  # the shapes of the last messages before a send's click


def anchor(seen: list[Seen], text: str, at_least: int) -> Anchor:
    """The fingerprint of the last messages before a send: where "after the send" starts.
    At least `at_least` (the spec's `anchor_messages`) long, and longer until it is unique on the
    page and not made only of messages that look like the reply itself (else the reply, once
    shown, would form the anchor again one message later, and "after the anchor" would start
    after the reply)."""
    shapes = [m.shape for m in seen]
    want = norm_text(text)
    k = min(at_least, len(shapes))
    while k < len(shapes):
        window = shapes[-k:]
        reply_like = all(sh[0] == "out" and sh[3] == want for sh in window)
        if not reply_like and len(_ends(shapes, window)) == 1:
            break
        k += 1
    return [list(sh) for sh in shapes[len(shapes) - k:]]


def after_anchor(seen: list[Seen], anchor: Anchor) -> list[Seen] | None:
    """The messages after the one place the anchor appears; None if it is not on the page, or
    appears more than once (then "after the send" is not proven)."""
    if not anchor:
        return seen
    ends = _ends([m.shape for m in seen], [tuple(a) for a in anchor])
    return seen[ends[0]:] if len(ends) == 1 else None


def sent_after(after: list[Seen], text: str) -> int:
    """How many outgoing messages with `text` are among `after`."""
    want = norm_text(text)
    return sum(1 for m in after if m.direction == "out" and norm_text(m.text) == want)


def _ends(shapes: list, window: list) -> list[int]:
    """Every index just past a place where `window` occurs in `shapes`."""
    n = len(window)
    return [end for end in range(n, len(shapes) + 1) if shapes[end - n:end] == window]
