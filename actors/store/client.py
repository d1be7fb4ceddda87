"""The process's MongoDB clients and `AsyncStore`, the repositories over pymongo's AsyncMongoClient.

An AsyncMongoClient belongs to the event loop that first uses it, so `client_for(uri)` keeps one
per (uri, running loop): the review desk's loop, the AI worker's, a browser session's. Same
options everywhere (bounded pool, timeouts, appname, tz-aware datetimes); databases are opened
with journaled writes. `sync_client_for(uri)` is the one synchronous MongoClient per process:
`Store` (actors/store/sync.py) runs the same repositories inline over it for synchronous code,
and `Store.db` is its Database for raw and admin use (backups, tests, benchmarks).
"""
from __future__ import annotations

import asyncio
import threading
from typing import Any

from pymongo import AsyncMongoClient, MongoClient, WriteConcern
from pymongo.asynchronous.database import AsyncDatabase

from actors.store.accounts import Accounts
from actors.store.aifailures import AIFailures
from actors.store.conversations import Conversations
from actors.store.deadletters import DeadLetters
from actors.store.drafts import Drafts
from actors.store.messages import Messages
from actors.store.outbox import Outbox
from actors.store.processed import Processed
from actors.store.sends import Sends
from actors.store.sheetrows import SheetRows
from actors.store.summaries import Summaries

# the repositories of a store, by attribute name (AsyncStore's properties; Store's same names)
REPOSITORIES = ("accounts", "conversations", "messages", "drafts", "outbox", "processed", "sends",
                "sheet_rows", "dead_letters", "summaries", "ai_failures")
# Writes whose loss would lose data wait for the journal.
JOURNALED = WriteConcern(w=1, j=True)
OPTIONS: dict[str, Any] = dict(maxPoolSize=32, minPoolSize=0, connectTimeoutMS=5000,
                               serverSelectionTimeoutMS=10000, socketTimeoutMS=30000,
                               waitQueueTimeoutMS=10000, appname="replydesk", tz_aware=True)

_async: dict[tuple[str, asyncio.AbstractEventLoop], AsyncMongoClient] = {}
_sync: dict[str, MongoClient] = {}
_lock = threading.Lock()


def running_loop(what: str = "AsyncStore") -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(f"{what} is used from a coroutine on a running event loop; "
                           f"synchronous code uses actors.store.Store") from None


def client_for(uri: str) -> AsyncMongoClient:
    """The AsyncMongoClient for `uri` on the running event loop (made on first use)."""
    loop = running_loop("client_for")
    with _lock:
        for key in [k for k in _async if k[1].is_closed()]:   # a finished asyncio.run's client
            del _async[key]
        c = _async.get((uri, loop))
        if c is None:
            c = _async[(uri, loop)] = AsyncMongoClient(uri, **OPTIONS)
        return c


def sync_client_for(uri: str) -> MongoClient:
    """The process-wide synchronous client for `uri` (raw and admin use: `Store.db`)."""
    with _lock:
        c = _sync.get(uri)
        if c is None:
            c = _sync[uri] = MongoClient(uri, **OPTIONS)
        return c


def close_client(uri: str) -> None:
    """Close and forget every client for `uri`: the synchronous one and the async one of each
    loop (CLI exit, tests that stop a server). Callable from any thread; on a loop's own thread
    its client is closed by a task."""
    with _lock:
        sync = _sync.pop(uri, None)
        mine = [(k[1], _async.pop(k)) for k in [k for k in _async if k[0] == uri]]
    if sync is not None:
        sync.close()
    try:
        here = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    for loop, client in mine:
        if loop.is_closed():
            continue
        if loop is here:
            loop.create_task(client.close())
        elif loop.is_running():
            asyncio.run_coroutine_threadsafe(client.close(), loop).result(30)
        # a loop that is not running cannot close its client here: dropped, its sockets with it


class OneDatabase:
    """A store of one database: made from the config, pickled as its address (rebuilt with the
    other process's clients on the other side)."""

    def __init__(self, uri: str, db_name: str):
        self.uri = uri
        self.db_name = db_name

    @classmethod
    def from_config(cls, config):
        if config.settings.mongodb_uri is None:   # only `./run up` runs without it (it embeds one)
            raise ValueError("MONGODB_URI: not set (`./run up` starts its embedded database first)")
        return cls(config.settings.mongodb_uri, config.settings.mongodb_db)

    def __reduce__(self):
        return (type(self), (self.uri, self.db_name))


class AsyncStore(OneDatabase):
    """The replydesk collections of one database, as async repositories. Usable from any event
    loop (the client and repositories of the loop a call runs on are used); picklable."""

    def __init__(self, uri: str, db_name: str):
        super().__init__(uri, db_name)
        self._bound: dict[asyncio.AbstractEventLoop, dict[str, Any]] = {}

    def _repos(self) -> dict[str, Any]:
        loop = running_loop()
        repos = self._bound.get(loop)
        if repos is None:
            for old in [k for k in self._bound if k.is_closed()]:
                del self._bound[old]
            repos = self._bound[loop] = {
                "db": client_for(self.uri).get_database(self.db_name, write_concern=JOURNALED)}
        return repos

    def _repo(self, name: str, cls: type) -> Any:
        repos = self._repos()
        repo = repos.get(name)
        if repo is None:
            repo = repos[name] = cls(repos["db"])
        return repo

    @property
    def db(self) -> AsyncDatabase:
        return self._repos()["db"]

    @property
    def accounts(self) -> Accounts:
        return self._repo("accounts", Accounts)

    @property
    def conversations(self) -> Conversations:
        return self._repo("conversations", Conversations)

    @property
    def messages(self) -> Messages:
        return self._repo("messages", Messages)

    @property
    def drafts(self) -> Drafts:
        return self._repo("drafts", Drafts)

    @property
    def outbox(self) -> Outbox:
        return self._repo("outbox", Outbox)

    @property
    def ai_failures(self) -> AIFailures:
        return self._repo("ai_failures", AIFailures)

    @property
    def dead_letters(self) -> DeadLetters:
        return self._repo("dead_letters", DeadLetters)

    @property
    def processed(self) -> Processed:
        return self._repo("processed", Processed)

    @property
    def sends(self) -> Sends:
        return self._repo("sends", Sends)

    @property
    def sheet_rows(self) -> SheetRows:
        return self._repo("sheet_rows", SheetRows)

    @property
    def summaries(self) -> Summaries:
        return self._repo("summaries", Summaries)

    async def ensure_indexes(self) -> None:
        """Create every index the queries need; idempotent, run at start-up."""
        for name in REPOSITORIES:
            await getattr(self, name).ensure_indexes()

    async def ping(self) -> bool:
        await self.db.client.admin.command("ping")
        return True
