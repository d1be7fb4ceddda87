"""A site the YAML cannot describe: conversations held in memory, read and written by a Python
class that implements the session's `Site` protocol (actors/browser/site.py). A site spec names it
with `adapter: tests.memsite:MemorySite`; tests put messages in `WORLD` and read what was sent."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from actors.browser.anchors import after_anchor, sent_after
from actors.browser.extract import Seen, identify
from actors.browser.inbox import InboxItem
from actors.browser.site import SiteContext
from contracts.events import ChatMessage


class World:
    """The site's side: its conversations (oldest message first) and the replies it received."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.threads: dict[str, list[Seen]] = {}
        self.sent: list[tuple[str, str]] = []
        self.now = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)

    def inject(self, conversation_id: str, sender: str, text: str, direction: str = "in") -> None:
        self.now += timedelta(minutes=1)
        thread = self.threads.setdefault(conversation_id, [])
        thread.append(Seen(f"{conversation_id}-{len(thread)}", sender, text, self.now, direction))


WORLD = World()


class MemorySite:
    """The Site protocol over WORLD; `opened` is the conversation shown (None: the inbox)."""

    def __init__(self, context: SiteContext):
        self.context = context
        self.logins = 0
        self.opened: str | None = None
        self.closed = False

    async def ensure_logged_in(self) -> None:
        await self.login()

    async def login(self) -> None:
        self.logins += 1
        await self.context.on_login()   # the session stores the login state

    def on_inbox(self) -> bool:
        return self.opened is None

    async def watch(self) -> None:
        pass

    async def open_inbox(self) -> None:
        self.opened = None

    async def inbox(self, *, reload: bool = True) -> list[InboxItem]:
        self.opened = None
        return [InboxItem.of(cid, f"{msgs[-1].sender}: {msgs[-1].text}", None)
                for cid, msgs in WORLD.threads.items()]

    async def conversation(self, conversation_id: str, cursor: dict | None,
                           max_pages: int) -> list[ChatMessage]:
        self.opened = conversation_id
        msgs = self.identify(conversation_id, WORLD.threads.get(conversation_id, []))
        last = (cursor or {}).get("last_message_id")
        ids = [m.message_id for m in msgs]
        return msgs[ids.index(last) + 1:] if last in ids else msgs

    def day_of(self, message: ChatMessage) -> str | None:
        return message.sent_at[:10]

    def on_newest_page(self, conversation_id: str) -> bool:
        return self.opened == conversation_id

    async def open_conversation(self, conversation_id: str) -> None:
        self.opened = conversation_id

    async def read_seen(self) -> list[Seen]:
        return list(WORLD.threads.get(self.opened or "", []))

    def identify(self, conversation_id: str, seen: list[Seen]) -> list[ChatMessage]:
        return identify(self.context.account.id, self.context.site.name, conversation_id, seen)

    async def send(self, conversation_id: str, text: str, anchor: list[list[str]],
                   after_click=None) -> ChatMessage:
        WORLD.inject(conversation_id, "me", text, "out")
        WORLD.sent.append((conversation_id, text))
        if after_click:
            after_click()
        after = after_anchor(WORLD.threads[conversation_id], anchor)
        assert after is not None and sent_after(after, text) == 1
        return self.identify(conversation_id, WORLD.threads[conversation_id])[-1]

    def location(self) -> str:
        return f"memory:{self.opened or 'inbox'}"

    async def close(self) -> None:
        self.closed = True


class HalfSite:
    """Reads, but cannot send, and its inbox is not async: not a Site."""

    def __init__(self, context: SiteContext):
        self.context = context

    def inbox(self, *, reload: bool = True) -> list:
        return []
