"""The synchronous Store: the async repositories run inline (actors/store/sync.py, inline.py)."""
from __future__ import annotations

import asyncio
import pickle

import pytest

from actors.store import AsyncStore
from contracts.events import ChatMessage


def _msg(i: int, conv: str = "c1") -> ChatMessage:
    return ChatMessage(message_id=f"a:{conv}:{i}", account_id="a", site="meetme", conversation_id=conv,
                       site_message_id=f"s{i}", sender="alex", text=f"hello {i}",
                       sent_at=f"2026-11-25T10:0{i}:00Z")


def test_repositories_run_inline_in_the_callers_thread_without_a_loop(store):
    import threading

    from actors.store.inline import run_inline
    seen: list[threading.Thread] = []
    coll = store.inline.messages.coll
    real_find = coll.target.find

    def find(*a, **k):                                # the synchronous client's call, in this thread
        seen.append(threading.current_thread())
        return real_find(*a, **k)
    coll.target.find = find
    try:
        store.messages.insert([_msg(0)])
        assert store.messages.history("a", "c1")[1] == 1
    finally:
        del coll.target.find
    assert seen and set(seen) == {threading.current_thread()}

    async def waits_on_a_sleep() -> None:             # not a database call: stopped, named
        await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="only database calls"):
        run_inline(waits_on_a_sleep())


def test_async_store_serves_any_loop_and_both_stores_pickle(store):
    store.messages.insert([_msg(0), _msg(1)])
    aio = AsyncStore(store.uri, store.db_name)

    async def read():
        return await aio.messages.history("a", "c1")
    for _ in range(2):                                # two loops, one after the other
        history, seq = asyncio.run(read())
        assert [m.text for m in history] == ["hello 0", "hello 1"] and seq == 2
    for s in (store, aio):
        copy = pickle.loads(pickle.dumps(s))
        assert type(copy) is type(s) and (copy.uri, copy.db_name) == (s.uri, s.db_name)
    with pytest.raises(RuntimeError, match="running event loop"):
        aio.drafts                                    # noqa: B018 -- outside a loop: a clear error


def test_the_outbox_reader_and_a_cursor_work_synchronously(store):
    from contracts.events import MessageSeen
    store.ensure_indexes()
    events = [MessageSeen.example().model_copy(update={"event_id": f"message.seen:m{i}"}) for i in range(3)]
    assert store.outbox.add(events) == 3
    with store.outbox.reader() as reader:             # async with, change stream and scan
        rows, position = reader.read(10)
    assert [r["_id"] for r in rows] == [e.event_id for e in events] and position.horizon is not None
    scanned = [r["_id"] for r in store.outbox.created_since(None, 2)]   # an AsyncCursor, iterated
    assert scanned == [e.event_id for e in events]
    pages = list(store.sheet_rows.pages(store.outbox.coll, page=2))   # a sync collection passed in
    assert [len(p) for p in pages] == [2, 1]
