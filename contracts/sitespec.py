"""The declarative site spec: conf/sites/<site>.yaml says everything about a site's markup.

Every element the adapter reads has ordered fallback `selectors` (the first that matches wins;
metrics and logs name the selector text that matched). Value fields say where their value comes
from (`from`: `text`, or `@attribute`, tried in order; the first non-empty wins) and time fields
how it is parsed (`formats`, tried in order):

- `iso8601`: `2026-12-02T22:51:07Z` (a missing zone means the site's `timezone`)
- `epoch` / `epoch_ms`: seconds / milliseconds since 1970 (`epoch` also reads MeetMe's
  `S.mmm.uuu`, seconds with milliseconds and microseconds as two fractions)
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

Single-page apps (every key below is optional; a spec without them reads as before):
- `hosts`: more origins besides `base_url` (`{name: {url, env}}`, `env` overrides `url` as
  `url_env` overrides `base_url`). A path may start with `{name}` (`{app}/#chat`), be absolute
  (`https://...`), or be a path on `base_url`. Routes may live in the query or the fragment
  (`{app}/#chat/member/{conversation_id}/chat`): a URL is compared with a route on its path,
  plus its query when the route has `?`, plus its fragment when the route has `#`
  (routes.py). Conversation ids are read from an item's full link by that pattern.
- `ready_timeout_s` and the elements `inbox_ready` / `conversation_ready`: a client-rendered
  page is read only once one of them shows (rendered after the navigation); `inbox_empty`: an
  inbox with no items is empty only when it shows this marker.
- `login`: `type_delay_ms` (typed key by key), `submit` (`click`, `enter`, `either`),
  `success_url` (a route the browser reaches when logged in), `attempts` / `backoff_s` / `settle_s`
  (a login that ends neither logged in nor with `login_error` is tried again after a backoff,
  then handed to a person as needs_login). Elements: `login_open` (clicked to show the form),
  `logged_in` (a marker of success), `login_error` (the site rejected the credentials).
- `navigate`: `conversation` / `inbox`: `url` (default), `click` (the inbox item; `nav_inbox`),
  or `both` (a click, then the URL if the click did not get there).
- `conversation_contact`: the contact's name on the conversation page; with it `message_sender`
  may be left out (incoming: the contact, outgoing: the account).
- `inbox_typing` (inside an item; never part of its signature), `inbox_preview` and
  `inbox_status` (an item whose status element matches, or whose preview matches one of its
  `patterns`, shows our own message or a status: no new incoming text, not a change).
- `send_by`: `click` (default), `enter` (Enter in the reply box; `send_button` optional) or
  `either` (the button if it is there and enabled, else Enter). `message_pending`: an outgoing
  message that matches it is not sent yet (never read, never a confirmation).
- `older_by: scroll` with `scroll_container`: older messages load by scrolling the container to
  the top (until the cursor is found, `conversation_start` shows, or nothing more loads).
- `frame` on any element: a selector of the iframe the element is in.

A site the YAML cannot describe: `adapter: package.module:ClassName` names a Python class that
implements the session's `Site` protocol (actors/browser/site.py); the session builds it instead
of the YAML-driven adapter. `paths` and `elements` are then optional (that class reads the site);
a value that cannot be imported, or a class that does not satisfy the protocol, stops the start.
"""
from __future__ import annotations

import re
import zoneinfo
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

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
    # single-page apps (module docstring)
    "login_open": (False, "page"),        # clicked to show the login form (a modal)
    "logged_in": (False, "page"),         # shown only to a logged-in user
    "login_error": (False, "page"),       # the site rejected the credentials
    "inbox_ready": (False, "page"),       # the inbox has rendered
    "inbox_empty": (False, "page"),       # "no conversations yet"
    "inbox_preview": (False, "item"),     # the preview line inside an inbox item
    "inbox_status": (False, "item"),      # a preview that is our message or a status
    "inbox_typing": (False, "item"),      # a typing indicator: never part of the signature
    "nav_inbox": (False, "page"),         # the link back to the inbox (navigate.inbox: click)
    "conversation_ready": (False, "page"),
    "conversation_contact": (False, "header"),  # the contact's name (header of the conversation)
    "message_pending": (False, "flag"),   # inside a message: not yet confirmed by the site
    "scroll_container": (False, "page"),  # older_by: scroll
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
    patterns: list[str] = []              # inbox_status only: regular expressions on the preview
    frame: str | None = None              # the selector of the iframe the element is in

    @field_validator("patterns")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        for p in v:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"pattern {p!r} is not a regular expression: {exc}") from None
        return v

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


class Host(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(pattern=r"^https?://[^/]+/?$")
    env: str | None = None                # an environment variable that overrides url


Mode = Literal["url", "click", "both"]


class LoginSteps(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type_delay_ms: int = Field(0, ge=0, le=1000)  # 0: fill each field at once
    submit: Literal["click", "enter", "either"] = "click"
    success_url: str | None = None        # a route (as paths) reached only when logged in
    attempts: int = Field(3, ge=1, le=10)  # logins that end neither logged in nor with an error
    backoff_s: float = Field(5.0, ge=0)   # before the 2nd attempt; doubled after each
    settle_s: float = Field(15.0, gt=0)   # how long a submit may take to show its outcome


class Navigate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    conversation: Mode = "url"
    inbox: Mode = "url"


class SiteConf(BaseModel):
    """conf/sites/<site>.yaml: where the site is and how to read every element of it."""
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,40}$")
    base_url: str
    url_env: str | None = None            # an environment variable that overrides base_url
    timezone: str = "UTC"                 # the zone the site shows times of day in
    # a Python class that reads the site instead of this spec (module docstring)
    adapter: str | None = None
    paths: dict[str, str] = {}
    elements: dict[str, Element] = {}
    anchor_messages: int = Field(3, ge=1, le=20)  # messages before a send that fingerprint its place
    # The site pushes changes into its open inbox page (a websocket or SSE channel its own client
    # renders). The session then keeps the inbox page open, is told of each change by the page
    # itself (a MutationObserver), reads the changed conversations at once, and reloads the inbox
    # only every `safety_poll_s` of the account (the channel may stop silently). Default: the
    # session reloads the inbox every `poll_interval_s`.
    live: bool = False
    # single-page apps (module docstring)
    hosts: dict[str, Host] = {}
    ready_timeout_s: float = Field(10.0, gt=0)
    login: LoginSteps = LoginSteps()
    navigate: Navigate = Navigate()
    send_by: Literal["click", "enter", "either"] = "click"
    older_by: Literal["link", "scroll"] = "link"

    @field_validator("adapter")
    @classmethod
    def _adapter(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", v):
            raise ValueError(f"{v!r} must be module:Class (a Python class that implements "
                             "actors/browser/site.py's Site, e.g. mysites.example:ExampleSite)")
        return v

    @field_validator("paths")
    @classmethod
    def _paths(cls, v: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        if info.data.get("adapter"):   # its own class reads the site: routes are its business
            return v
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
        if self.adapter is not None:   # its own class reads the site
            return self
        if not self.paths:
            raise ValueError("paths: required (or adapter: module:Class)")
        problems = self._spa_problems()
        for name, (required, kind) in ELEMENTS.items():
            el = self.elements.get(name)
            if name == "message_sender" and "conversation_contact" in self.elements:
                required = False          # incoming: the contact, outgoing: the account
            if name == "send_button" and self.send_by == "enter":
                required = False
            if el is None:
                if required:
                    problems.append(f"elements.{name}: required")
                continue
            if el.required is None:
                el.required = required
            if el.patterns and name != "inbox_status":
                problems.append(f"elements.{name}: 'patterns' is for inbox_status only")
            if kind == "direction":
                if not el.outgoing or not el.incoming:
                    problems.append(f"elements.{name}: needs both 'outgoing' and 'incoming' "
                                    "selectors (a message must prove its direction)")
            elif not el.selectors and not (name == "inbox_status" and el.patterns):
                problems.append(f"elements.{name}: has no selectors")
            if not el.from_:
                el.from_ = list(DEFAULT_FROM.get(name, ["text"]))
            if not el.formats and name in DEFAULT_FORMATS:
                el.formats = list(DEFAULT_FORMATS[name])
        problems += self._identity_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _spa_problems(self) -> list[str]:
        problems = []
        names = set(self.hosts)
        routes = dict(self.paths)
        if self.login.success_url:
            routes["login.success_url"] = self.login.success_url
        for key, route in routes.items():
            m = re.match(r"^\{([a-z0-9_]+)\}", route)
            if m and m.group(1) != "conversation_id" and m.group(1) not in names:
                problems.append(f"{key}: host {{{m.group(1)}}} is not in hosts {sorted(names)}")
            elif not (m or route.startswith(("/", "http://", "https://", "#", "?"))):
                problems.append(f"{key}: {route!r} must start with '/', '{{host}}' or http(s)://")
        if self.older_by == "scroll" and "scroll_container" not in self.elements:
            problems.append("older_by: scroll needs a scroll_container element")
        if self.navigate.inbox != "url" and "nav_inbox" not in self.elements:
            problems.append(f"navigate.inbox: {self.navigate.inbox} needs a nav_inbox element")
        status = self.elements.get("inbox_status")
        if status is not None and status.patterns and "inbox_preview" not in self.elements:
            problems.append("elements.inbox_status: 'patterns' need an inbox_preview element")
        if self.send_by == "enter" and "reply_box" not in self.elements:
            problems.append("send_by: enter needs a reply_box element")
        return problems

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
