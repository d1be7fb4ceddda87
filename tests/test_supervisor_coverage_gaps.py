"""Supervisor operations the pipeline tests never call (found by `./run coverage`): reload with a
changed config, poll_now, handle_of."""
from __future__ import annotations

import ray

from actors.store import Store
from tests.helpers import wait_for

BROWSER = "browser:classic:meetme-main"
SLOW_POLL = 3600.0  # the session never polls again by itself during the test: only poll_now can
#                     explain a second pass (no clock is timed)


def _names(handle) -> dict[str, str]:
    return {c["name"]: c["state"] for c in ray.get(handle.status.remote())["children"]}


def test_handle_of_and_poll_now_trigger_an_immediate_pass(start_pipeline, chat_site):
    first = chat_site.inject("c-1", "Ann", "Hello, are you there?")
    cfg, handle = start_pipeline(app={"accounts": [{"id": "meetme-main", "site": "classic",
                                                    "poll_interval_s": SLOW_POLL}]})
    store = Store.from_config(cfg)
    wait_for(lambda: store.messages.coll.find_one({"site_message_id": first}), timeout=60,
             what="the first pass extracted the first message")

    session = ray.get(handle.handle_of.remote(BROWSER))
    assert ray.get(session.ping.remote())             # the live browser session's handle
    assert ray.get(handle.handle_of.remote("browser:classic:nobody")) is None

    second = chat_site.inject("c-1", "Ann", "Still there?")
    handle.poll_now.remote()
    wait_for(lambda: store.messages.coll.find_one({"site_message_id": second}), timeout=40,
             what="the second message, extracted by the pass poll_now asked for")


def test_reload_starts_added_children_and_stops_removed_ones(start_pipeline, pipeline_config):
    cfg, handle = start_pipeline()
    assert "ai:1" not in _names(handle)

    status = ray.get(handle.reload.remote(pipeline_config({"ai": {"workers": 2}})), timeout=60)
    assert "ai:1" in {c["name"] for c in status["children"]}
    wait_for(lambda: _names(handle).get("ai:1") == "running", timeout=60, what="ai:1 running")
    added = ray.get_actor("ai:1", namespace=cfg.settings.namespace)
    browser_id = next(c["actor_id"] for c in ray.get(handle.status.remote())["children"]
                      if c["name"] == BROWSER)

    status = ray.get(handle.reload.remote(pipeline_config({"ai": {"workers": 1}})), timeout=60)
    names = {c["name"]: c for c in status["children"]}
    assert "ai:1" not in names and "ai:0" in names
    assert names[BROWSER]["actor_id"] == browser_id  # unchanged children keep running untouched
    wait_for(lambda: not _answers(added), timeout=30, what="the removed AI worker stopped")


def _answers(actor) -> bool:
    try:
        ray.get(actor.ping.remote(), timeout=5)
        return True
    except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
        return False
