"""Reviewer notifications through apprise's `json://` target to a local receiver (the stand-in
for Discord, Slack, ntfy...): one per draft with a working desk link, digests within the rate,
nothing lost or doubled while the receiver is down, dead letters with the reason, and a bad URL
refused at start naming the setting. Time is driven by hand (an injected clock), never slept."""
from __future__ import annotations

import json
import re

import pika
import pytest
import ray
from playwright.sync_api import expect

from actors.bus import declare_topology, dead_letters
from actors.bus.connection import parameters
from actors.notify.actor import AppriseSender, NoteMaker, dead_letter_to_broker, make_dispatcher
from actors.store import Store
from contracts.events import EVENT_TYPES, DraftCreated, routing_key
from standins.notifyrecv import ReceiverAdmin, make_app
from standins.serve import ServedApp
from tests.fixtures.infra import BASE_ENV
from tests.helpers import wait_for
from tests.review_helpers import add_conversation, chromium, sign_in
from tests.test_hardening import _check

DESK = "http://127.0.0.1:8088"


class Clock:
    def __init__(self, t: float = 1_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


@pytest.fixture
def receiver():
    kept: list = []
    served = ServedApp(make_app(kept)).start()
    admin = ReceiverAdmin(served.url)
    admin.kept, admin.served = kept, served
    yield admin
    admin.served.stop()


def _drafts(store, n: int, account: str = "meetme-main") -> list[dict]:
    """n stored conversations with drafts, and their draft.created events."""
    out = []
    for i in range(n):
        d = add_conversation(store, f"c{i:03d}", [f"Hello there, message number {i}"], account_id=account)
        out.append(DraftCreated.make(draft_id=d["_id"], account_id=account, conversation_id=d["conversation_id"],
                                     message_ids=d["message_ids"], classification="needs_reply",
                                     text=d["text"]).model_dump(mode="json"))
    return out


def _setup(make_config, store, receiver, clock, **notify):
    cfg = make_config(app={"notify": {"desk_url": DESK, **notify}}, NOTIFY_URLS=receiver.target())
    sent_at: list[float] = []

    class Timed(AppriseSender):          # the real apprise sender; the test notes when it got through
        def send(self, title, body):
            err = super().send(title, body)
            if err is None:
                sent_at.append(clock())
            return err

    disp = make_dispatcher(cfg, store, senders=[Timed(receiver.target())], clock=clock,
                           dead_letter=dead_letter_to_broker(cfg), rng=lambda: 1.0)
    disp.ensure_indexes()
    return cfg, disp, NoteMaker(cfg, store), sent_at


def _links(messages: list[dict]) -> list[str]:
    return [m for msg in messages for m in re.findall(r"#draft=([\w.:-]+)", msg["message"])]


def test_one_notification_per_draft_says_who_and_what(make_config, store, receiver):
    clock = Clock()
    cfg, disp, maker, _ = _setup(make_config, store, receiver, clock)
    events = _drafts(store, 2)
    for e in events:
        assert disp.add([maker.note(e)]) == 1
        assert disp.add([maker.note(e)]) == 0          # a redelivered event adds nothing
        disp.step()
    got = receiver.received()
    assert len(got) == 2
    for msg, e in zip(got, events):
        assert "meetme-main" in msg["title"] and "alex" in msg["title"]
        for part in ("Account: meetme-main", f"({e['conversation_id']})", "Classification: needs_reply",
                     "Message: Hello there, message number", "Draft: Thanks, sounds good!",
                     f"{DESK}/#draft={e['draft_id']}"):
            assert part in msg["message"]
    disp.step()
    assert len(receiver.received()) == 2 and disp.pending() == 0


def test_a_draft_superseded_before_it_is_announced_is_not_announced(make_config, store, receiver):
    """A newer message superseded the draft before its event reached the notifier: the reviewer
    is told about the draft that answers the conversation, not about one they cannot approve."""
    clock = Clock()
    cfg, disp, maker, _ = _setup(make_config, store, receiver, clock)
    old, new = _drafts(store, 2)
    assert store.drafts.supersede(old["draft_id"], ("pending_review",), new["draft_id"], "newer message")
    assert maker.note(old) is None
    assert disp.add([maker.note(new)]) == 1
    disp.step()
    assert _links(receiver.received()) == [new["draft_id"]]


def test_every_event_type_routed_to_the_notifier_has_a_note_and_an_unknown_one_is_refused(make_config, store):
    """The registry routes a type to "notify"; the notifier's one table says how its note reads.
    A type routed there with no note raises (its delivery is retried, then dead-lettered with
    the reason), never acked as if a person had been told."""
    maker = NoteMaker(make_config(app={"notify": {"desk_url": DESK}}), store)
    for t in (t for t in EVENT_TYPES if "notify" in t.consumers):
        note = maker.note(t.example().model_dump(mode="json"))
        assert note is not None and note.note_id == t.example().event_id, t.__name__
        assert routing_key(t) in NoteMaker.HANDLERS
    with pytest.raises(ValueError, match="no note for event type 'no.such_type'"):
        maker.note({"type": "no.such_type", "event_id": "no.such_type:1"})


def test_a_burst_of_50_drafts_gives_digests_within_the_rate(make_config, store, receiver):
    clock = Clock()
    cfg, disp, maker, sent_at = _setup(make_config, store, receiver, clock, max_per_minute=5)
    events = _drafts(store, 50)
    for e in events:                          # two drafts a second for 25 s, then quiet
        disp.add([maker.note(e)])
        disp.step()
        clock.advance(0.5)
    for _ in range(200):
        if disp.pending() == 0:
            break
        clock.advance(max(disp.step(), 0.5))
    assert disp.pending() == 0
    got = receiver.received()
    assert sorted(_links(got)) == sorted(e["draft_id"] for e in events)      # each once, none lost
    assert any(re.match(r"\d+ new drafts to review", m["title"]) for m in got)
    assert len(got) < 20
    for t in sent_at:                          # never more than 5 in any minute
        assert sum(1 for u in sent_at if t <= u < t + 60) <= 5


def test_receiver_down_for_a_while_loses_nothing_and_doubles_nothing(make_config, store, receiver):
    clock = Clock()
    cfg, disp, maker, _ = _setup(make_config, store, receiver, clock, backoff_initial_s=2, max_attempts=20)
    events = _drafts(store, 7)
    port = receiver.served.port
    receiver.served.stop()                    # the notification service is down
    for e in events[:3]:
        disp.add([maker.note(e)])
    for _ in range(6):
        disp.step()
        clock.advance(30)
    for e in events[3:]:
        disp.add([maker.note(e)])
    disp.step()
    assert disp.stats["failures"] >= 5 and disp.pending() == 7 and receiver.kept == []
    receiver.served = ServedApp(make_app(receiver.kept), port=port).start()   # back, same address
    for _ in range(50):
        if disp.pending() == 0:
            break
        clock.advance(max(disp.step(), 1.0))
    assert disp.pending() == 0 and disp.stats["dead"] == 0
    assert sorted(_links(receiver.received())) == sorted(e["draft_id"] for e in events)


def test_a_notification_that_can_never_be_delivered_is_dead_lettered_with_the_reason(make_config, store, receiver):
    clock = Clock()
    cfg, disp, maker, _ = _setup(make_config, store, receiver, clock, max_attempts=3)
    declare_topology(cfg, {})
    receiver.status(500)
    (event,) = _drafts(store, 1)
    disp.add([maker.note(event)])
    for _ in range(10):
        clock.advance(max(disp.step(), 1.0))
    assert disp.stats["dead"] == 1 and disp.pending() == 0
    doc = store.db["notifications"].find_one({})
    assert doc["status"] == "dead" and doc["attempts"] == 3
    (dead,) = wait_for(lambda: dead_letters(cfg), 10, "the dead letter")
    assert dead["consumer"] == "notify" and dead["message_id"] == event["event_id"]
    assert dead["reason"].startswith("not delivered after 3 attempts; last error:")
    assert receiver.target() not in dead["reason"] and receiver.target() not in json.dumps(dead["body"])


@pytest.mark.parametrize("env,expect", [
    ({"NOTIFY_URLS": "bogus://nothing-here"}, "config error: NOTIFY_URLS: entry 1 (a bogus:// URL) is not a notification URL"),
    ({"NOTIFY_URLS": "json://127.0.0.1:9/ok, discord://secret-webhook-id-9876/"},
     "config error: NOTIFY_URLS: entry 2 (a discord:// URL) is not a notification URL"),
    ({"NOTIFY_URLS": "not a url"}, "config error: NOTIFY_URLS: entry 1 (a URL)"),
    ({"NOTIFY_URLS_FILE": "/nonexistent/notify-urls"}, "config error: NOTIFY_URLS_FILE: /nonexistent/notify-urls cannot be read"),
])
def test_a_bad_notify_url_fails_at_start_naming_the_setting(env, expect):
    r = _check(**env)
    assert r.returncode == 2
    (line,) = [x for x in r.stderr.splitlines() if x.strip()]
    assert line.startswith(expect), line
    assert "secret-webhook-id" not in r.stderr + r.stdout


def test_notify_urls_from_a_file_are_secrets(make_config, tmp_path, receiver):
    f = tmp_path / "notify-urls"
    f.write_text(f"# the team channel\n{receiver.target('team')}\nntfy://replydesk-team-topic-123456\n")
    cfg = make_config(NOTIFY_URLS_FILE=str(f))
    urls = [u.get_secret_value() for u in cfg.notify_urls]
    assert urls == [receiver.target("team"), "ntfy://replydesk-team-topic-123456"]
    assert set(urls) <= set(cfg.secret_values()) and "replydesk-team-topic-123456" in cfg.secret_values()
    assert "replydesk-team-topic" not in repr(cfg) and "replydesk-team-topic" not in str(cfg.model_dump())


def _publish_raw(cfg, routing_key: str, body: bytes) -> None:
    conn = pika.BlockingConnection(parameters(cfg, "test-raw"))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish(f"{cfg.settings.namespace}.events", routing_key, body,
                         pika.BasicProperties(message_id="bad-1", delivery_mode=2))
    finally:
        conn.close()


def test_pipeline_notifies_each_draft_with_a_working_link_and_dead_letters(start_pipeline, chat_site, receiver):
    cfg, handle = start_pipeline(NOTIFY_URLS=receiver.target())
    status = ray.get(handle.status.remote())
    assert "notify:sender" in {c["name"] for c in status["children"]}, status
    chat_site.inject("c-alice", "Alice", "Hi! I saw you like hiking too. Any favourite trails around here?")
    chat_site.inject("c-erin", "Erin", "Would you like to grab a coffee on Sunday afternoon?")
    store = Store.from_config(cfg)
    wait_for(lambda: store.drafts.count() >= 2, 90, "two drafts")
    got = wait_for(lambda: (r := receiver.received()) and len(_links(r)) >= 2 and r, 60, "notifications")
    drafts = {d["_id"]: d for d in store.drafts.coll.find({})}
    assert sorted(_links(got)) == sorted(drafts)
    _publish_raw(cfg, "message.seen", b'{"not": "an event"}')        # dead-lettered by the ai consumer
    dead = wait_for(lambda: [m for m in receiver.received() if "dead-lettered" in m["title"]], 60, "dead letter")
    assert "invalid event" in dead[0]["message"] and "message.seen" in dead[0]["title"]
    assert len(_links(receiver.received())) == 2                     # nothing doubled meanwhile
    desk = next(c for c in status["children"] if c["kind"] == "review")["info"]["url"]
    link = re.search(r"Review it: (\S+)", got[0]["message"]).group(1)
    assert link.startswith(desk + "/#draft=")
    draft = drafts[link.rsplit("=", 1)[1]]
    with chromium() as browser:                  # the link opens that draft once signed in
        page = browser.new_page()
        page.goto(link)
        sign_in(page, BASE_ENV["REVIEW_TOKEN"])
        expect(page.locator("#conv-id")).to_have_text(draft["conversation_id"])
        expect(page.locator("#draft-text")).to_have_value(draft["text"])


def test_a_session_that_cannot_log_in_notifies_needs_login(start_pipeline, chat_site, receiver):
    cfg, handle = start_pipeline(NOTIFY_URLS=receiver.target(), MEETME_PASSWORD="not-the-password-1")
    got = wait_for(lambda: [m for m in receiver.received() if "needs a login" in m["title"]], 90, "needs_login")
    assert got[0]["title"] == "Account meetme-main needs a login"
    assert "not-the-password-1" not in json.dumps(receiver.received())
    # a first login the site rejects (no stored session) waits for a person: not failed, not
    # restarted, shown as needs_login
    def session_status():
        children = ray.get(handle.status.remote())["children"]
        return next(c["status"] for c in children if c["name"] == "browser:classic:meetme-main")
    wait_for(lambda: session_status() == "needs_login", 60, "the session shown as needs_login")
    assert "browser:classic:meetme-main" not in ray.get(handle.status.remote())["failed"]
