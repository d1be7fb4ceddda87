"""The declarative site spec: conf/sites/<site>.yaml says everything about a site's markup.

Every element the adapter reads has ordered fallback `selectors` (the first that matches wins;
metrics and logs name the selector text that matched). Value fields say where their value comes
from (`from`: `text`, or `@attribute`, tried in order; the first non-empty wins) and time fields
how it is parsed (`formats`, tried in order):

- `iso8601`: `2026-12-02T22:51:07Z` (a missing zone means the site's `timezone`)
- `epoch` / `epoch_ms`: seconds / milliseconds since 1970
- a strftime pattern with a date (`%d.%m.%Y %H:%M`): taken as it is, in the site's `timezone`
- a strftime pattern without a date (`%H:%M`, `%I:%M %p`): a time of day, put on the date of the
  nearest preceding `date_header`, else on the poll's date (yesterday if that is in the future)
- `relative`: `Today 09:30`, `Yesterday 22:51`, `Monday 08:00`, `5 min ago`, `just now`

`date_header` values are parsed with its own `formats` (`relative` understands Today/Yesterday
and weekday names; a strftime pattern with a date does the rest).

`message_direction` is decided by two selector lists matched against each message element (the
element itself or a descendant): `outgoing` and `incoming`. A message that matches neither, or
both, has no provable direction: the read fails loudly rather than guessing.

Message-level fields (`message_*`) are looked up inside each `message` element; the special
selector `:scope` is the message element itself. Page-level elements are looked up in the page.
An `inbox_item` names its conversation by `from` (default `["@href"]`: the item's or its first
descendant's link, matched against `paths.conversation`; an attribute such as
`@data-conversation-id` may give the id itself). An item's visible text is its signature: a
conversation is read when it changes. `inbox_unread` (optional, looked up inside each item) names
the unread badge: it is then kept apart from the rest of the text, so the badge our own read
clears does not count as a change (which would cost a second read of every new message), while
a badge that appears or changes still does.

Times are part of a message's identity when the site gives it no id: a site that shows only
relative times ("5 min ago") needs an attribute with the absolute time (`@title`, `@datetime`),
or ids, since a relative time read at another moment resolves to another minute.
"""
from __future__ import annotations

import zoneinfo
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# element -> (required by default, kind). Kinds: "page" (looked up in the page), "field" (inside a
# message, has a value), "direction", "header" (page-level, has a value).
ELEMENTS: dict[str, tuple[bool, str]] = {
    "login_username": (True, "page"),
    "login_password": (True, "page"),
    "login_submit": (True, "page"),
    "logged_out": (False, "page"),        # any match: the page is the logged-out form
    "login_challenge": (False, "page"),   # a captcha / 2FA / device check / "unusual activity"
                                          # page: handed to a person, never solved
    "popup_close": (False, "page"),
    "inbox_item": (True, "page"),
    "inbox_unread": (False, "item"),      # the unread badge inside an inbox item (see below)
    "message": (True, "page"),
    "message_id": (False, "field"),
    "message_sender": (True, "field"),
    "message_text": (True, "field"),
    "message_time": (True, "field"),
    "message_direction": (True, "direction"),
    "date_header": (False, "header"),
    "older_messages": (False, "page"),
    "conversation_start": (False, "page"),  # shown on the oldest page: nothing older to read
    "reply_box": (True, "page"),
    "send_button": (True, "page"),
}
DEFAULT_FROM = {"inbox_item": ["@href"], "message_id": ["@data-message-id", "@data-id", "@id"],
                "message_time": ["@datetime", "text"], "older_messages": ["@href"]}
DEFAULT_FORMATS = {"message_time": ["iso8601"], "date_header": ["relative"]}


def has_date(pattern: str) -> bool:
    """Whether a strftime pattern names a date (else it is a time of day)."""
    return any(f"%{d}" in pattern for d in "dmbByYjUWaAcxGuV")


class Element(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    selectors: list[str] = []
    required: bool | None = None          # None: the element's default (ELEMENTS)
    from_: list[str] = Field(default_factory=list, alias="from")
    formats: list[str] = []
    outgoing: list[str] = []              # message_direction only
    incoming: list[str] = []

    @field_validator("from_")
    @classmethod
    def _sources(cls, v: list[str]) -> list[str]:
        for s in v:
            if s != "text" and not (s.startswith("@") and len(s) > 1):
                raise ValueError(f"source {s!r} must be 'text' or '@attribute'")
        return v

    @field_validator("selectors", "outgoing", "incoming")
    @classmethod
    def _no_blank(cls, v: list[str]) -> list[str]:
        if any(not s.strip() for s in v):
            raise ValueError("a selector must not be blank")
        return v


class SiteConf(BaseModel):
    """conf/sites/<site>.yaml: where the site is and how to read every element of it."""
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,40}$")
    base_url: str
    url_env: str | None = None            # an environment variable that overrides base_url
    timezone: str = "UTC"                 # the zone the site shows times of day in
    paths: dict[str, str]
    elements: dict[str, Element]
    anchor_messages: int = Field(3, ge=1, le=20)  # messages before a send that fingerprint its place
    # The site pushes changes into its open inbox page (a websocket or SSE channel its own client
    # renders). The session then keeps the inbox page open, is told of each change by the page
    # itself (a MutationObserver), reads the changed conversations at once, and reloads the inbox
    # only every `safety_poll_s` of the account (the channel may stop silently). Default: the
    # session reloads the inbox every `poll_interval_s`.
    live: bool = False

    @field_validator("paths")
    @classmethod
    def _paths(cls, v: dict[str, str]) -> dict[str, str]:
        missing = {"login", "inbox", "conversation"} - set(v)
        if missing:
            raise ValueError(f"missing paths {sorted(missing)}")
        if "{conversation_id}" not in v["conversation"]:
            raise ValueError("paths.conversation must contain {conversation_id}")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @model_validator(mode="after")
    def _elements(self) -> "SiteConf":
        unknown = set(self.elements) - set(ELEMENTS)
        if unknown:
            raise ValueError(f"unknown elements {sorted(unknown)} (known: {sorted(ELEMENTS)})")
        problems = []
        for name, (required, kind) in ELEMENTS.items():
            el = self.elements.get(name)
            if el is None:
                if required:
                    problems.append(f"elements.{name}: required")
                continue
            if el.required is None:
                el.required = required
            if kind == "direction":
                if not el.outgoing or not el.incoming:
                    problems.append(f"elements.{name}: needs both 'outgoing' and 'incoming' "
                                    "selectors (a message must prove its direction)")
            elif not el.selectors:
                problems.append(f"elements.{name}: has no selectors")
            if not el.from_:
                el.from_ = list(DEFAULT_FROM.get(name, ["text"]))
            if not el.formats and name in DEFAULT_FORMATS:
                el.formats = list(DEFAULT_FORMATS[name])
        problems += self._identity_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _identity_problems(self) -> list[str]:
        """Without site ids a message's time is part of its identity: it must read the same on
        every poll. "5 min ago" does not; a bare time of day only does under date headers."""
        if "message_id" in self.elements:
            return []
        formats = self.elements["message_time"].formats if "message_time" in self.elements else []
        problems = []
        if "ago" in formats:
            problems.append("elements.message_time: format 'ago' needs a message_id element (a "
                            "message read a minute later would resolve to another minute)")
        time_of_day = [f for f in formats if "%" in f and not has_date(f)]
        if time_of_day and "date_header" not in self.elements:
            problems.append(f"elements.message_time: time-of-day format(s) {time_of_day} need a "
                            "date_header element or a message_id element (the date would be a guess)")
        return problems

    def element(self, name: str) -> Element | None:
        return self.elements.get(name)

    def selectors(self, name: str) -> list[str]:
        el = self.elements.get(name)
        return list(el.selectors) if el else []


Direction = Literal["in", "out"]
