"""The BrowserSession as a Ray actor: killed mid-pass or right after clicking send, a new actor
for the same account emits nothing twice, misses nothing and never sends twice."""
from __future__ import annotations

import os


import pytest

from actors.browser.session import EXIT_AFTER_SEND_CLICK, BrowserSession
from contracts import telemetry
from contracts.events import DraftApproved
from contracts.ids import draft_id
from tests.fixtures.infra import ROOT
from tests.helpers import wait_for

ACCOUNT = "meetme-main"
PARENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def config(make_config, chat_site, artifacts_dir):
    return make_config(
        app={"browser": {"artifacts_dir": str(artifacts_dir), "selector_timeout_s": 1,
                         "retry_backoff_s": 0.01},
             "accounts": [{"id": ACCOUNT, "navigations_per_minute": 1000, "sends_per_minute": 100,
                           "max_pages": 3}]},
        MEETME_URL=chat_site.url)


@pytest.fixture
def actors(ray_session, ns):
    made = []

    def make(config, suffix: str, env: dict | None = None):
        a = BrowserSession.options(
            name=f"browser:classic:{ACCOUNT}-{ns}-{suffix}", resources={"browser": 0.01},
            max_restarts=0, max_task_retries=0, max_concurrency=8,
            runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), **(env or {})}},
        ).remote(config, ACCOUNT)
        made.append(a)
        return a
    yield make
    for a in made:
        try:
            ray_session.get(a.stop.remote(), timeout=30)
        except Exception:
            pass
        ray_session.kill(a)




def test_actor_killed_mid_pass_then_replaced_emits_each_message_once(ray_session, actors, config,
                                                                     chat_site, store):
    expected = {f"message.seen:{ACCOUNT}:{c}:{chat_site.inject(c, 'Alice', f'{c} #{i}')}"
                for c in ("c1", "c2", "c3") for i in range(3)}
    first = actors(config, "1")
    ray_session.get(first.start.remote(), timeout=60)
    chat_site.faults(slow_ms=300)  # each page takes a while: the kill lands mid-pass
    first.poll.remote()
    wait_for(lambda: store.messages.count() >= 3, timeout=30, what="3 messages stored")
    ray_session.kill(first)
    assert store.accounts.cursors.count_documents({}) < 3  # the pass really was cut short
    chat_site.faults(slow_ms=0)
    second = actors(config, "2")
    ray_session.get(second.start.remote(), timeout=60)
    ray_session.get(second.poll.remote(), timeout=60)
    assert ray_session.get(second.poll.remote(), timeout=60)["new"] == []
    rows = list(store.outbox.coll.find({"routing_key": "message.seen"}))
    assert {r["_id"] for r in rows} == expected and len(rows) == 9
    assert all(r["headers"]["traceparent"] for r in rows)
    assert chat_site.stats()["login_submissions"] == 1  # the replacement reused the stored session
    ping = ray_session.get(second.ping.remote())
    assert ping["account"] == ACCOUNT and ping["logged_in"] and ping["last_poll_at"]
    spans = [s for s in telemetry.read_spans(config.settings.trace_file) if s["name"] == "browser.message_seen"]
    assert {s["attributes"]["message.id"] for s in spans} >= {e.split(":", 1)[1] for e in expected}
    assert all(s["parent_id"] is None for s in spans)


@pytest.mark.parametrize("theme,site", [("classic", "classic"), ("aria", "aria")])  # form post, XHR
def test_reply_sent_once_when_actor_dies_right_after_click(ray_session, actors, make_config, chat_site,
                                                          store, artifacts_dir, theme, site):
    chat_site.theme(theme)
    config = make_config(
        app={"browser": {"artifacts_dir": str(artifacts_dir), "selector_timeout_s": 1,
                         "retry_backoff_s": 0.01},
             "accounts": [{"id": ACCOUNT, "site": site, "navigations_per_minute": 1000,
                           "sends_per_minute": 100, "max_pages": 3}]},
        MEETME_URL=chat_site.url)
    chat_site.inject("c1", "Alice", "still on for tonight?")
    poller = actors(config, "poll")
    ray_session.get(poller.poll.remote(), timeout=60)
    ray_session.get(poller.stop.remote(), timeout=30)
    last = store.messages.conversation(ACCOUNT, "c1")[-1].message_id
    did = draft_id(ACCOUNT, "c1", last)
    store.drafts.insert({"_id": did, "account_id": ACCOUNT, "conversation_id": "c1",
                         "message_ids": [last], "text": "Yes! 8pm"})
    store.drafts.transition(did, "pending_review", "edited")
    event = DraftApproved.make(draft_id=did, account_id=ACCOUNT, conversation_id="c1",
                               text="Yes! 8pm, see you", approved_by="owner").model_dump(mode="json")
    carrier = {"traceparent": f"00-{PARENT_TRACE}-00f067aa0ba902b7-01"}

    doomed = actors(config, "doomed", env={EXIT_AFTER_SEND_CLICK: "1"})
    with pytest.raises(ray_session.exceptions.RayActorError):
        ray_session.get(doomed.send.remote(event, carrier), timeout=60)
    assert chat_site.sent()["counts"] == {"c1": 1}
    assert store.drafts.get(did)["status"] == "sending"

    heir = actors(config, "heir")
    result = ray_session.get(heir.send.remote(event, carrier), timeout=60)
    assert result["status"] == "already_sent"
    if site == "classic":  # the markup shows the site's id; without one, the content key stands
        assert result["site_message_id"] == chat_site.sent()["messages"][0]["id"]
    assert ray_session.get(heir.send.remote(event, carrier), timeout=60)["status"] == "already_sent"
    assert chat_site.sent()["counts"] == {"c1": 1}
    assert store.drafts.get(did)["status"] == "sent"
    assert store.outbox.coll.count_documents({"routing_key": "reply.sent"}) == 1
    sends = [s for s in telemetry.read_spans(config.settings.trace_file) if s["name"] == "browser.send"]
    assert sends and all(s["trace_id"] == PARENT_TRACE for s in sends)


def test_stop_removes_the_scratch_dir(ray_session, actors, config, chat_site):
    from actors.browser.launcher import scratch_root
    from contracts.ids import stable_hash
    prefix = f"classic-{stable_hash('classic', ACCOUNT, length=12)}-"
    a = actors(config, "stop")
    ray_session.get(a.start.remote(), timeout=60)
    pid = ray_session.get(a.__ray_call__.remote(lambda self: os.getpid()), timeout=30)
    scratch = scratch_root() / f"{prefix}{pid}"   # one directory per actor process
    assert any(scratch.iterdir())  # the driver's and Chromium's temp files live here
    ray_session.get(a.stop.remote(), timeout=30)
    assert not scratch.exists()
