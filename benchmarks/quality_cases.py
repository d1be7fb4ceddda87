"""The labeled conversations of the quality harness (benchmarks/data/quality.yaml): loaded,
checked and turned into the ChatMessage history replydesk's AI worker reads from its store.

A bad file is a ValueError naming the file, the conversation and the field; nothing is skipped.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, get_args

import yaml

from contracts.events import ChatMessage, Classification

CLASSES: tuple[str, ...] = get_args(Classification)
DATA = Path(__file__).resolve().parent / "data" / "quality.yaml"
ACCOUNT, SITE, OWNER = "quality", "meetme", "Sam"
_START = datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)
_FIELDS = {"id", "lang", "expect", "tags", "contact", "must_not_contain", "pad", "messages"}


@dataclass(frozen=True)
class Case:
    id: str
    lang: str
    expect: str
    tags: tuple[str, ...]
    contact: str
    must_not_contain: tuple[str, ...]
    messages: tuple[tuple[str, str], ...]      # (direction "in" | "out", text), oldest first

    def history(self) -> list[ChatMessage]:
        """The conversation as stored messages: one every 7 minutes, the contact's and ours."""
        out = []
        for i, (direction, text) in enumerate(self.messages):
            out.append(ChatMessage(
                message_id=f"{ACCOUNT}:{self.id}:{i}", account_id=ACCOUNT, site=SITE,
                conversation_id=self.id, sender=self.contact if direction == "in" else OWNER,
                text=text, direction=direction,
                sent_at=(_START + timedelta(minutes=7 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")))
        return out


def _message(where: str, item: Any) -> tuple[str, str]:
    if not isinstance(item, dict):
        raise ValueError(f"{where}: a message must be {{contact: text}} or {{me: text}}")
    who = [k for k in item if k in ("contact", "me")]
    extra = set(item) - {"contact", "me", "repeat"}
    if len(who) != 1 or extra:
        raise ValueError(f"{where}: a message has exactly one of `contact` / `me` (and an optional "
                         f"`repeat`); got keys {sorted(item)}")
    text, repeat = item[who[0]], item.get("repeat", 1)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where}: `{who[0]}` must be non-empty text")
    if not isinstance(repeat, int) or repeat < 1:
        raise ValueError(f"{where}: `repeat` must be a positive integer, got {repeat!r}")
    return ("in" if who[0] == "contact" else "out"), "\n\n".join([text.strip()] * repeat)


def _case(path: Path, raw: Any, fillers: dict[str, list[str]], index: int) -> Case:
    where = f"{path}: conversation #{index + 1}"
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: must be a mapping")
    where = f"{path}: conversation {raw.get('id', '#' + str(index + 1))!r}"
    unknown = set(raw) - _FIELDS
    missing = [k for k in ("id", "lang", "expect", "contact", "messages") if not raw.get(k)]
    if unknown or missing:
        raise ValueError(f"{where}: " + "; ".join(
            ([f"unknown field(s) {sorted(unknown)}"] if unknown else []) +
            ([f"missing {', '.join(missing)}"] if missing else [])))
    if raw["expect"] not in CLASSES:
        raise ValueError(f"{where}: expect must be one of {list(CLASSES)}, got {raw['expect']!r}")
    if not isinstance(raw["messages"], list):
        raise ValueError(f"{where}: messages must be a list")
    messages = [_message(f"{where} message #{i + 1}", m) for i, m in enumerate(raw["messages"])]
    pad = raw.get("pad", 0)
    if pad:
        pool = fillers.get(raw["lang"])
        if not isinstance(pad, int) or pad < 0 or not pool:
            raise ValueError(f"{where}: pad needs a non-negative integer and `fillers` for "
                             f"language {raw['lang']!r}")
        messages = [("in" if i % 2 == 0 else "out", pool[i % len(pool)]) for i in range(pad)] + messages
    if messages[-1][0] != "in":
        raise ValueError(f"{where}: the newest message must be the contact's (the worker only "
                         f"drafts for those)")
    return Case(id=str(raw["id"]), lang=str(raw["lang"]), expect=raw["expect"],
                tags=tuple(str(t) for t in raw.get("tags") or ()), contact=str(raw["contact"]),
                must_not_contain=tuple(str(s) for s in raw.get("must_not_contain") or ()),
                messages=tuple(messages))


def load(path: Path = DATA) -> list[Case]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    raw = data.get("conversations")
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{path}: no `conversations` list")
    fillers = data.get("fillers") or {}
    cases = [_case(Path(path), c, fillers, i) for i, c in enumerate(raw)]
    seen: set[str] = set()
    dupes = [c.id for c in cases if c.id in seen or seen.add(c.id)]
    if dupes:
        raise ValueError(f"{path}: duplicate conversation id(s) {dupes}")
    return cases
