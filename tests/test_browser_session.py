"""The browser session in-process (plain asyncio, real Chromium, real stand-in site, real store):
login and session reuse, expiry, popups, selector fallbacks, artifacts, retries, exactly-once
extraction and sending, hostile text."""
from __future__ import annotations

from pathlib import Path

import pytest

from actors.browser.selectors import MATCHES, SelectorNotFound
from actors.browser.session import AccountSession
from contracts.events import DraftApproved
from contracts.ids import draft_id

ACCOUNT = "meetme-main"


@pytest.fixture
def config(make_config, chat_site, artifacts_dir):
    def make(**browser):
        return make_config(
            app={"browser": {"artifacts_dir": str(artifacts_dir), "selector_timeout_s": 0.5,
                             "retry_backoff_s": 0.01, "navigation_timeout_s": 10, **browser},
                 "accounts": [{"id": ACCOUNT, "navigations_per_minute": 1000,
                               "sends_per_minute": 100, "max_pages": 3}]},
            MEETME_URL=chat_site.url)
    return make


@pytest.fixture
async def session(config, store):
    sessions = []

    async def make(**browser) -> AccountSession:
        s = AccountSession(config(**browser), ACCOUNT)
        sessions.append(s)
        await s.start()
        return s
    yield make
    for s in sessions:
        await s.stop()


def _incoming_outbox(store):
    return list(store.outbox.coll.find({"routing_key": "message.seen"}))


async def test_fresh_login_then_stored_state_is_reused(session, chat_site, store):
    first = await session()
    assert chat_site.stats()["login_submissions"] == 1
    state = store.accounts.storage_state(ACCOUNT)
    assert any(c["name"] == "mm_sid" for c in state["cookies"])
    assert any(i["name"] == "mm.device" for o in state["origins"] for i in o["localStorage"])
    await first.stop()
    second = await session()
    await second.poll()
    assert chat_site.stats()["login_submissions"] == 1  # no password typed again


async def test_session_expiry_mid_run_logs_in_again(session, chat_site):
    s = await session()
    chat_site.inject("c1", "Alice", "one")
    assert len((await s.poll())["new"]) == 1
    chat_site.faults(logged_out=True)
    chat_site.inject("c1", "Alice", "two")
    assert len((await s.poll())["new"]) == 1
    assert chat_site.stats()["login_submissions"] == 2


async def test_popup_covering_the_page_is_closed(session, chat_site, store):
    chat_site.faults(popup="always")
    s = await session()
    chat_site.inject("c1", "Alice", "hello")
    assert len((await s.poll())["new"]) == 1
    await _approve_and_send(s, store, "c1", "hi Alice")  # clicks would hit the modal otherwise
    assert chat_site.sent()["counts"] == {"c1": 1}


async def test_renamed_classes_use_the_testid_fallback(session, chat_site, caplog):
    chat_site.faults(renamed_classes=True)
    before = MATCHES.copy()
    s = await session()
    chat_site.inject("c1", "Alice", "hello")
    assert len((await s.poll())["new"]) == 1
    grown = {k for k in MATCHES if MATCHES[k] > before.get(k, 0)}
    # metrics and logs name the selector that matched by its text, never by an index
    assert ("classic", "message", "[data-testid='message']") in grown
    assert ("classic", "inbox_item", "[data-testid='conversation-item']") in grown
    assert ("classic", "login_username", "input[name='email']") in grown
    assert not any(k[1] == "message" and k[2] == "div.chat-message" for k in grown)
    assert any(getattr(r, "element", None) == "message"
               and getattr(r, "selector", None) == "[data-testid='message']" for r in caplog.records)


async def test_no_selector_matching_raises_and_saves_artifacts(session, chat_site):
    s = await session()
    chat_site.inject("c1", "Alice", "hello")
    chat_site.faults(broken=["message"])
    with pytest.raises(SelectorNotFound) as err:
        await s.poll()
    e = err.value
    assert e.element == "message" and e.site == "classic" and "/chat/c1" in e.url
    assert "'message'" in str(e) and "/chat/c1" in str(e)
    assert Path(e.screenshot).stat().st_size > 0
    html = Path(e.html).read_text()
    assert 'data-mid="' in html and "data-message-id" not in html and "hello" in html


async def test_server_errors_and_resets_are_retried(session, chat_site):
    s = await session()
    chat_site.inject("c1", "Alice", "hello")
    chat_site.faults(http500=2)
    assert len((await s.poll())["new"]) == 1
    assert chat_site.stats()["errors_500"] == 2
    chat_site.inject("c1", "Alice", "again")
    chat_site.faults(crash_after=0, crash_burst=1)
    assert len((await s.poll())["new"]) == 1
    assert chat_site.stats()["resets"] == 1


async def test_new_messages_emitted_exactly_once_with_paging(session, chat_site, store):
    chat_site.faults(page_size=4)
    s = await session()
    first = [chat_site.inject("c1", "Alice", f"m{i}") for i in range(10)]  # 3 pages
    chat_site.inject("c2", "Bob", "hey")
    r1 = await s.poll()
    assert len(r1["new"]) == 11 and r1["conversations"] == 2
    assert (await s.poll())["new"] == []
    later = [chat_site.inject("c1", "Alice", f"n{i}") for i in range(6)]  # crosses a page
    r3 = await s.poll()
    assert r3["new"] == [f"{ACCOUNT}:c1:{x}" for x in later]
    rows = _incoming_outbox(store)
    assert len(rows) == 17 == len({r["_id"] for r in rows})
    assert all(r["headers"]["traceparent"].startswith("00-") for r in rows)
    assert {f"message.seen:{ACCOUNT}:c1:{x}" for x in first + later} <= {r["_id"] for r in rows}
    # each message starts its own trace
    assert len({r["headers"]["traceparent"].split("-")[1] for r in rows}) == 17


async def test_crash_between_storing_and_emitting_loses_nothing(session, chat_site, store, monkeypatch):
    s = await session()
    chat_site.inject("c1", "Alice", "one")
    chat_site.inject("c1", "Alice", "two")
    real_add = s.store.outbox.add
    calls = {"n": 0}

    async def flaky_add(events, carrier=None):
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("store went away")
        return await real_add(events, carrier)
    monkeypatch.setattr(s.store.outbox, "add", flaky_add)
    with pytest.raises(ConnectionError):
        await s.poll()
    assert store.messages.count() == 2 and len(_incoming_outbox(store)) == 1
    r = await s.poll()
    assert r["new"] == [f"{ACCOUNT}:c1:m2"]
    assert len(_incoming_outbox(store)) == 2
    assert (await s.poll())["new"] == []


HOSTILE = [
    "<script>window.__pwned = true</script>",
    "<img src=x onerror=\"window.__pwned=true\"> & &amp; <b>bold</b>",
    "emoji 👋🏽 family 👨‍👩‍👧 and RTL: مرحبا بك  שלום",
    "  leading spaces,\nnew lines\n\tand tabs  ",
    "long " + "x" * 20000,
]


async def test_hostile_text_is_extracted_verbatim_and_never_executed(session, chat_site, store):
    s = await session()
    for text in HOSTILE:
        chat_site.inject("c1", "<i>Mallory</i>", text)
    await s.poll()
    got = store.messages.conversation(ACCOUNT, "c1")
    assert [m.text for m in got] == HOSTILE
    assert {m.sender for m in got} == {"<i>Mallory</i>"}
    assert await s.handle.page.evaluate("window.__pwned === undefined")


async def _approve_and_send(s, store, conversation_id, text):
    msgs = store.messages.conversation(ACCOUNT, conversation_id)
    did = draft_id(ACCOUNT, conversation_id, msgs[-1].message_id)
    store.drafts.insert({"_id": did, "account_id": ACCOUNT, "conversation_id": conversation_id,
                         "message_ids": [m.message_id for m in msgs], "text": text})
    store.drafts.transition(did, "pending_review", "approved")
    event = DraftApproved.make(draft_id=did, account_id=ACCOUNT, conversation_id=conversation_id,
                               text=text, approved_by="owner").model_dump(mode="json")
    return did, event, await s.send(event, {})


async def test_send_only_approved_and_only_once(session, chat_site, store):
    s = await session()
    chat_site.inject("c1", "Alice", "are you there?")
    await s.poll()
    did, event, r = await _approve_and_send(s, store, "c1", "Yes <b>here</b> 👋\nsee you")
    assert r["status"] == "sent" and r["site_message_id"]
    assert store.drafts.get(did)["status"] == "sent"
    assert (await s.send(event))["status"] == "already_sent"
    assert chat_site.sent()["counts"] == {"c1": 1}
    assert chat_site.sent()["messages"][0]["text"] == "Yes <b>here</b> 👋\nsee you"
    assert store.outbox.coll.count_documents({"routing_key": "reply.sent"}) == 1
    # a draft still waiting for review is never sent
    store.drafts.insert({"_id": "dpending", "account_id": ACCOUNT, "conversation_id": "c1", "text": "no"})
    pending = {**event, "draft_id": "dpending", "event_id": "draft.approved:dpending", "text": "no"}
    assert (await s.send(pending))["status"] == "not_approved"
    assert chat_site.sent()["counts"] == {"c1": 1}


async def test_send_resumed_after_crash_between_click_and_ack(session, chat_site, store):
    """A draft left in `sending` with an anchor: the reply is on the page, so it is not resent."""
    s = await session()
    chat_site.inject("c1", "Alice", "ping")
    await s.poll()
    did, event, r = await _approve_and_send(s, store, "c1", "pong")
    # simulate the crash window: the ack never happened
    store.drafts.coll.update_one({"_id": did}, {"$set": {"status": "sending"}})
    store.outbox.coll.delete_many({"routing_key": "reply.sent"})
    again = await s.send(event)
    assert again == {"status": "already_sent", "site_message_id": r["site_message_id"]}
    assert chat_site.sent()["counts"] == {"c1": 1}
    assert store.drafts.get(did)["status"] == "sent"
    assert store.outbox.coll.count_documents({"routing_key": "reply.sent"}) == 1


async def test_an_approved_send_waits_for_one_conversation_not_a_whole_pass(session, chat_site, store):
    """The page is held per conversation: a send that arrives while a long pass reads a dozen
    slow conversations goes out between two of them, before the pass ends."""
    import asyncio
    s = await session()
    chat_site.inject("c1", "Alice", "are you there?")
    await s.poll()
    for i in range(12):
        chat_site.inject(f"n{i:02d}", f"Person {i}", f"hello {i}, how are you?")
    chat_site.faults(slow_ms=250)
    try:
        passing = asyncio.create_task(s.poll())
        while store.messages.count() < 2:        # the pass has read its first conversation
            await asyncio.sleep(0.02)
        did, _, r = await _approve_and_send(s, store, "c1", "Yes, here")
        assert r["status"] == "sent"
        assert not passing.done()                 # it did not wait for the rest of the pass
        result = await passing
    finally:
        chat_site.faults(slow_ms=0)
    assert len(result["new"]) == 12 and chat_site.sent()["counts"] == {"c1": 1}


def test_the_heartbeat_answers_while_every_slot_waits_for_the_page(config, chat_site, store, ray_session):
    """Passes queued beyond the session's 8 slots (each waits for the page) do not hold up its
    ping: the heartbeat has a concurrency group of its own, so a long pass never looks hung."""
    import ray

    from actors.browser.session import BrowserSession
    for i in range(4):
        chat_site.inject(f"c{i}", f"Person {i}", f"hi {i}, are you there?")
    actor = BrowserSession.options(max_concurrency=8).remote(config(), ACCOUNT)
    try:
        ray.get(actor.start.remote(), timeout=120)
        chat_site.faults(slow_ms=800)
        passes = [actor.poll.remote(None) for _ in range(10)]
        ping = actor.ping.remote()
        done, _ = ray.wait([ping, *passes], num_returns=1, timeout=120)
        assert done == [ping], "a pass finished before the heartbeat was answered"
        assert ray.get(ping)["account"] == ACCOUNT
        chat_site.faults(slow_ms=0)
        ray.get(passes, timeout=300)
    finally:
        chat_site.faults(slow_ms=0)
        ray.get(actor.stop.remote(), timeout=60)
        ray.kill(actor)


async def test_a_pass_reads_changed_conversations_first_and_spreads_the_revisits(
        make_config, chat_site, store, artifacts_dir):
    """Twelve conversations all due for a revisit and one new message: the pass reads the changed
    conversation and two revisits (not all twelve); the others are revisited by the next passes,
    the longest unread first, and nothing is read twice."""
    from datetime import datetime, timedelta, timezone
    now = [datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)]
    cfg = make_config(app={"browser": {"artifacts_dir": str(artifacts_dir), "selector_timeout_s": 0.5,
                                       "retry_backoff_s": 0.01, "navigation_timeout_s": 10},
                           "accounts": [{"id": ACCOUNT, "navigations_per_minute": 10000,
                                         "sends_per_minute": 100, "revisit_s": 60,
                                         "revisits_per_pass": 2}]},
                      MEETME_URL=chat_site.url)
    s = AccountSession(cfg, ACCOUNT, clock=lambda: now[0])
    try:
        await s.start()
        for i in range(12):
            chat_site.inject(f"c{i:02d}", f"Person {i}", f"hello {i}")
        assert len((await s.poll())["new"]) == 12

        def conversation_views() -> int:
            return chat_site.stats()["views"].get("chat", 0)
        # reading a conversation cleared its unread badge (the spec's inbox_unread): that is no
        # change, so the next pass opens the inbox only, not every conversation a second time
        before = conversation_views()
        assert (await s.poll())["new"] == []
        assert conversation_views() - before == 1
        # the same text again in the same minute: only the badge coming back shows it
        chat_site.inject("c03", "Person 3", "hello 3")
        before = conversation_views()
        assert len((await s.poll())["new"]) == 1
        assert conversation_views() - before == 2
        before = conversation_views()
        assert (await s.poll())["new"] == []
        assert conversation_views() - before == 1
        now[0] += timedelta(seconds=61)            # every conversation is due for a revisit
        chat_site.inject("c05", "Person 5", "are you there?")
        before = conversation_views()
        result = await s.poll()
        assert len(result["new"]) == 1              # the new message, in this pass
        assert conversation_views() - before == 1 + 1 + 2   # inbox, c05, two revisits

        def read_at() -> dict[str, datetime]:
            return {c["conversation_id"]: c["read_at"] for c in store.accounts.cursors.find(
                {"account_id": ACCOUNT})}
        fresh = {cid for cid, at in read_at().items() if at.replace(tzinfo=timezone.utc) >= now[0]}
        assert len(fresh) == 3 and "c05" in fresh
        for _ in range(5):                          # 9 left, 2 per pass
            assert (await s.poll())["new"] == []
        assert all(at.replace(tzinfo=timezone.utc) >= now[0] for at in read_at().values())
        before = conversation_views()
        await s.poll()                              # none due any more: the inbox only
        assert conversation_views() - before == 1
    finally:
        await s.stop()
