"""A database restart mid-run (graceful and SIGKILL): no acknowledged message is lost, and the
process's one MongoClient reconnects by itself."""
from __future__ import annotations

import threading
import time

import pytest
from pymongo.errors import PyMongoError

from actors.store import Store
from actors.store.client import close_client
from contracts.events import ChatMessage
from contracts.ids import message_id
from standins.mongo import MongoServer

pytestmark = pytest.mark.timeout(120)


def msg(i: int) -> ChatMessage:
    return ChatMessage(message_id=message_id("acct", "c1", f"s{i}", "bob", f"t{i}", f"m{i}"),
                       account_id="acct", site="meetme", conversation_id="c1",
                       site_message_id=f"s{i}", sender="bob", sent_at=f"t{i}", text=f"m{i}")


class Producer(threading.Thread):
    """Inserts messages one by one as a browser actor would, retrying a failed insert (the insert
    is idempotent); records each message the server acknowledged."""

    def __init__(self, store: Store, total: int):
        super().__init__(daemon=True)
        self.store, self.total = store, total
        self.acked: list[str] = []
        self.errors = 0

    def run(self) -> None:
        for i in range(self.total):
            m = msg(i)
            while True:
                try:
                    self.store.messages.insert([m])
                    self.acked.append(m.message_id)
                    break
                except PyMongoError:
                    self.errors += 1
                    time.sleep(0.05)


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
def test_restart_mid_run_loses_no_acknowledged_message(tmp_path, kill):
    server = MongoServer(storage=tmp_path / "db").start()
    try:
        store = Store(server.uri, "restart")
        store.ensure_indexes()
        producer = Producer(store, total=600)
        producer.start()
        deadline = time.monotonic() + 30
        while len(producer.acked) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        acked_before = len(producer.acked)
        server.stop(kill=kill)
        server.start()
        producer.join(60)
        assert not producer.is_alive()
        assert 200 <= acked_before < 600, "the restart must happen mid-run"

        # the same client (never recreated) works again, and every acknowledged write is there
        stored = {d["_id"] for d in store.messages.coll.find({}, {"_id": 1})}
        missing = set(producer.acked) - stored
        assert not missing, f"{len(missing)} acknowledged messages lost"
        assert len(stored) == 600 and store.ping()
        print(f"acked before restart {acked_before}, failed attempts during it {producer.errors}")
    finally:
        close_client(server.uri)
        server.close()
