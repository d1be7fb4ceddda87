"""The MongoDB store against the wire server: unique keys as the idempotency gate, indexes,
journaled writes, atomic draft transitions."""
from __future__ import annotations

import asyncio

import threading
from concurrent.futures import ThreadPoolExecutor

from actors.store import Store
from actors.store.client import JOURNALED, client_for, sync_client_for
from actors.store.drafts import PENDING, SENDABLE
from contracts.events import ChatMessage, DraftCreated, MessageSeen
from contracts.ids import draft_id, message_id


def msg(i: int, conv: str = "c1", text: str | None = None) -> ChatMessage:
    text = text or f"hello {i}"
    return ChatMessage(message_id=message_id("acct", conv, None, "bob", f"t{i}", text),
                       account_id="acct", site="meetme", conversation_id=conv, sender="bob",
                       sent_at=f"t{i}", text=text)


def deliver(store: Store, event: MessageSeen) -> None:
    """What a consumer does with one message.seen: store it, draft it, queue the draft event."""
    m = event.message
    store.messages.insert([m])
    did = draft_id(m.account_id, m.conversation_id, m.message_id)
    store.drafts.insert({"_id": did, "account_id": m.account_id, "conversation_id": m.conversation_id,
                         "message_ids": [m.message_id], "classification": "needs_reply", "text": "hi"})
    store.outbox.add([DraftCreated.make(draft_id=did, account_id=m.account_id,
                                        conversation_id=m.conversation_id, message_ids=[m.message_id],
                                        classification="needs_reply", text="hi")])
    store.processed.mark("ai", event.event_id)


def test_same_event_three_times_gives_one_message_one_draft_one_outbox_row(store):
    event = MessageSeen.of(msg(1))
    for _ in range(3):
        deliver(store, event)
    assert store.messages.count() == 1
    assert store.drafts.count() == 1
    assert store.outbox.coll.count_documents({}) == 1
    assert store.processed.seen("ai", event.event_id)
    assert not store.processed.mark("ai", event.event_id)


def test_insert_returns_only_new_messages_in_order(store):
    first = [msg(i) for i in range(5)]
    assert store.messages.insert(first) == first
    mixed = [msg(4), msg(5), msg(2), msg(6)]
    assert [m.message_id for m in store.messages.insert(mixed)] == [msg(5).message_id, msg(6).message_id]
    assert store.messages.insert([]) == []
    assert store.messages.count() == 7


def test_same_batch_inserted_by_many_threads_is_stored_once(store):
    batch = [msg(i) for i in range(50)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: store.messages.insert(batch), range(8)))
    won = [m.message_id for r in results for m in r]
    assert sorted(won) == sorted(m.message_id for m in batch)  # each one is "new" exactly once
    assert store.messages.count() == 50


def test_concurrent_approvals_exactly_one_wins(store):
    did = "d-race"
    assert store.drafts.insert({"_id": did, "account_id": "acct", "conversation_id": "c1",
                                "text": "hi", "classification": "needs_reply"})
    n = 24
    barrier = threading.Barrier(n)

    def approve(i: int):
        barrier.wait()
        return store.drafts.transition(did, PENDING, "approved", approved_by=f"user{i}")

    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(approve, range(n)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    doc = store.drafts.get(did)
    assert doc["status"] == "approved" and doc["approved_by"] == winners[0]["approved_by"]
    # and a send racing a second approval: only one transition from approved to sending
    with ThreadPoolExecutor(n) as pool:
        sends = list(pool.map(lambda _: store.drafts.transition(did, SENDABLE, "sending"), range(n)))
    assert sum(r is not None for r in sends) == 1


def test_rejected_draft_cannot_be_approved(store):
    store.drafts.insert({"_id": "d1", "account_id": "a", "conversation_id": "c", "text": "x"})
    assert store.drafts.transition("d1", PENDING, "rejected") is not None
    assert store.drafts.transition("d1", PENDING, "approved") is None
    assert store.drafts.get("d1")["status"] == "rejected"


def test_indexes_created_idempotently_and_cover_queries(store):
    store.ensure_indexes()
    store.ensure_indexes()
    idx = {name: [k for k, _ in spec["key"]]
           for coll in ("messages", "drafts", "decisions", "outbox", "cursors")
           for name, spec in store.db[coll].index_information().items()}
    assert idx["conversation_order"] == ["account_id", "conversation_id", "seq"]
    assert idx["status_created"] == ["status", "created_at"]
    assert idx["account_status_created"][:2] == ["account_id", "status"]
    assert idx["class_status_created"][:2] == ["classification", "status"]
    assert idx["conversation_drafts"][:2] == ["account_id", "conversation_id"]
    assert idx["draft_decisions"][0] == "draft_id"
    assert idx["created"] == ["created_at"]
    assert store.db["cursors"].index_information()["account_conversation"].get("unique") is True


def test_writes_are_journaled_and_one_client_per_process(make_config, store):
    assert store.db.write_concern == JOURNALED and JOURNALED.document == {"w": 1, "j": True}
    for name in ("messages", "drafts", "outbox", "sheet_rows", "processed_events"):
        assert getattr(store.db[name], "write_concern").document.get("j") is True
    other = Store.from_config(make_config())
    assert other.db.client is store.db.client is sync_client_for(store.uri)
    opts = store.db.client.options.pool_options
    assert opts.max_pool_size == 32 and opts.connect_timeout and opts.socket_timeout

    async def on_the_loop():   # the repositories' AsyncMongoClient: one per loop, same options
        client = client_for(store.uri)
        assert client is client_for(other.uri) and store.aio.db.client is client
        assert store.aio.db.write_concern == JOURNALED
        assert client.options.pool_options.max_pool_size == 32 and client.codec_options.tz_aware
        return client
    one_loop = asyncio.new_event_loop()
    try:
        assert one_loop.run_until_complete(on_the_loop()) is one_loop.run_until_complete(on_the_loop())
    finally:
        one_loop.close()
    # a repository's `coll` for synchronous code: its synchronous collection, with the same options
    assert store.conversations.coll.write_concern.document == {"w": 1}
    assert store.drafts.coll.write_concern.document == {"w": 1, "j": True}
    assert store.drafts.coll.database.client is store.db.client


def test_sheet_rows_pages_walk_a_collection_by_id_and_know_marked_ids(store):
    store.messages.insert([msg(i) for i in range(25)])
    ids = sorted(d["_id"] for d in store.messages.coll.find({}, {"_id": 1}))
    pages = list(store.sheet_rows.pages(store.messages.coll, page=4))
    assert [len(p) for p in pages] == [4] * 6 + [1]
    assert [d["_id"] for p in pages for d in p] == ids
    store.sheet_rows.mark(ids[::2])
    assert store.sheet_rows.present(ids) == set(ids[::2])


def test_cursor_and_storage_state_upserts(store):
    store.accounts.set_cursor("acct", "c1", last_message_id="m1")
    store.accounts.set_cursor("acct", "c1", last_message_id="m2")
    assert store.accounts.cursor("acct", "c1")["last_message_id"] == "m2"
    assert store.accounts.cursors.count_documents({}) == 1
    store.accounts.save_storage_state("acct", {"cookies": []})
    assert store.accounts.storage_state("acct") == {"cookies": []}


def test_concurrent_upserts_of_one_cursor_never_fail(store):
    n = 16
    barrier = threading.Barrier(n)

    def bump(i: int) -> None:
        barrier.wait()
        store.accounts.set_cursor("acct", "race", last=i)
        store.accounts.save_storage_state("acct-race", {"i": i})

    with ThreadPoolExecutor(n) as pool:
        list(pool.map(bump, range(n)))
    assert store.accounts.cursors.count_documents({"conversation_id": "race"}) == 1
    assert store.accounts.state.count_documents({"_id": "acct-race"}) == 1


def test_messages_known_by_content_key_unless_their_site_ids_differ(store):
    from contracts.ids import content_key

    def m(mid, site_id, text="ok"):
        return ChatMessage(message_id=mid, account_id="acct", site="s", conversation_id="c9",
                           site_message_id=site_id, sender="bob", text=text, sent_at="t",
                           content_key=content_key("bob", "2026-12-02T10:00Z", text, 0))
    assert [x.message_id for x in store.messages.insert([m("acct:c9:m1", "m1")])] == ["acct:c9:m1"]
    # the same message read under a markup without ids: known, under its stored id
    [same] = store.messages.insert([m("acct:c9:hX", None)], keep_known=True)
    assert same.message_id == "acct:c9:m1" and store.messages.count({"conversation_id": "c9"}) == 1
    # another site id with the same content is another message (its occurrence was misread)
    assert [x.message_id for x in store.messages.insert([m("acct:c9:m2", "m2")])] == ["acct:c9:m2"]
    seqs = [d["seq"] for d in store.messages.coll.find({"conversation_id": "c9"}).sort("seq", 1)]
    assert len(seqs) == 2 and seqs[0] < seqs[1]


def test_a_classification_from_an_older_history_never_overwrites_a_newer_one(store):
    """Two workers racing on one conversation: whichever records first, the state ends at the
    newest history, and each learns what it supersedes or is superseded by (one round trip)."""
    conv = store.conversations

    def record(seq: int, draft: str | None):
        return conv.record_classification(account_id="acct", conversation_id="c1",
                                          last_message_id=f"m{seq}", classification="needs_reply",
                                          draft_id=draft, seq=seq)
    assert record(1, "d1") == (True, None)                      # the first decision
    recorded, before = record(3, "d3")                          # newer: supersedes d1
    assert recorded and before["draft_id"] == "d1" and before["seq"] == 1
    recorded, newer = record(2, "d2")                           # older, written later
    assert not recorded and newer["draft_id"] == "d3" and newer["seq"] == 3
    recorded, before = record(3, "d3")                          # a redelivery of the newest
    assert recorded and before["draft_id"] == "d3"
    assert conv.get("acct", "c1")["draft_id"] == "d3"
    # a state recorded before states knew their seq is overwritten, not taken for a newer one
    conv.coll.update_one({"_id": conv.key("acct", "c2")}, {"$set": {"draft_id": "old"}}, upsert=True)
    recorded, before = conv.record_classification(
        account_id="acct", conversation_id="c2", last_message_id="m1", classification="chit_chat",
        draft_id=None, seq=1)
    assert recorded and before["draft_id"] == "old" and conv.get("acct", "c2")["seq"] == 1
    # a state read before asking the AI, changed by another worker meanwhile: decided again
    stale = conv.get("acct", "c1")
    assert record(4, "d4") == (True, stale)
    recorded, newer = conv.record_classification(
        account_id="acct", conversation_id="c1", last_message_id="m3", classification="chit_chat",
        draft_id=None, seq=3, known=stale)              # it read seq 3, then seq 4 was recorded
    assert not recorded and newer["draft_id"] == "d4"
    recorded, before = conv.record_classification(
        account_id="acct", conversation_id="c1", last_message_id="m5", classification="needs_reply",
        draft_id="d5", seq=5, known=stale)              # newer than what it missed: recorded
    assert recorded and before["draft_id"] == "d4"      # and it learns the draft it supersedes
    assert conv.get("acct", "c1")["draft_id"] == "d5"
    def first(seq: int, draft: str | None, **kw):
        return conv.record_classification(account_id="acct", conversation_id="c3",
                                          last_message_id=f"m{seq}", classification="needs_reply",
                                          draft_id=draft, seq=seq, **kw)
    # both read "no state yet"; the rival's first decision is recorded before ours
    assert first(2, "r2", known=None) == (True, None)
    recorded, newer = first(1, "o1", known=None)        # ours is older: not recorded
    assert not recorded and newer["draft_id"] == "r2"
    recorded, before = first(3, "o3", known=None)       # ours is newer: recorded over it
    assert recorded and before["draft_id"] == "r2" and conv.get("acct", "c3")["draft_id"] == "o3"
