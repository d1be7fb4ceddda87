"""Selector suggestions for the elements of a site spec that miss (the doctor's second half).

For an element none of whose selectors match, find on the page the element(s) the spec meant,
from what is known: the element's other selectors with their ids and classes dropped (the part a
redesign keeps: `textarea.chat-input` -> `textarea`), the element's kind (a password field, a
text box, a button in the reply form, an item holding a link to a conversation route, a message
holding a known text...), the texts and names the operator passes (`--text`, `--name`) and the
messages the spec still reads. Then propose selectors for them, ranked by how long they usually
survive a redesign (`RANKS`: id, data-testid, role + accessible name, name, placeholder,
aria-label, stable class, structure), never a generated class or id (`generated`), each checked
on the page to match exactly the elements found (one for a page element, every item for an
inbox item, every message for a message, one inside every message for a message field).

The ranking, the filter and the YAML snippet are pure functions; finding the elements and the
check run in the page (a live one, or a captured one loaded with scripts off).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

RANKS = ("id", "test id", "role + name", "name", "placeholder", "aria-label", "data attribute",
         "stable class", "structure")
# elements read inside page JS with querySelector: plain CSS only (no Playwright extensions)
PLAIN_CSS = {"message", "message_id", "message_sender", "message_text", "message_time",
             "date_header", "inbox_unread"}
FIELD_ELEMENTS = {"message_id", "message_sender", "message_text", "message_time"}
SINGLE = "single"

_KNOWN_GENERATED = re.compile(
    r"^(css|sc|jsx|emotion|svelte|styled|tw|chakra|mantine|ember|yui|ng-tns|makeStyles|jss)[-_]"
    r"|__[A-Za-z0-9_-]{5,}$|^_[A-Za-z0-9_-]*\d[A-Za-z0-9_-]*$|^:r[0-9a-z]+:$")
_SEGMENT = re.compile(r"[A-Za-z0-9]+")


def generated(name: str) -> bool:
    """A class or id a build tool or framework generated (it changes with every release):
    `css-1x2y3z`, `sc-abc123`, `_3fGh2`, `Button_root__x7Yz1`, `jsx-402817`, `:r4:`,
    `ember123`, `x3fa9c01b`; not `chat-list`, `btn-primary`, `col-md-6`, `h5`."""
    if not name or _KNOWN_GENERATED.search(name):
        return True
    if re.search(r"\d{3,}", name):          # counters and hashes: item-1000001, ember1234
        return True
    for seg in _SEGMENT.findall(name):
        digits = sum(c.isdigit() for c in seg)
        if len(seg) >= 5 and digits and digits < len(seg):   # hash-like: letters and digits mixed
            return True
        switches = sum(a.isupper() != b.isupper() for a, b in zip(seg, seg[1:]) if a.isalpha() and b.isalpha())
        if len(seg) >= 5 and switches / len(seg) > 0.4:   # random case: bdVaJa (camelCase is fine)
            return True
    return False


_ID = re.compile(r"#((?:\\.|[\w-])+)")
_CLASS = re.compile(r"\.((?:\\.|[\w-])+)")
_ATTR_VALUE = re.compile(r"\[\s*([\w-]+)\s*[~|^$*]?=\s*(\"[^\"]*\"|'[^']*'|[^\]\s]+)\s*\]")


def uses_generated(selector: str) -> bool:
    """Whether a selector leans on a generated id or class (also in [id=...]/[class*=...])."""
    names = _ID.findall(selector) + _CLASS.findall(selector)
    for attr, value in _ATTR_VALUE.findall(selector):
        if attr in ("id", "class"):
            names += value.strip("\"'").split()
    return any(generated(n.replace("\\", "")) for n in names)


def relaxed(selector: str) -> str | None:
    """The selector with its ids and classes dropped (what a rename keeps): `li.item` -> `li`,
    `#chat ol.list > li` -> `* ol > li`; None when that changes nothing or leaves only `*`."""
    if "," in selector:
        return None
    brackets: list[str] = []
    text = re.sub(r"\[[^\]]*\]|\([^)]*\)", lambda m: brackets.append(m.group(0)) or f"\0{len(brackets) - 1}\0",
                  selector.strip())
    out = []
    for i, part in enumerate(re.split(r"(\s*[>+~]\s*|\s+)", text)):
        out.append(f" {part.strip()} " if i % 2 else (_CLASS.sub("", _ID.sub("", part)) or "*"))
    result = re.sub(r"\0(\d+)\0", lambda m: brackets[int(m.group(1))], " ".join("".join(out).split()))
    if result == selector or not result.replace("*", "").strip(" >+~"):
        return None
    return result


def mentions(selector: str, private: list[str]) -> bool:
    """Whether a selector spells out a private text (a contact's name in an aria-label...)."""
    low = selector.lower()
    return any(p and len(p) >= 3 and p.lower() in low for p in private)


@dataclass(frozen=True)
class Candidate:
    selector: str
    kind: str          # one of RANKS
    count: int = 0     # how many elements it matched (page) or messages it was checked in

    @property
    def rank(self) -> int:
        return RANKS.index(self.kind)


def rank(cands: list[Candidate], private: list[str] = ()) -> list[Candidate]:
    """Drop generated and private ones and duplicates; most stable first, then the shortest."""
    seen: set[str] = set()
    out = []
    for c in sorted(cands, key=lambda c: (c.rank, len(c.selector), c.selector)):
        if c.selector in seen or uses_generated(c.selector) or mentions(c.selector, list(private)):
            continue
        seen.add(c.selector)
        out.append(c)
    return out


def _flow(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(s, ensure_ascii=False) for s in items) + "]"


def snippet(spec, suggestions: dict[str, list[Candidate]]) -> str:
    """The YAML to paste under `elements:` of the site spec: per element that missed, the best
    checked suggestion first, the old selectors kept as fallbacks, its other keys unchanged."""
    from contracts.sitespec import DEFAULT_FORMATS, DEFAULT_FROM, ELEMENTS
    lines = ["elements:"]
    for element, cands in suggestions.items():
        if not cands:
            continue
        el = spec.element(element)
        old = el.selectors if el else []
        parts = [f"selectors: {_flow([cands[0].selector] + [s for s in old if s != cands[0].selector])}"]
        if el is not None:
            if el.from_ and el.from_ != DEFAULT_FROM.get(element, ["text"]):
                parts.append(f"from: {_flow(el.from_)}")
            if el.formats and el.formats != DEFAULT_FORMATS.get(element, []):
                parts.append(f"formats: {_flow(el.formats)}")
            if getattr(el, "patterns", None):
                parts.append(f"patterns: {_flow(el.patterns)}")
            if getattr(el, "frame", None):
                parts.append(f"frame: {json.dumps(el.frame, ensure_ascii=False)}")
            if element in ELEMENTS and el.required is not None and el.required != _default_required(spec, element):
                parts.append(f"required: {'true' if el.required else 'false'}")
        lines.append(f"  {element}: {{{', '.join(parts)}}}")
        for alt in cands[1:3]:
            lines.append(f"  #   or {json.dumps(alt.selector, ensure_ascii=False)}  ({alt.kind})")
    return "\n".join(lines) if len(lines) > 1 else ""


def _default_required(spec, element: str) -> bool:
    """What `required` an element gets when its YAML does not say (the spec's other choices may
    change it: `send_by: enter` makes the send button optional...)."""
    data = spec.model_dump(by_alias=True)
    data["elements"][element].pop("required", None)
    return bool(type(spec).model_validate(data).element(element).required)
