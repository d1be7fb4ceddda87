"""Undo send: an approval is held `review.undo_s` before its send event is queued; an undo within
the window puts the draft back to pending and nothing is sent; after it the send event is queued
exactly once, whatever races or restarts happen. The real store, the desk's real releaser and
API, and the page in Chromium; the clock is injected (never the wall clock)."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
import requests
from playwright.sync_api import expect

from actors.review.app import make_app
from actors.review.decisions import Conflict, Reviewer
from actors.review.releaser import Releaser
from contracts.events import DraftApproved
from standins.serve import ServedApp
from tests.helpers import wait_for
from tests.review_helpers import add_conversation, chromium, sign_in

UNDO_S = 10.0


class UtcClock:
    """A UTC wall clock that moves only when told."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 6, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> UtcClock:
    return UtcClock()


def _send_events(store, draft_id: str) -> int:
    """How many send events were queued for the draft (each outbox row is one send request)."""
    return store.outbox.coll.count_documents({"_id": f"draft.approved:{draft_id}"})


def test_undo_within_the_window_sends_nothing(store, clock):
    draft = add_conversation(store, "c-undo", ["are you free tonight?"], draft="Yes, at 8!")
    reviewer = store.sync(Reviewer(store.inline, "owner", undo_s=UNDO_S, clock=clock))
    releaser = store.sync(Releaser(store.inline, clock))
    held = reviewer.approve(draft["_id"])
    assert held["status"] == "approved" and held["release_at"] is not None
    assert _send_events(store, draft["_id"]) == 0
    clock.advance(UNDO_S - 1)
    assert releaser.run_once() == []                       # not due yet
    undone = reviewer.undo(draft["_id"])
    assert undone["status"] == "pending_review" and "release_at" not in undone
    clock.advance(60)
    assert releaser.run_once() == []
    assert _send_events(store, draft["_id"]) == 0
    assert store.drafts.transition(draft["_id"], ("approved", "edited"), "sending") is None
    decisions = [d["decision"] for d in store.drafts.decisions.find({"draft_id": draft["_id"]})]
    assert decisions == ["approved", "undone"]
    # only the reviewer who approved may take it back
    reviewer.approve(draft["_id"])
    with pytest.raises(Conflict, match="approved by owner: only they can undo it"):
        store.sync(Reviewer(store.inline, "sam", undo_s=UNDO_S, clock=clock)).undo(draft["_id"])
    reviewer.undo(draft["_id"])
    # approved again (edited this time): held again, and released with the new text
    reviewer.approve(draft["_id"], text="Yes, at 9 then!")
    clock.advance(UNDO_S)
    assert releaser.run_once() == [draft["_id"]]
    row = store.outbox.coll.find_one({"_id": f"draft.approved:{draft['_id']}"})
    assert DraftApproved.model_validate_json(row["body"]).text == "Yes, at 9 then!"


def test_after_the_window_it_is_sent_once_and_undo_is_refused(store, clock):
    draft = add_conversation(store, "c-late", ["hello"], draft="Hi!")
    reviewer = store.sync(Reviewer(store.inline, "owner", undo_s=UNDO_S, clock=clock))
    releaser = store.sync(Releaser(store.inline, clock))
    reviewer.approve(draft["_id"])
    clock.advance(UNDO_S)
    assert releaser.run_once() == [draft["_id"]]
    assert _send_events(store, draft["_id"]) == 1
    with pytest.raises(Conflict, match="too late to undo: .* it is sent once"):
        reviewer.undo(draft["_id"])
    clock.advance(60)
    assert releaser.run_once() == []
    assert reviewer.requeue_approved() == 0                # queued already: the same event id
    assert _send_events(store, draft["_id"]) == 1
    assert store.drafts.get(draft["_id"])["status"] == "approved"   # the browser takes it from here
    assert store.drafts.transition(draft["_id"], ("approved", "edited"), "sending") is not None


def test_undo_racing_the_release_never_both(store, clock):
    """Undo and release at the same moment, from two threads, many times: exactly one wins each
    time; a won undo has queued nothing, a won release queued one send."""
    reviewer = store.sync(Reviewer(store.inline, "owner", undo_s=UNDO_S, clock=clock))
    outcomes = {"undone": 0, "released": 0}
    for i in range(20):
        draft = add_conversation(store, f"c-race-{i}", [f"ping {i}"], draft=f"pong {i}")
        reviewer.approve(draft["_id"])
        clock.advance(UNDO_S)                               # due: the releaser may take it now
        releaser = store.sync(Releaser(store.inline, clock))
        start = threading.Barrier(2)
        got: dict[str, object] = {}

        def release() -> None:
            start.wait()
            got["released"] = releaser.run_once()

        def undo() -> None:
            start.wait()
            try:
                got["undone"] = reviewer.undo(draft["_id"])
            except Conflict as exc:
                got["conflict"] = exc

        threads = [threading.Thread(target=release), threading.Thread(target=undo)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        released = got["released"] == [draft["_id"]]
        assert released != ("undone" in got), got
        assert ("conflict" in got) == released
        assert _send_events(store, draft["_id"]) == (1 if released else 0)
        assert store.drafts.get(draft["_id"])["status"] == ("approved" if released else "pending_review")
        outcomes["released" if released else "undone"] += 1
    assert sum(outcomes.values()) == 20


def test_a_restart_during_the_window_sends_exactly_once(store, clock):
    """The desk restarts in the window: the new one releases the held approval once. And a crash
    between a release and its event: the next start-up queues it, once."""
    held = add_conversation(store, "c-restart", ["hi"], draft="Hello!")
    store.sync(Reviewer(store.inline, "owner", undo_s=UNDO_S, clock=clock)).approve(held["_id"])
    clock.advance(UNDO_S / 2)
    assert store.sync(Releaser(store.inline, clock)).run_once() == []          # the first desk, then it is gone
    restarted = store.sync(Reviewer(store.inline, "owner", undo_s=UNDO_S, clock=clock))
    assert restarted.requeue_approved() == 0                 # a held approval is not queued early
    clock.advance(UNDO_S)
    second = store.sync(Releaser(store.inline, clock))
    assert second.run_once() == [held["_id"]]
    assert second.run_once() == [] and store.sync(Releaser(store.inline, clock)).run_once() == []
    assert _send_events(store, held["_id"]) == 1

    crashed = add_conversation(store, "c-crash", ["hey"], draft="Hey!")
    store.sync(Reviewer(store.inline, "owner", undo_s=UNDO_S, clock=clock)).approve(crashed["_id"])
    clock.advance(UNDO_S)
    dying = store.sync(Releaser(store.inline, clock))
    real_add = store.outbox.add

    def crash(*_a, **_k):
        raise ConnectionError("the process died here")

    store.outbox.add = crash
    with pytest.raises(ConnectionError):
        dying.run_once()                                     # released, its event not queued
    store.outbox.add = real_add
    assert _send_events(store, crashed["_id"]) == 0
    with pytest.raises(Conflict, match="too late to undo"):
        store.sync(Reviewer(store.inline, "owner")).undo(crashed["_id"])        # released: no longer undoable
    assert store.sync(Releaser(store.inline, clock)).run_once() == []           # nothing is due any more...
    assert store.sync(Reviewer(store.inline, "owner")).requeue_approved() == 1  # ...the desk's start-up queues it
    assert store.sync(Reviewer(store.inline, "owner")).requeue_approved() == 0
    assert _send_events(store, crashed["_id"]) == 1


@pytest.fixture
def held_desk(make_config, store, clock):
    cfg = make_config(app={"review": {"undo_s": UNDO_S, "poll_interval_s": 0.2,
                                      "inbox_poll_interval_s": 0.3}})
    served = ServedApp(make_app(cfg, store, clock=clock)).start()
    yield cfg, served
    served.stop()


def test_api_undo(held_desk, store, clock):
    cfg, desk = held_desk
    auth = {"Authorization": f"Bearer {cfg.settings.review_token.get_secret_value()}"}
    draft = add_conversation(store, "c-api", ["hi"], draft="Hello!")
    url = f"{desk.url}/api/drafts/{draft['_id']}"
    assert requests.post(url + "/undo", headers=auth, timeout=10).status_code == 409   # nothing to undo
    assert requests.post(url + "/undo", timeout=10).status_code == 401
    assert requests.post(f"{desk.url}/api/drafts/nope/undo", headers=auth, timeout=10).status_code == 404
    r = requests.post(url + "/approve", headers=auth, timeout=10)
    assert r.json()["draft"]["release_at"] is not None
    assert requests.get(f"{desk.url}/api/meta", headers=auth, timeout=10).json()["undo_ms"] == 10_000
    r = requests.post(url + "/undo", headers=auth, timeout=10)
    assert r.status_code == 200 and r.json()["draft"]["status"] == "pending_review"
    requests.post(url + "/approve", headers=auth, timeout=10).raise_for_status()
    clock.advance(UNDO_S)                                    # the desk's own releaser takes it
    wait_for(lambda: _send_events(store, draft["_id"]) == 1, 10, "the release")
    r = requests.post(url + "/undo", headers=auth, timeout=10)
    assert r.status_code == 409 and "too late to undo" in r.json()["error"]
    assert _send_events(store, draft["_id"]) == 1


@pytest.mark.full  # real Chromium
def test_undo_in_the_desk(held_desk, store, clock, artifacts_dir):
    """Approve with `a`, undo with `z`; approve again, undo with the button; approve, let the
    window pass: the Undo button goes, and a late undo is told it was too late."""
    cfg, desk = held_desk
    draft = add_conversation(store, "c-page", ["dinner on friday?"], draft="Friday works, 7pm?")
    with chromium() as browser:
        for width, height in ((1280, 800), (390, 844)):
            context = browser.new_context(viewport={"width": width, "height": height})
            page = context.new_page()
            page.goto(desk.url + "/")
            sign_in(page, cfg.settings.review_token.get_secret_value())
            page.locator(".draft-item").filter(has_text="c-page").click()
            expect(page.locator("#draft-text")).to_have_value("Friday works, 7pm?")
            page.locator("body").press("a")
            undo = page.get_by_role("button", name="Undo")
            expect(undo).to_be_visible()
            expect(page.locator("#draft-status")).to_contain_text("Undo (z) takes it back")
            undo.scroll_into_view_if_needed()
            page.screenshot(path=str(artifacts_dir / f"undo-{width}.png"))
            page.locator("body").press("z")
            expect(page.locator("#draft-status")).to_have_text(
                "Undone: the draft is back in review. Nothing was sent.")
            expect(undo).to_be_hidden()
            assert store.drafts.get(draft["_id"])["status"] == "pending_review"
            expect(page.get_by_role("button", name="Approve", exact=True)).to_be_enabled()
            context.close()
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(desk.url + "/")
        sign_in(page, cfg.settings.review_token.get_secret_value())
        page.locator(".draft-item").filter(has_text="c-page").click()
        page.get_by_role("button", name="Approve", exact=True).click()
        expect(page.get_by_role("button", name="Undo")).to_be_visible()
        clock.advance(UNDO_S)
        wait_for(lambda: _send_events(store, draft["_id"]) == 1, 10, "the release")
        expect(page.get_by_role("button", name="Undo")).to_be_hidden()
        expect(page.locator("#draft-status")).to_contain_text("Waiting for the browser to send it")
    assert _send_events(store, draft["_id"]) == 1


@pytest.mark.parametrize("bad", [-1, 301, "soon"])
def test_a_bad_undo_window_is_a_clear_config_error(make_config, bad):
    from contracts.settings import ConfigError
    with pytest.raises(ConfigError, match="undo_s"):
        make_config(app={"review": {"undo_s": bad}})
