"""A live site (`live: true` in its spec): the stand-in pushes every change into its open inbox
page (server-sent events its own script renders, as real chat sites push over a websocket or
SSE). The session keeps that page open, is woken by the page itself (a MutationObserver reported
through a binding), reads the page as it is (no reload) and then only the changed conversation.
A push channel that stops silently is covered by the safety reload. Real Chromium, the real
stand-in site, the real store; no Ray."""
from __future__ import annotations

import asyncio

import pytest
import yaml

from actors.browser.session import AccountSession
from contracts.settings import ROOT
from tests.helpers import until

ACCOUNT = "owner-live"


def _live_spec(theme_site: str) -> dict:
    folder = ROOT / "standins" / "sites"
    spec = yaml.safe_load((folder / f"{theme_site}.yaml").read_text())
    return {**spec, "live": True}


@pytest.fixture
async def live_session(make_config, chat_site, artifacts_dir, store):
    sessions: list[AccountSession] = []

    async def make(theme: str, **account) -> AccountSession:
        site = theme
        chat_site.theme(theme)
        cfg = make_config(
            app={"browser": {"artifacts_dir": str(artifacts_dir), "selector_timeout_s": 0.5,
                             "retry_backoff_s": 0.01, "navigation_timeout_s": 5},
                 "accounts": [{"id": ACCOUNT, "site": site, "navigations_per_minute": 10000,
                               "sends_per_minute": 1000, **account}]},
            sites={site: _live_spec(site)}, MEETME_URL=chat_site.url)
        s = AccountSession(cfg, ACCOUNT)
        sessions.append(s)
        await s.start()
        return s

    yield make
    for s in sessions:
        try:
            await s.stop()
        except Exception:
            pass


def _texts(store, conversation_id):
    return [(m.direction, m.text) for m in store.messages.conversation(ACCOUNT, conversation_id, 200)]


@pytest.mark.parametrize("theme", ["classic", "aria"])
async def test_a_message_pushed_into_the_open_inbox_is_read_once_without_reloading_it(
        theme, live_session, chat_site, store):
    # the safety reload is far away: only the page's own change can wake the pass in time
    s = await live_session(theme, safety_poll_s=600)
    started = chat_site.stats()["inbox_views"]        # the start loaded the inbox, watched
    chat_site.inject("c1", "Alice", "hello")
    assert len((await s.poll())["new"]) == 1          # the first pass reads that page as it is
    assert chat_site.stats()["inbox_views"] - started == 1   # only back to it after reading c1
    assert (await s.poll())["new"] == []              # back on the inbox: read as it is, no change
    await until(lambda: chat_site.stats()["live_streams"] >= 1 and not s.life.changed.is_set(),
                 "the open inbox to subscribe to the site's push channel")
    stats = chat_site.stats()
    waiting = asyncio.create_task(s.poll())           # waits for the page to change
    await asyncio.sleep(0.2)
    assert not waiting.done()
    chat_site.inject("c1", "Alice", "are you there?")
    result = await asyncio.wait_for(waiting, 30)
    assert len(result["new"]) == 1 and result["live"]
    after = chat_site.stats()
    assert after["live_pushes"] > stats["live_pushes"]
    # the conversation was loaded once to read it; the inbox only once, to go back to it after
    # the read (a reload before the read would make it two)
    assert after["views"]["chat"] - stats["views"]["chat"] == 2
    assert after["inbox_views"] - stats["inbox_views"] == 1
    assert (await s.poll())["new"] == []              # extracted once
    assert _texts(store, "c1") == [("in", "hello"), ("in", "are you there?")]
    # a pass asked for (the supervisor's poll_now) does not wait for a change
    waiting = asyncio.create_task(s.poll())
    await asyncio.sleep(0.2)
    await s.wake()
    assert (await asyncio.wait_for(waiting, 30))["new"] == []
    assert (await s.ping())["status"] == "ok"


async def test_a_push_channel_that_stops_silently_is_covered_by_the_safety_reload(
        live_session, chat_site, store):
    s = await live_session("classic", safety_poll_s=1.0)
    chat_site.inject("c1", "Alice", "hello")
    assert len((await s.poll())["new"]) == 1
    await until(lambda: chat_site.stats()["live_streams"] >= 1, "the push channel")
    chat_site.faults(live=False)                      # the stream stays open and sends nothing
    stats = chat_site.stats()
    chat_site.inject("c1", "Alice", "still there?")
    chat_site.inject("c2", "Bob", "new here")
    found: list[str] = []
    for _ in range(60):                               # each pass waits at most the safety interval
        found += (await asyncio.wait_for(s.poll(), 30))["new"]
        if len(found) >= 2:
            break
    after = chat_site.stats()
    assert len(found) == 2 and after["live_pushes"] == stats["live_pushes"]   # nothing was pushed
    assert after["inbox_views"] > stats["inbox_views"]                        # the reload found them
    assert _texts(store, "c1") == [("in", "hello"), ("in", "still there?")]
    assert _texts(store, "c2") == [("in", "new here")]


async def test_the_browser_gone_while_a_live_pass_waits_opens_the_session_again(
        live_session, chat_site, store):
    s = await live_session("classic", safety_poll_s=600)
    chat_site.inject("c1", "Alice", "hello")
    assert len((await s.poll())["new"]) == 1
    assert (await s.poll())["new"] == []
    waiting = asyncio.create_task(s.poll())           # waits for the page, for up to 600 s
    await asyncio.sleep(0.2)
    chat_site.faults(live=False)                      # nothing will be pushed: only the crash wakes it
    chat_site.inject("c1", "Alice", "sent while the browser was down")
    await s.handle.browser.close()                    # Chromium gone (a crash, a host restart)
    result = await asyncio.wait_for(waiting, 60)
    assert len(result["new"]) == 1 and s.handle.browser.is_connected()
    assert _texts(store, "c1") == [("in", "hello"), ("in", "sent while the browser was down")]


@pytest.mark.parametrize("theme", ["bubbles", "items"])
async def test_the_stand_in_pushes_into_open_conversation_pages_of_live_themes_only(
        theme, live_session, chat_site, store):
    """What the session reads is the site's own page: an open conversation's log takes a pushed
    message in place (the reply box keeps what is typed); `items` is a theme without live updates."""
    s = await live_session(theme, safety_poll_s=600)
    chat_site.inject("c1", "Alice", "hello")
    await s.poll()
    page = s.handle.page
    await page.goto(f"{chat_site.url}/chat/c1")
    box = page.locator("textarea").first
    await box.fill("typed, not sent")
    views = chat_site.stats()["views"]["chat"]
    chat_site.inject("c1", "Alice", "pushed while the page is open")
    shown = page.get_by_text("pushed while the page is open")
    if theme == "items":                              # no channel at all: nothing can be pushed
        assert "/_live/" not in await page.content() and chat_site.stats()["live_streams"] == 0
        assert await shown.count() == 0
    else:
        await shown.wait_for(timeout=10_000)
        assert await box.input_value() == "typed, not sent"
    assert chat_site.stats()["views"]["chat"] == views   # no reload either way
