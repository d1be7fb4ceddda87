"""The whole browser path on every markup the stand-in serves, each read with its own site spec
(standins/sites/<theme>.yaml; `phoenix` by the shipped conf/sites/meetme.yaml): login,
popups, incremental extraction with paging, identical messages in one minute kept distinct,
stored order equal to page order, an approved reply sent exactly once (also across a crash right
after the click, and right before it with an identical earlier reply), our own replies never
emitted as incoming. Real Chromium, the real stand-in site, the real store; no Ray."""
from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import pytest_asyncio
import yaml

from actors.browser import adapter as adapter_mod
from actors.browser import sender as sender_mod
from actors.browser.adapter import SendNotConfirmed
from actors.browser.launcher import close_browser, launch_browser, start_playwright
from actors.browser.selectors import MISSES, SelectorNotFound
from actors.browser.session import AccountSession
from contracts.events import DraftApproved
from contracts.ids import draft_id
from contracts.settings import ROOT
from tests.helpers import until

ACCOUNT = "owner-main"
SITE_OF = {"classic": "classic", "bubbles": "bubbles", "items": "items", "aria": "aria"}
THEMES = list(SITE_OF)


class Crash(BaseException):
    """Stands for the process dying at that point: nothing after it runs, no handler catches it."""


# One event loop for the module: its sessions share one Chromium (below), bound to that loop.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_browser(tmp_path_factory):
    """One Chromium for this module's sessions, each in a context of its own, as the hosted
    layout runs them (`browser_source`): a driver and a browser per session would cost about
    0.7 s each, some sixty times. A test's "new process" is a new session: a fresh context,
    nothing of the old page or its state. (The own-browser layout: test_browser_session.py.)"""
    scratch = tmp_path_factory.mktemp("themes-browser")
    held: dict = {}

    async def browser(cfg):
        if "pw" not in held:
            held["pw"] = await start_playwright(scratch)
        if held.get("browser") is None or not held["browser"].is_connected():
            held["browser"] = await launch_browser(held["pw"], cfg)
        return held["browser"]

    yield browser
    await close_browser(held.get("browser"), held.get("pw"), scratch)


@pytest_asyncio.fixture(loop_scope="module")
async def themed(make_config, chat_site, artifacts_dir, store, shared_browser):
    """themed(theme) -> (config maker, session maker) for an account on that theme's site spec."""
    sessions: list[AccountSession] = []

    def config(site: str, sites: dict | None = None, env: dict | None = None,
               browser: dict | None = None, **account):
        return make_config(
            app={"browser": {"artifacts_dir": str(artifacts_dir), "selector_timeout_s": 0.5,
                             "retry_backoff_s": 0.01, "navigation_timeout_s": 5, **(browser or {})},
                 "accounts": [{"id": ACCOUNT, "site": site, "navigations_per_minute": 10000,
                               "sends_per_minute": 1000, "max_pages": 5, **account}]},
            sites=sites, **{"MEETME_URL": chat_site.url, **(env or {})})

    async def session(cfg) -> AccountSession:
        s = AccountSession(cfg, ACCOUNT, browser_source=functools.partial(shared_browser, cfg))
        sessions.append(s)
        await s.start()
        return s

    yield config, session
    for s in sessions:
        try:
            await s.stop()
        except Exception:
            pass


def _minute(delta_min: int = 0) -> str:
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0) + timedelta(minutes=delta_min)
    return now.isoformat()


def _texts(store, conversation_id):
    return [(m.direction, m.text) for m in store.messages.conversation(ACCOUNT, conversation_id, 200)]


def _approve(store, conversation_id, text, tag=""):
    msgs = store.messages.conversation(ACCOUNT, conversation_id)
    did = draft_id(ACCOUNT, conversation_id, msgs[-1].message_id + tag)
    store.drafts.insert({"_id": did, "account_id": ACCOUNT, "conversation_id": conversation_id,
                         "message_ids": [m.message_id for m in msgs], "text": text})
    store.drafts.transition(did, "pending_review", "approved")
    return did, DraftApproved.make(draft_id=did, account_id=ACCOUNT, conversation_id=conversation_id,
                                   text=text, approved_by="owner").model_dump(mode="json")


def _sent_texts(chat_site, conversation_id):
    return [m["text"] for m in chat_site.sent()["messages"] if m["conversation_id"] == conversation_id]


@pytest.mark.parametrize("theme", THEMES)
async def test_extraction_with_paging_and_identical_messages(theme, themed, chat_site, store):
    config, session = themed
    chat_site.theme(theme)
    chat_site.faults(page_size=4, popup=3)  # 10 messages = 3 pages; a modal every third page
    s = await session(config(SITE_OF[theme]))
    assert chat_site.stats()["login_submissions"] == 1
    for i in range(10):
        chat_site.inject("c1", "Alice", f"m{i}", time=_minute(-30 + i))
    chat_site.inject("c2", "Bob", "hey", time=_minute(-5))
    first = await s.poll()
    assert len(first["new"]) == 11 and first["conversations"] == 2
    # pages were read newest first; stored order is the conversation's order
    assert _texts(store, "c1") == [("in", f"m{i}") for i in range(10)]
    views = chat_site.stats()["views"].get("chat", 0)
    assert (await s.poll())["new"] == []
    # the read cleared the unread badges (inbox_unread): no change, so the inbox is all it opens
    assert chat_site.stats()["views"].get("chat", 0) - views == 1
    # two identical messages in one minute are two messages, on every re-read and across pages
    same = _minute()
    chat_site.inject("c1", "Alice", "ok", time=same)
    chat_site.inject("c1", "Alice", "ok", time=same)
    second = await s.poll()
    assert len(second["new"]) == 2 and len(set(second["new"])) == 2
    assert (await s.poll())["new"] == []
    chat_site.inject("c1", "Alice", "ok", time=same)  # a third, still the same minute
    assert len((await s.poll())["new"]) == 1
    assert _texts(store, "c1")[-3:] == [("in", "ok")] * 3
    stored = store.messages.conversation(ACCOUNT, "c1", 200)
    assert len({m.message_id for m in stored}) == 13
    assert all(m.sent_at.endswith("Z") and "T" in m.sent_at for m in stored)  # a full UTC time
    assert stored[-1].sent_at.startswith(same[:16])  # the date is never lost
    assert (await s.ping())["status"] == "ok"


@pytest.mark.parametrize("theme", THEMES)
async def test_reply_sent_once_and_never_read_back_as_incoming(theme, themed, chat_site, store):
    config, session = themed
    chat_site.theme(theme)
    chat_site.faults(popup=2)
    s = await session(config(SITE_OF[theme]))
    chat_site.inject("c1", "Alice", "are you there?")
    await s.poll()
    did, event = _approve(store, "c1", "Yes <b>here</b> 👋")
    views = chat_site.stats()["views"].get("chat", 0)
    r = await s.send(event, {})
    assert r["status"] == "sent"
    # one page load to read what came since and send from (never a second load of the same page),
    # plus the reload of a form post (aria sends by XHR)
    assert chat_site.stats()["views"].get("chat", 0) - views == (1 if theme == "aria" else 2)
    assert bool(r["site_message_id"]) == (theme in ("classic", "bubbles"))  # only those show ids
    assert store.drafts.get(did)["status"] == "sent"
    assert (await s.send(event))["status"] == "already_sent"
    assert _sent_texts(chat_site, "c1") == ["Yes <b>here</b> 👋"]
    # our own reply comes back on the next read as outgoing, never as a new incoming message
    assert (await s.poll())["new"] == []
    chat_site.inject("c1", "Alice", "great")
    assert len((await s.poll())["new"]) == 1
    assert _texts(store, "c1") == [("in", "are you there?"), ("out", "Yes <b>here</b> 👋"), ("in", "great")]


@pytest.mark.parametrize("theme", THEMES)
async def test_crash_right_after_the_click_never_sends_twice(theme, themed, chat_site, store, monkeypatch):
    config, session = themed
    chat_site.theme(theme)
    cfg = config(SITE_OF[theme])
    s = await session(cfg)
    chat_site.inject("c1", "Alice", "ping")
    await s.poll()
    did, event = _approve(store, "c1", "pong")
    await _crash_after_click(s, event, monkeypatch)
    assert store.drafts.get(did)["status"] == "sending"
    # the click went out (a form post may still be on its way when the process dies): wait until
    # the site has it, so the case tested is "sent, but never confirmed", every time
    await until(lambda: chat_site.sent()["counts"].get("c1") == 1, "the site to store the click's send")
    await s.stop()
    again = await (await session(cfg)).send(event)  # a new process for the same account
    assert again["status"] == "already_sent"
    assert _sent_texts(chat_site, "c1") == ["pong"]
    assert store.drafts.get(did)["status"] == "sent"


@pytest.mark.parametrize("theme", THEMES)
async def test_crash_right_before_the_click_with_an_identical_earlier_reply(theme, themed, chat_site,
                                                                            store, monkeypatch):
    """The earlier "thanks!" is before the anchor: it must not pass for the new one."""
    config, session = themed
    chat_site.theme(theme)
    cfg = config(SITE_OF[theme])
    s = await session(cfg)
    chat_site.inject("c1", "Alice", "here is the file")
    await s.poll()
    _, first = _approve(store, "c1", "thanks!")
    assert (await s.send(first))["status"] == "sent"
    chat_site.inject("c1", "Alice", "and the second one")
    await s.poll()
    did, event = _approve(store, "c1", "thanks!", tag="#2")
    await _crash_before_click(s, event, monkeypatch)
    assert isinstance(store.drafts.get(did)["send_anchor"], list)  # persisted before the click
    await s.stop()
    fresh = await session(cfg)
    again = await fresh.send(event)
    assert again["status"] == "sent"
    assert _sent_texts(chat_site, "c1") == ["thanks!", "thanks!"]
    assert (await fresh.poll())["new"] == []
    assert [t for d, t in _texts(store, "c1") if d == "out"] == ["thanks!", "thanks!"]


def _spec(name: str, **elements) -> dict:
    """A shipped site spec (conf/sites or standins/sites) with some elements replaced."""
    for folder in (ROOT / "conf" / "sites", ROOT / "standins" / "sites"):
        if (folder / f"{name}.yaml").is_file():
            spec = yaml.safe_load((folder / f"{name}.yaml").read_text())
            break
    spec["elements"] = {**spec["elements"], **elements}
    return spec


def _missing(ping: dict) -> dict[str, dict]:
    return {m["element"]: m for m in ping["missing"]}


async def test_theme_switch_mid_run_degrades_loudly_then_catches_up(themed, chat_site, store):
    """A redesign in the middle of the day with the old spec: the session says what misses, sends
    nothing it cannot confirm and loses nothing; with the new markup's spec applied to the same
    site, everything missed in the gap is extracted once."""
    config, session = themed
    chat_site.theme("classic")
    s = await session(config("classic"))
    chat_site.inject("c1", "Alice", "before 1")
    chat_site.inject("c1", "Alice", "before 2")
    assert len((await s.poll())["new"]) == 2
    _, event = _approve(store, "c1", "hello back")
    chat_site.theme("aria")  # the redesign lands
    chat_site.inject("c1", "Alice", "during 1")
    chat_site.inject("c2", "Bob", "during 2")
    misses = MISSES[("classic", "message")]
    with pytest.raises(SelectorNotFound) as err:
        await s.poll()
    e = err.value
    assert (e.site, e.element) == ("classic", "message") and "/chat/c" in e.url
    assert e.tried == ("div.chat-message", "[data-testid='message']", "[role='log'] [data-message-id]")
    assert Path(e.screenshot).stat().st_size > 0 and "during" in Path(e.html).read_text()
    ping = await s.ping()
    assert ping["status"] == "degraded"
    assert _missing(ping)["message"]["selectors"] == list(e.tried)
    assert MISSES[("classic", "message")] > misses
    with pytest.raises(SelectorNotFound):  # the send cannot be confirmed on this markup: refused
        await s.send(event)
    assert chat_site.sent()["counts"] == {}
    assert store.messages.count() == 2 and len(_incoming_outbox(store)) == 2
    await s.stop()
    # the operator rewrites the site spec for the new markup
    s2 = await session(config("classic", sites={"classic": {**_spec("aria"), "name": "classic"}}))
    r = await s2.poll()
    assert len(r["new"]) == 2
    assert _texts(store, "c1") == [("in", "before 1"), ("in", "before 2"), ("in", "during 1")]
    assert _texts(store, "c2") == [("in", "during 2")]
    assert (await s2.poll())["new"] == [] and len(_incoming_outbox(store)) == 4
    # "during 1" came after the approved draft was written: it is not sent, a fresh one is
    assert (await s2.send(event))["status"] == "superseded"
    assert _sent_texts(chat_site, "c1") == []
    _, fresh = _approve(store, "c1", "hello back", tag="fresh")
    assert (await s2.send(fresh))["status"] == "sent"
    assert _sent_texts(chat_site, "c1") == ["hello back"]
    assert (await s2.poll())["new"] == []
    assert (await s2.ping())["status"] == "ok"


def _incoming_outbox(store):
    return list(store.outbox.coll.find({"routing_key": "message.seen"}))


@pytest.mark.parametrize("broken", [
    {"outgoing": [".was-outgoing"], "incoming": ["[data-direction='in']"]},   # ours match neither
    {"outgoing": [".is-outgoing"], "incoming": [".chat-message"]},             # ours match both
])
async def test_without_proof_of_direction_nothing_is_read_or_sent(broken, themed, chat_site, store):
    config, session = themed
    chat_site.theme("classic")
    s = await session(config("classic"))
    chat_site.inject("c1", "Alice", "hi")
    await s.poll()
    _, first = _approve(store, "c1", "hello")
    assert (await s.send(first))["status"] == "sent"
    await s.stop()
    bad = await session(config("classic", sites={"classic": _spec("classic", message_direction=broken)}))
    chat_site.inject("c1", "Alice", "still there?")
    with pytest.raises(SelectorNotFound) as err:
        await bad.poll()
    assert err.value.element == "message_direction" and "direction is not proven" in str(err.value)
    assert "message_direction" in _missing(await bad.ping())
    assert len(_incoming_outbox(store)) == 1  # our reply never came back as incoming
    _, second = _approve(store, "c1", "yes", tag="#2")
    with pytest.raises(SelectorNotFound, match="message_direction"):
        await bad.send(second)
    assert _sent_texts(chat_site, "c1") == ["hello"]  # never sent without proof


async def test_older_messages_link_missing_is_loud_and_loses_nothing(themed, chat_site, store):
    config, session = themed
    chat_site.theme("classic")
    chat_site.faults(page_size=4)
    s = await session(config("classic"))
    chat_site.inject("c1", "Alice", "first")
    await s.poll()
    await s.stop()
    bad = await session(config("classic", sites={"classic": _spec("classic", older_messages={"selectors": ["a.nope"]})}))
    for i in range(6):  # the stored "first" is now on the second page
        chat_site.inject("c1", "Alice", f"later {i}")
    with pytest.raises(SelectorNotFound) as err:
        await bad.poll()
    assert err.value.element == "older_messages" and "would be lost" in str(err.value)
    assert "older_messages" in _missing(await bad.ping())
    assert store.messages.count() == 1
    await bad.stop()
    good = await session(config("classic"))
    assert len((await good.poll())["new"]) == 6
    assert _texts(store, "c1") == [("in", "first")] + [("in", f"later {i}") for i in range(6)]


async def test_xhr_send_not_seen_is_a_clear_error_and_the_next_attempt_resolves_it(themed, chat_site, store):
    config, session = themed
    chat_site.theme("aria")
    s = await session(config("aria"))
    chat_site.inject("c1", "Alice", "hello?")
    await s.poll()
    did, event = _approve(store, "c1", "hi there")
    chat_site.faults(send_render_stale=True)  # stored by the site, but the page never shows it
    with pytest.raises(SendNotConfirmed) as err:
        await s.send(event)
    e = err.value
    assert (e.site, e.element) == ("aria", "send_button") and "/chat/c1" in e.url
    assert "site 'aria'" in str(e) and "/chat/c1" in str(e) and "after the anchor" in str(e)
    assert Path(e.screenshot).stat().st_size > 0 and "hello?" in Path(e.html).read_text()
    draft = store.drafts.get(did)
    assert draft["status"] == "sending" and isinstance(draft["send_anchor"], list)
    chat_site.faults(send_render_stale=False)
    again = await s.send(event)  # a fresh page load shows the reply after the anchor: not resent
    assert again["status"] == "already_sent"
    assert _sent_texts(chat_site, "c1") == ["hi there"]


async def test_first_read_without_older_link_or_start_marker_is_loud(themed, chat_site, store):
    """A conversation read for the first time: with the older-messages link unmatched and no
    start-of-conversation marker, the pages further back would be lost: refused, then read whole."""
    config, session = themed
    chat_site.theme("items")
    chat_site.faults(page_size=4)
    for i in range(10):
        chat_site.inject("c1", "Alice", f"m{i}")
    bad = await session(config("items", sites={"items": _spec("items", older_messages={"selectors": ["a.nope"]})}))
    with pytest.raises(SelectorNotFound) as err:
        await bad.poll()
    assert err.value.element == "conversation_start" and "would be lost" in str(err.value)
    assert store.messages.count() == 0
    await bad.stop()
    good = await session(config("items"))
    assert len((await good.poll())["new"]) == 10
    assert _texts(store, "c1") == [("in", f"m{i}") for i in range(10)]


@pytest.fixture(scope="module")
def chatterbox_server():
    from standins.chatsite import make_app
    from standins.serve import ServedApp
    served = ServedApp(make_app(theme="items", brand="Chatterbox")).start()
    yield served
    served.stop()


async def test_a_second_site_runs_beside_classic_with_no_python_change(make_config, chat_site, chatterbox_server,
                                                                     artifacts_dir, store):
    from contracts import telemetry
    from standins.chatsite import ChatSiteAdmin
    other = ChatSiteAdmin(chatterbox_server.url)
    other.reset()
    other.add_account("chatter@example.com", "chatterbox-s3cret-pw")
    cfg = make_config(
        app={"browser": {"artifacts_dir": str(artifacts_dir), "selector_timeout_s": 0.5,
                         "retry_backoff_s": 0.01},
             "accounts": [{"id": "mm", "site": "classic", "navigations_per_minute": 10000},
                          {"id": "cb", "site": "chatterbox", "navigations_per_minute": 10000,
                           "username_env": "CHATTERBOX_USERNAME", "password_env": "CHATTERBOX_PASSWORD"}]},
        MEETME_URL=chat_site.url, CHATTERBOX_URL=chatterbox_server.url,
        CHATTERBOX_USERNAME="chatter@example.com", CHATTERBOX_PASSWORD="chatterbox-s3cret-pw")
    assert cfg.site_url("chatterbox") == chatterbox_server.url.rstrip("/")
    assert "chatterbox-s3cret-pw" in cfg.secret_values()
    assert "chatterbox-s3cret-pw" not in repr(cfg) + cfg.model_dump_json()
    sessions = [AccountSession(cfg, "mm"), AccountSession(cfg, "cb")]
    try:
        for s in sessions:
            await s.start()
        chat_site.inject("c1", "Alice", "on classic")
        other.inject("t1", "Carol", "on chatterbox")
        assert len((await sessions[0].poll())["new"]) == 1
        assert len((await sessions[1].poll())["new"]) == 1
        [mm] = store.messages.conversation("mm", "c1")
        [cb] = store.messages.conversation("cb", "t1")
        assert (mm.site, mm.text, cb.site, cb.text) == ("classic", "on classic", "chatterbox", "on chatterbox")
        assert cb.site_message_id is None and cb.message_id.startswith("cb:t1:h")  # no ids on that markup
        msgs = store.messages.conversation("cb", "t1")
        did = draft_id("cb", "t1", msgs[-1].message_id)
        store.drafts.insert({"_id": did, "account_id": "cb", "conversation_id": "t1", "text": "hi Carol"})
        store.drafts.transition(did, "pending_review", "approved")
        ev = DraftApproved.make(draft_id=did, account_id="cb", conversation_id="t1", text="hi Carol",
                                approved_by="owner").model_dump(mode="json")
        assert (await sessions[1].send(ev))["status"] == "sent"
        assert [m["text"] for m in other.sent()["messages"]] == ["hi Carol"]
        assert chat_site.sent()["counts"] == {}
        # the second account's password is masked in logs like every configured secret
        rec = logging.LogRecord("t", logging.INFO, __file__, 1, "pw %s", ("chatterbox-s3cret-pw",), None)
        assert "chatterbox-s3cret-pw" not in telemetry.JsonFormatter("test").format(rec)
    finally:
        for s in sessions:
            await s.stop()


async def test_inbox_item_names_its_conversation_by_an_attribute_or_fails_loudly(themed, chat_site, store):
    config, session = themed
    chat_site.theme("classic")  # its items carry data-conversation-id beside the link
    by_attr = _spec("classic", inbox_item={"selectors": ["li.chat-list-item"], "from": ["@data-conversation-id"]})
    s = await session(config("classic", sites={"classic": by_attr}))
    chat_site.inject("c7", "Alice", "hi")
    assert len((await s.poll())["new"]) == 1 and _texts(store, "c7") == [("in", "hi")]
    await s.stop()
    nameless = _spec("classic", inbox_item={"selectors": ["li.chat-list-item"], "from": ["@data-nope"]})
    bad = await session(config("classic", sites={"classic": nameless}))
    with pytest.raises(SelectorNotFound, match="gave no conversation id"):
        await bad.poll()
    assert "inbox_item" in _missing(await bad.ping())


async def test_a_reply_identical_to_the_last_messages_is_sent_once_per_draft(themed, chat_site, store, monkeypatch):
    """Our last three messages are "ok": the anchor must not be formed again by the new "ok"."""
    config, session = themed
    chat_site.theme("aria")  # no ids: identity and anchors from content alone
    cfg = config("aria")
    s = await session(cfg)
    chat_site.inject("c1", "Alice", "ready?")
    await s.poll()
    for n in range(3):
        _, ev = _approve(store, "c1", "ok", tag=f"#{n}")
        assert (await s.send(ev))["status"] == "sent"
    did, ev = _approve(store, "c1", "ok", tag="#3")
    await _crash_after_click(s, ev, monkeypatch)
    await s.stop()
    again = await session(cfg)
    assert (await again.send(ev))["status"] == "already_sent"
    assert _sent_texts(chat_site, "c1") == ["ok"] * 4
    assert (await again.poll())["new"] == []
    assert [t for d, t in _texts(store, "c1") if d == "out"] == ["ok"] * 4


async def _crash_after_click(s, event, monkeypatch):
    """The process dies right after the send button's click (the reply may be on its way)."""
    def crash() -> None:
        raise Crash()
    monkeypatch.setattr(sender_mod, "_fault_exit_hook", crash)
    with pytest.raises(Crash):
        await s.send(event)
    monkeypatch.undo()


async def _crash_before_click(s, event, monkeypatch):
    """The process dies after the anchor is stored, right before the reply is submitted (the
    send button's click or Enter)."""
    async def crash_before_submit(adapter, text):
        raise Crash()
    monkeypatch.setattr(adapter_mod, "submit_reply", crash_before_submit)
    with pytest.raises(Crash):
        await s.send(event)
    monkeypatch.undo()


async def test_another_drafts_identical_reply_after_the_anchor_does_not_pass_for_this_one(
        themed, chat_site, store, monkeypatch):
    config, session = themed
    chat_site.theme("items")
    cfg = config("items")
    s = await session(cfg)
    chat_site.inject("c1", "Alice", "see you at 8?")
    await s.poll()
    a, ev_a = _approve(store, "c1", "yes!", tag="#a")
    await _crash_before_click(s, ev_a, monkeypatch)   # A: anchored, never clicked
    _, ev_b = _approve(store, "c1", "yes!", tag="#b")
    assert (await s.send(ev_b))["status"] == "sent"    # B: same text, after A's anchor
    assert (await s.send(ev_a))["status"] == "sent"    # A is still owed its own reply
    assert _sent_texts(chat_site, "c1") == ["yes!", "yes!"]
    assert store.drafts.get(a)["status"] == "sent"


async def test_an_unexplained_outgoing_message_after_the_anchor_stops_the_send(
        themed, chat_site, store, monkeypatch):
    """The owner replied by hand (or the site re-rendered our text): sent or not cannot be
    proven, so the send is refused and counted, never repeated."""
    from actors.browser.adapter import SendUnproven
    config, session = themed
    chat_site.theme("bubbles")
    s = await session(config("bubbles"))
    chat_site.inject("c1", "Alice", "call me?")
    await s.poll()
    did, ev = _approve(store, "c1", "calling now")
    await _crash_before_click(s, ev, monkeypatch)
    chat_site.inject("c1", "owner", "I'll call you in 5", direction="out")
    with pytest.raises(SendUnproven, match="a person must check"):
        await s.send(ev)
    assert chat_site.sent()["counts"] == {} and store.drafts.get(did)["status"] == "sending"
    # a draft left by an older version, anchored by a site id string: not proven either
    store.drafts.coll.update_one({"_id": did}, {"$set": {"send_anchor": "m1"}})
    with pytest.raises(SendUnproven, match="old format"):
        await s.send(ev)
    assert chat_site.sent()["counts"] == {}


async def test_a_page_without_a_date_header_takes_its_day_from_the_page_before_or_the_cursor(
        themed, chat_site, store):
    """aria draws a day separator only where the day changes: the newest page of a busy day has
    none, so its times of day are dated by the older page that has one, or by the cursor."""
    config, session = themed
    chat_site.theme("aria")
    chat_site.faults(page_size=4)
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    yesterday = (now - timedelta(days=1)).replace(hour=20, minute=0)
    today = now - timedelta(minutes=30)
    for i in range(6):
        chat_site.inject("c1", "Alice", f"y{i}", time=(yesterday + timedelta(minutes=i)).isoformat())
    for i in range(6):
        chat_site.inject("c1", "Alice", f"t{i}", time=(today + timedelta(minutes=i)).isoformat())
    s = await session(config("aria"))
    assert len((await s.poll())["new"]) == 12
    stored = store.messages.conversation(ACCOUNT, "c1", 50)
    assert [m.text for m in stored] == [f"y{i}" for i in range(6)] + [f"t{i}" for i in range(6)]
    assert {m.sent_at[:10] for m in stored[:6]} == {yesterday.date().isoformat()}
    assert {m.sent_at[:10] for m in stored[6:]} == {today.date().isoformat()}
    views = chat_site.stats()["page_views"]
    chat_site.inject("c1", "Alice", "t6", time=(today + timedelta(minutes=6)).isoformat())
    assert len((await s.poll())["new"]) == 1  # dated by the cursor's day: no paging back
    assert chat_site.stats()["page_views"] - views == 2  # the inbox and one conversation page
    assert store.messages.conversation(ACCOUNT, "c1", 50)[-1].sent_at[:16] == \
        (today + timedelta(minutes=6)).isoformat()[:16]


# ---------------------------------------------------------------- phoenix (the real MeetMe's shape)
# The single-page app on two hosts (standins/phoenix), read by the SHIPPED conf/sites/meetme.yaml
# with no edit: login through the modal, the push modal, hash routes, the contact's name only in
# the header, status previews, Enter to send with a pending state, older messages by scrolling.

PHX, PHX2 = "1000001", "1000002"


@pytest.fixture
def on_phoenix(themed, phoenix_site, store):
    """(config maker, session maker) for an account on the shipped meetme spec, on phoenix.
    `cfg(login=False)`: the account starts with a stored login state (the app host's session
    cookie), as after an earlier login: the typed login (at the spec's human pace) is tested once."""
    config, session = themed
    phoenix_site.faults(render_delay_ms=100)

    def cfg(login: bool = True, **account):
        if not login:
            from tests.fixtures.infra import BASE_ENV
            c = phoenix_site.session_cookie(BASE_ENV["MEETME_USERNAME"])
            store.accounts.save_storage_state(ACCOUNT, {"cookies": [{
                "name": c["cookie"], "value": c["value"], "domain": "127.0.0.1", "path": "/",
                "expires": -1, "httpOnly": True, "secure": False, "sameSite": "Lax"}], "origins": []})
        # each pass reloads the inbox (the safety reload always due), as on a polled site: what a
        # pass reads does not depend on when the page's live re-render lands
        return config("meetme", env={"MEETME_URL": phoenix_site.www_url,
                                     "MEETME_APP_URL": phoenix_site.app_url},
                      **{"safety_poll_s": 0.01, **account})
    return cfg, session


async def test_phoenix_extraction_with_paging_by_scroll(on_phoenix, phoenix_site, store):
    config, session = on_phoenix
    for i in range(45):    # three screens of 20: two scrolls to the top
        phoenix_site.inject(PHX, "Alice", f"m{i}", time=_minute(-60 + i))
    phoenix_site.inject(PHX2, "Bob", "hey", time=_minute(-5))
    s = await session(config())
    assert phoenix_site.stats()["login_submissions"] == 1
    first = await s.poll()
    assert len(first["new"]) == 46 and first["conversations"] == 2
    assert _texts(store, PHX) == [("in", f"m{i}") for i in range(45)]
    assert {m.sender for m in store.messages.conversation(ACCOUNT, PHX, 200)} == {"Alice"}  # the header's
    assert (await s.poll())["new"] == []
    phoenix_site.typing(PHX)   # a typing indicator is no change: no conversation is read for it
    views = phoenix_site.stats()["conversation_views"]
    for _ in range(3):
        assert (await s.poll())["new"] == []
    assert phoenix_site.stats()["conversation_views"] == views
    same = _minute()
    phoenix_site.inject(PHX, "Alice", "ok", time=same)
    phoenix_site.inject(PHX, "Alice", "ok", time=same)
    assert len(set(await _phx_poll(s, 2))) == 2
    assert _texts(store, PHX)[-2:] == [("in", "ok")] * 2
    assert (await s.ping())["status"] == "ok"


async def _phx_poll(s, want: int) -> list[str]:
    """The new messages of passes until `want` came (a live inbox read as it is may show a change
    one pass later: the pass the page's re-render wakes); never more than `want`."""
    new: list[str] = []
    for _ in range(20):
        new += (await s.poll())["new"]
        if len(new) >= want:
            break
    assert len(new) == want, new
    return new


def _phx_sent(phoenix_site, conversation_id=PHX):
    return [m["text"] for m in phoenix_site.sent()["messages"] if m["conversation_id"] == conversation_id]


async def test_phoenix_reply_sent_once_by_enter_pending_then_confirmed(on_phoenix, phoenix_site, store,
                                                                       monkeypatch):
    config, session = on_phoenix
    phoenix_site.inject(PHX, "Alice", "are you there?")
    s = await session(config(login=False))
    await s.poll()
    did, event = _approve(store, PHX, "Yes <b>here</b> 👋")
    phoenix_site.faults(send_slow=600)     # the site answers late: the reply shows pending first
    confirms: list[int] = []
    real = adapter_mod.SiteAdapter._confirm

    async def watched(self, *a, **kw):     # what the page shows right after Enter
        confirms.append(await self.page.locator(".messages-chat-media-me.is-pending").count())
        return await real(self, *a, **kw)
    monkeypatch.setattr(adapter_mod.SiteAdapter, "_confirm", watched)
    r = await s.send(event, {})
    assert r["status"] == "sent" and r["site_message_id"] is None   # no ids on this site
    assert confirms == [1]                 # pending at first, then confirmed: sent once
    assert store.drafts.get(did)["status"] == "sent"
    assert (await s.send(event))["status"] == "already_sent"
    assert _phx_sent(phoenix_site) == ["Yes <b>here</b> 👋"]
    assert (await s.poll())["new"] == []   # our reply is read back as outgoing; "Sent: ..." is no change
    phoenix_site.inject(PHX, "Alice", "great")
    await _phx_poll(s, 1)
    assert _texts(store, PHX) == [("in", "are you there?"), ("out", "Yes <b>here</b> 👋"), ("in", "great")]
    assert [m.sender for m in store.messages.conversation(ACCOUNT, PHX)] == ["Alice", ACCOUNT, "Alice"]


async def test_phoenix_crash_right_after_the_send_never_sends_twice(on_phoenix, phoenix_site, store,
                                                                    monkeypatch):
    config, session = on_phoenix
    phoenix_site.inject(PHX, "Alice", "ping")
    cfg = config(login=False)
    s = await session(cfg)
    await s.poll()
    did, event = _approve(store, PHX, "pong")
    await _crash_after_click(s, event, monkeypatch)
    assert store.drafts.get(did)["status"] == "sending"
    await until(lambda: phoenix_site.sent()["counts"].get(PHX) == 1, "the site to store the send")
    await s.stop()
    again = await (await session(cfg)).send(event)   # a new process for the same account
    assert again["status"] == "already_sent"
    assert _phx_sent(phoenix_site) == ["pong"] and store.drafts.get(did)["status"] == "sent"


async def test_phoenix_crash_right_before_the_send_with_an_identical_earlier_reply(on_phoenix, phoenix_site,
                                                                                   store, monkeypatch):
    config, session = on_phoenix
    phoenix_site.inject(PHX, "Alice", "here is the file")
    cfg = config(login=False)
    s = await session(cfg)
    await s.poll()
    _, first = _approve(store, PHX, "thanks!")
    assert (await s.send(first))["status"] == "sent"
    phoenix_site.inject(PHX, "Alice", "and the second one")
    await _phx_poll(s, 1)
    did, event = _approve(store, PHX, "thanks!", tag="#2")
    await _crash_before_click(s, event, monkeypatch)
    assert isinstance(store.drafts.get(did)["send_anchor"], list)
    await s.stop()
    fresh = await session(cfg)
    assert (await fresh.send(event))["status"] == "sent"
    assert _phx_sent(phoenix_site) == ["thanks!", "thanks!"]
    assert (await fresh.poll())["new"] == []
    assert [t for d, t in _texts(store, PHX) if d == "out"] == ["thanks!", "thanks!"]


@pytest.mark.parametrize("fate", ["lost", "stored"])
async def test_phoenix_a_pending_message_never_confirmed_is_no_send(fate, on_phoenix, phoenix_site, store):
    """The site never answers: the message stays pending on the page. That is no confirmation:
    the send fails loudly and the draft stays `sending`; the next attempt decides from the
    reloaded page (not stored: sent again, once; stored: already sent)."""
    config, session = on_phoenix
    phoenix_site.inject(PHX, "Alice", "hello?")
    s = await session(config(login=False, browser={"navigation_timeout_s": 2}))
    await s.poll()
    did, event = _approve(store, PHX, "hi there")
    phoenix_site.faults(send_pending_forever=fate)
    with pytest.raises(SendNotConfirmed, match="pending"):
        await s.send(event)
    assert store.drafts.get(did)["status"] == "sending"
    phoenix_site.faults(send_pending_forever=False)
    again = await s.send(event)
    assert again["status"] == ("sent" if fate == "lost" else "already_sent")
    assert _phx_sent(phoenix_site) == ["hi there"]
    assert store.drafts.get(did)["status"] == "sent"


async def test_phoenix_a_send_that_fails_after_the_site_stored_it_is_sent_once(on_phoenix, phoenix_site,
                                                                              store):
    """The site stores the reply and answers 500 (the page marks it failed): the site has it, so
    it is never sent again."""
    config, session = on_phoenix
    phoenix_site.inject(PHX, "Alice", "still on?")
    s = await session(config(login=False))
    await s.poll()
    did, event = _approve(store, PHX, "yes, still on")
    phoenix_site.faults(send_fail_after_store=True)
    try:
        first = (await s.send(event))["status"]
    except SendNotConfirmed:
        first = "unconfirmed"
    phoenix_site.faults(send_fail_after_store=False)
    assert _phx_sent(phoenix_site) == ["yes, still on"]
    if first != "sent":
        assert (await s.send(event))["status"] == "already_sent"
    assert (await s.send(event))["status"] == "already_sent"
    assert _phx_sent(phoenix_site) == ["yes, still on"] and store.drafts.get(did)["status"] == "sent"
    assert (await s.poll())["new"] == []
