"""What the session needs from a site: the `Site` protocol, the one view of a site that the
session's lifecycle, reader and sender have.

Two kinds implement it. The YAML-driven `SpecAdapter` (adapter.py) reads any site its spec
(conf/sites/<site>.yaml) can describe. A site the YAML cannot describe names a Python class in its
spec, `adapter: package.module:ClassName`; the session then builds that class, as
`ClassName(context)` with a `SiteContext`, instead. It is checked at start (`adapter_class`):
a value that cannot be imported, or a class that lacks a method of the protocol, stops the start
with an error naming the site file and the field.

The exactly-once rules stay the session's: it reads the conversation (`read_seen`), persists the
anchor (anchors.py, over the messages read) before `send`, and counts a send only by the reply
`send` returns after that anchor. Messages are `extract.Seen` (proven: sender, text, time,
direction) and `ChatMessage`s made of them by `identify` (ids stable across re-reads).
"""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Awaitable, Callable, Protocol

from contracts.settings import ConfigError

if TYPE_CHECKING:
    from playwright.async_api import Page

    from actors.browser.extract import Seen
    from actors.browser.inbox import InboxItem
    from actors.browser.limits import NodeSlots, SlidingWindowLimiter
    from actors.browser.selectors import Selectors
    from contracts.events import ChatMessage
    from contracts.settings import AccountConf, Config, Credentials
    from contracts.sitespec import SiteConf

# A live site's open inbox page calls this binding (exposed by the session) on every change.
WATCH_BINDING = "replydeskInboxChanged"


@dataclass
class SiteContext:
    """What a site class is built with: the account's page (its own context, login state
    restored), the config, its account and credentials, the selectors (misses make the session
    `degraded`; `save_artifacts` keeps a screenshot and the HTML of a failure), the pacing of
    navigations, the hook to call after a login (stores the login state), and the poll clock."""
    page: Page
    config: Config
    account: AccountConf
    credentials: Credentials
    selectors: Selectors
    navigations: SlidingWindowLimiter
    slots: NodeSlots
    on_login: Callable[[], Awaitable[None]]
    clock: Callable[[], datetime]

    @property
    def site(self) -> SiteConf:
        return self.config.site(self.account.site)


class Site(Protocol):
    """A site as the session uses it (SpecAdapter is the reference implementation)."""
    logins: int   # logins made by this adapter (logged at start)

    async def ensure_logged_in(self) -> None:
        """Open the inbox, logging in only when the restored session is missing or expired.
        Raises errors.NeedsLogin for a challenge (a person takes over), LoginFailed for
        rejected credentials."""

    async def login(self) -> None:
        """Log in again (the session expired as a reply was submitted: errors.LoggedOut)."""

    def on_inbox(self) -> bool:
        """The page shows the inbox."""

    async def watch(self) -> None:
        """A live site: have the open inbox call WATCH_BINDING on every change."""

    async def open_inbox(self) -> None:
        """Load the inbox page (watched, on a live site)."""

    async def inbox(self, *, reload: bool = True) -> list[InboxItem]:
        """The inbox items; `reload=False` reads the open inbox as it is."""

    async def conversation(self, conversation_id: str, cursor: dict | None,
                           max_pages: int) -> list[ChatMessage]:
        """The messages newer than the cursor's (oldest first), paged back until the cursor is
        found; a conversation with no cursor is read `max_pages` deep."""

    def day_of(self, message: ChatMessage) -> str | None:
        """The calendar day the message is shown under (kept on the cursor)."""

    def on_newest_page(self, conversation_id: str) -> bool:
        """The page is the conversation's newest page (where a reply is sent)."""

    async def open_conversation(self, conversation_id: str) -> None:
        """Open the conversation's newest page."""

    async def read_seen(self) -> list[Seen]:
        """The proven messages on the open conversation page, oldest first (raises when any
        message's direction cannot be proven: nothing is sent on such a page)."""

    def identify(self, conversation_id: str, seen: list[Seen]) -> list[ChatMessage]:
        """ChatMessages of `seen`, in order (extract.identify)."""

    async def send(self, conversation_id: str, text: str, anchor: list[list[str]],
                   after_click: Callable[[], None] | None = None) -> ChatMessage:
        """Submit the reply on the open conversation page, call `after_click` once submitted,
        and return it as read back after `anchor` (errors.SendNotConfirmed when it is not)."""

    def location(self) -> str:
        """Where the site is now (the page's URL), named in errors."""

    async def close(self) -> None:
        """Release what the adapter holds besides the page (the session closes the page)."""


def _methods() -> dict[str, bool]:
    """The protocol's methods, each with whether it is a coroutine function."""
    return {name: inspect.iscoroutinefunction(fn) for name, fn in vars(Site).items()
            if not name.startswith("_") and inspect.isfunction(fn)}


def adapter_class(site_file: str, spec: SiteConf) -> type | None:
    """The class a site spec names in `adapter: module:Class` (None: the YAML-driven adapter),
    checked against the protocol; ConfigError naming `sites/<site_file>.yaml adapter` when it
    cannot be used."""
    value = spec.adapter
    if value is None:
        return None
    where = f"config error: sites/{site_file}.yaml adapter: {value!r}"
    module_name, colon, class_name = value.partition(":")
    if not colon or not module_name or not class_name:
        raise ConfigError(f"{where}: must be module:Class (e.g. mysites.example:ExampleSite)")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:   # noqa: BLE001 - whatever the import raised, named in the error
        raise ConfigError(f"{where}: module {module_name!r} cannot be imported "
                          f"({type(exc).__name__}: {exc})") from None
    cls = getattr(module, class_name, None)
    if not inspect.isclass(cls):
        raise ConfigError(f"{where}: module {module_name!r} has no class {class_name!r}")
    missing = [n for n in _methods() if not callable(getattr(cls, n, None))]
    not_async = [n for n, is_async in _methods().items()
                 if n not in missing and is_async != inspect.iscoroutinefunction(getattr(cls, n))]
    if missing or not_async:
        problems = ([f"missing {', '.join(missing)}"] if missing else []) + \
                   ([f"async/sync not as the protocol says: {', '.join(not_async)}"] if not_async else [])
        raise ConfigError(f"{where}: class {class_name!r} does not satisfy the Site protocol "
                          f"(actors/browser/site.py): {'; '.join(problems)}")
    return cls


def check_adapters(config: Config) -> None:
    """Every site's `adapter` class can be used (at start, before any session)."""
    for name, spec in config.sites.items():
        adapter_class(name, spec)
