"""One MongoClient per process (bounded pool, timeouts) and the repositories over it."""
from __future__ import annotations

import threading
from functools import cached_property

from pymongo import MongoClient, WriteConcern
from pymongo.database import Database

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

_clients: dict[str, MongoClient] = {}
_clients_lock = threading.Lock()

# Writes whose loss would lose data wait for the journal.
JOURNALED = WriteConcern(w=1, j=True)


def client_for(uri: str) -> MongoClient:
    """The process-wide client for `uri` (pymongo clients are thread-safe and pool connections)."""
    with _clients_lock:
        c = _clients.get(uri)
        if c is None:
            c = MongoClient(uri, maxPoolSize=32, minPoolSize=0, connectTimeoutMS=5000,
                            serverSelectionTimeoutMS=10000, socketTimeoutMS=30000,
                            waitQueueTimeoutMS=10000, appname="replydesk", tz_aware=True)
            _clients[uri] = c
        return c


def close_client(uri: str) -> None:
    """Close and forget the process-wide client for `uri` (CLI exit, tests that stop a server)."""
    with _clients_lock:
        c = _clients.pop(uri, None)
    if c is not None:
        c.close()


class Store:
    """Facade over the replydesk collections of one database."""

    def __init__(self, uri: str, db_name: str):
        self.uri = uri
        self.db_name = db_name
        self.db: Database = client_for(uri).get_database(db_name, write_concern=JOURNALED)

    @classmethod
    def from_config(cls, config) -> "Store":
        return cls(config.settings.mongodb_uri, config.settings.mongodb_db)

    def __reduce__(self):  # picklable: rebuilt (with this process's client) on the other side
        return (Store, (self.uri, self.db_name))

    @cached_property
    def accounts(self) -> Accounts:
        return Accounts(self.db)

    @cached_property
    def conversations(self) -> Conversations:
        return Conversations(self.db)

    @cached_property
    def messages(self) -> Messages:
        return Messages(self.db)

    @cached_property
    def drafts(self) -> Drafts:
        return Drafts(self.db)

    @cached_property
    def outbox(self) -> Outbox:
        return Outbox(self.db)

    @cached_property
    def ai_failures(self) -> AIFailures:
        return AIFailures(self.db)

    @cached_property
    def dead_letters(self) -> DeadLetters:
        return DeadLetters(self.db)

    @cached_property
    def processed(self) -> Processed:
        return Processed(self.db)

    @cached_property
    def sends(self) -> Sends:
        return Sends(self.db)

    @cached_property
    def sheet_rows(self) -> SheetRows:
        return SheetRows(self.db)

    def ensure_indexes(self) -> None:
        """Create every index the queries need; idempotent, run at start-up."""
        for repo in (self.accounts, self.conversations, self.messages, self.drafts, self.outbox, self.processed,
                     self.sends, self.sheet_rows, self.dead_letters, self.ai_failures):
            repo.ensure_indexes()

    def ping(self) -> bool:
        self.db.client.admin.command("ping")
        return True
