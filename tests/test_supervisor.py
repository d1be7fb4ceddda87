"""The supervisor keeps the pipeline alive: restarts (ray.kill and a killed process) with backoff,
gives up on a child that crashes in a loop, and survives its own restart without duplicates."""
from __future__ import annotations

import os
import signal

import ray
import yaml
from ray._private import state as ray_state

from actors.store import Store
from contracts.settings import ROOT
from tests.fixtures.infra import BASE_ENV
from tests.helpers import wait_for

BROWSER = "browser:classic:meetme-main"


def _child(handle, name):
    return next(c for c in ray.get(handle.status.remote())["children"] if c["name"] == name)


def _alive(ns, name):
    """Live actors with this name, from the GCS (the shared test Ray runs without a dashboard).
    Names are per namespace; each test's namespace is unique, so the name alone identifies."""
    return [a for a in ray_state.actors().values()
            if a.get("Name") == name and a.get("State") == "ALIVE"
            and a.get("RayNamespace") in (None, ns)]


def _draft_for(store, site_id, chat_site_conv):
    msg = store.messages.coll.find_one({"site_message_id": site_id, "conversation_id": chat_site_conv})
    return msg and store.drafts.coll.find_one({"last_message_id": msg["_id"]})


def test_killed_children_are_restarted_and_the_flow_resumes(start_pipeline, chat_site):
    cfg, handle = start_pipeline()
    store = Store.from_config(cfg)
    first = chat_site.inject("c-1", "Ann", "Hello there, how was your weekend?")
    wait_for(lambda: _draft_for(store, first, "c-1"), what="first draft")

    # 1) ray.kill of the browser session
    before = _child(handle, BROWSER)
    ray.kill(ray.get_actor(BROWSER, namespace=cfg.settings.namespace), no_restart=True)
    after = wait_for(lambda: (c := _child(handle, BROWSER))["state"] == "running"
                     and c["actor_id"] != before["actor_id"] and c, timeout=30, what="browser restart")
    assert after["restarts"] == 1
    second = chat_site.inject("c-1", "Ann", "Are you around on Sunday?")
    wait_for(lambda: _draft_for(store, second, "c-1"), what="draft after the browser restart")

    # 2) the AI worker's process killed with SIGKILL
    worker = ray.get_actor("ai:0", namespace=cfg.settings.namespace)
    os.kill(ray.get(worker.__ray_call__.remote(lambda self: os.getpid())), signal.SIGKILL)
    wait_for(lambda: (c := _child(handle, "ai:0"))["state"] == "running" and c["restarts"] == 1,
             timeout=30, what="AI worker restart")
    third = chat_site.inject("c-2", "Ben", "Hi! Do you like board games?")
    wait_for(lambda: _draft_for(store, third, "c-2"), what="draft after the AI worker restart")

    # nothing was extracted twice across the restarts
    assert store.messages.count() == 3
    assert store.drafts.count() == 3


def _failed_status(handle):
    return wait_for(lambda: (s := ray.get(handle.status.remote()))["failed"] and s, timeout=120,
                    what="the child to be marked failed")


def test_a_child_crashing_in_a_loop_is_stopped_and_reported(start_pipeline, chat_site):
    chat_site.faults(http500=100000)  # the site is down: every start() fails after its retries
    cfg, handle = start_pipeline(
        app={"browser": {"page_retries": 1, "retry_backoff_s": 0.05},
             "supervisor": {"heartbeat_s": 0.5, "restart": {"max_restarts": 2, "within_s": 300,
                                                            "backoff_initial_s": 0.1,
                                                            "backoff_max_s": 0.5}}})
    status = _failed_status(handle)
    child = next(c for c in status["children"] if c["name"] == BROWSER)
    assert status["failed"] == [BROWSER]
    assert child["state"] == "failed" and child["restarts"] == 2   # the intensity limit
    assert "500" in child["last_error"]
    others = [c for c in status["children"] if c["name"] != BROWSER]
    assert all(c["state"] == "running" for c in others)
    assert not _alive(cfg.settings.namespace, BROWSER)  # not restarted forever


def test_a_permanent_error_is_not_retried(start_pipeline):
    cfg, handle = start_pipeline(MEETME_PASSWORD="wrong-password-on-purpose")
    status = _failed_status(handle)
    child = next(c for c in status["children"] if c["name"] == BROWSER)
    assert child["state"] == "failed" and child["restarts"] == 0  # no hammering the login form
    assert "LoginFailed" in child["last_error"]
    assert "wrong-password-on-purpose" not in child["last_error"]


def test_supervisor_restart_adopts_children_without_duplicates(start_pipeline, chat_site):
    cfg, handle = start_pipeline()
    ns = cfg.settings.namespace
    store = Store.from_config(cfg)
    ids = {c["name"]: c["actor_id"] for c in ray.get(handle.status.remote())["children"]}

    ray.kill(handle, no_restart=False)  # Ray restarts it (max_restarts); __init__ runs again
    # calls made while Ray still reports the actor as restarting fail fast (max_task_retries=0)
    status = wait_for(lambda: _try(handle.wait_running, 30), timeout=90,
                      what="the supervisor to come back with its children running")
    assert {c["name"]: c["actor_id"] for c in status["children"]} == ids
    for name in ids:
        assert len(_alive(ns, name)) == 1, name

    site_id = chat_site.inject("c-9", "Cleo", "Hey, nice profile! What music do you like?")
    wait_for(lambda: _draft_for(store, site_id, "c-9"), what="draft after the supervisor restart")
    assert store.messages.count() == 1


def _try(method, *args):
    try:
        return ray.get(method.remote(*args), timeout=60)
    except (ray.exceptions.ActorUnavailableError, ray.exceptions.GetTimeoutError):
        return None


def test_a_live_site_is_read_when_its_page_changes_not_on_the_poll_interval(start_pipeline, chat_site):
    """Under the supervisor, a live site's session is asked for its next pass at once and waits
    for its page: with poll and safety intervals of 10 minutes, a pushed message is drafted."""
    live = {**yaml.safe_load((ROOT / "standins" / "sites" / "classic.yaml").read_text()), "live": True}
    cfg, handle = start_pipeline(
        app={"accounts": [{"id": "meetme-main", "site": "classic", "poll_interval_s": 600,
                           "safety_poll_s": 600, "navigations_per_minute": 600,
                           "sends_per_minute": 60}]},
        sites={"classic": live})
    store = Store.from_config(cfg)
    first = chat_site.inject("c-1", "Ann", "Hello there!")
    wait_for(lambda: _draft_for(store, first, "c-1"), timeout=60, what="first draft")
    pushes = chat_site.stats()["live_pushes"]
    second = chat_site.inject("c-1", "Ann", "Still there?")
    wait_for(lambda: _draft_for(store, second, "c-1"), timeout=60, what="the pushed message drafted")
    assert chat_site.stats()["live_pushes"] > pushes and store.messages.count() == 2
    assert _child(handle, BROWSER)["restarts"] == 0


def test_a_redesigned_site_shows_the_session_degraded_and_recovers(start_pipeline, chat_site):
    """The supervisor's status names what misses on a session's site; nothing is lost meanwhile."""
    cfg, handle = start_pipeline()
    store = Store.from_config(cfg)
    first = chat_site.inject("c-1", "Ann", "Hello there!")
    wait_for(lambda: _draft_for(store, first, "c-1"), what="first draft")
    assert _child(handle, BROWSER)["info"]["health"] == {"status": "ok", "missing": []}
    chat_site.theme("aria")  # a redesign the classic spec does not describe
    chat_site.inject("c-1", "Ann", "Still there?")
    degraded = wait_for(lambda: (c := _child(handle, BROWSER))["info"].get("health", {}).get("status")
                        == "degraded" and c, timeout=30, what="the session to report degraded")
    missing = {m["element"]: m for m in degraded["info"]["health"]["missing"]}
    assert "message" in missing and missing["message"]["selectors"] and "/chat/c-1" in missing["message"]["url"]
    assert degraded["state"] == "running" and degraded["restarts"] == 0  # a markup miss is no crash
    assert store.messages.count() == 1
    chat_site.theme("classic")  # the site rolls the redesign back
    wait_for(lambda: store.messages.count() == 2, timeout=30, what="the message missed meanwhile")
    wait_for(lambda: _child(handle, BROWSER)["info"]["health"]["status"] == "ok", timeout=30,
             what="the session to report ok again")


def _ids(handle):
    return {c["name"]: c["actor_id"] for c in ray.get(handle.status.remote())["children"]}


def test_fixed_yaml_reloaded_while_running_brings_a_failed_session_back(start_pipeline, chat_site, tmp_path):
    """The operator's loop: the site changed, the session failed; the YAML is fixed and reloaded
    while everything runs. Only that session restarts (the other actors keep their ids), with a
    fresh restart budget, and every message that arrived meanwhile is extracted once. A reload of
    an invalid config is refused and changes nothing."""
    import yaml

    from contracts.settings import ROOT, ConfigError
    from supervisor import runner
    good = yaml.safe_load((ROOT / "standins" / "sites" / "classic.yaml").read_text())
    broken = {**good, "elements": {**good["elements"],
                                   "login_username": {"selectors": ["input#user"]},
                                   "login_password": {"selectors": ["input#pass"]},
                                   "login_submit": {"selectors": ["button#go"]}}}
    chat_site.inject("c-1", "Ann", "Hello, anyone there?")
    cfg, handle = start_pipeline(
        sites={"classic": broken},
        app={"supervisor": {"heartbeat_s": 0.5, "restart": {"max_restarts": 2, "within_s": 300,
                                                            "backoff_initial_s": 0.1, "backoff_max_s": 0.5}}})
    status = _failed_status(handle)
    assert status["failed"] == [BROWSER] and "login_username" in _child(handle, BROWSER)["last_error"]
    chat_site.inject("c-2", "Bob", "Hi! Are you free tomorrow?")
    before = _ids(handle)
    conf = tmp_path / "conf"
    (conf / "replydesk.yaml").write_text((conf / "replydesk.yaml").read_text() + "\nbogus: 1\n")
    try:
        runner.reload(handle, str(conf / "replydesk.yaml"))
        raise AssertionError("an invalid config was applied")
    except ConfigError as exc:
        assert "bogus" in str(exc)
    assert _ids(handle) == before and _child(handle, BROWSER)["state"] == "failed"
    text = (conf / "replydesk.yaml").read_text()
    (conf / "replydesk.yaml").write_text(text.replace("\nbogus: 1\n", "\n"))
    (conf / "sites" / "classic.yaml").write_text(yaml.safe_dump(good))  # the fix
    result = runner.reload(handle, str(conf / "replydesk.yaml"))
    assert result["reload"]["restarted"] == [BROWSER] and not result["reload"]["added"]
    running = wait_for(lambda: (c := _child(handle, BROWSER))["state"] == "running" and c, timeout=60,
                       what="the fixed session running")
    assert running["restarts"] == 0  # a fresh restart budget
    after = _ids(handle)
    assert {n: i for n, i in after.items() if n != BROWSER} == {n: i for n, i in before.items() if n != BROWSER}
    store = Store.from_config(cfg)
    wait_for(lambda: store.drafts.count() == 2, timeout=60, what="both waiting conversations drafted")
    assert store.messages.count() == 2
    assert runner.reload(handle, str(conf / "replydesk.yaml"))["reload"]["restarted"] == []  # nothing changed


def _storage_state_for(chat_site, folder):
    """state.json as `playwright codegen --save-storage` writes it, for a session the owner
    opened in their own browser (the stand-in hands out its cookie)."""
    import json
    from urllib.parse import urlparse
    cookie = chat_site.session_cookie(BASE_ENV["MEETME_USERNAME"])
    state = {"cookies": [{"name": cookie["cookie"], "value": cookie["value"],
                          "domain": urlparse(chat_site.url).hostname, "path": "/", "expires": -1,
                          "httpOnly": True, "secure": False, "sameSite": "Lax"}], "origins": []}
    path = folder / "state.json"
    path.write_text(json.dumps(state))
    return path


def test_a_login_challenge_is_handed_to_a_person_then_the_session_resumes(start_pipeline, chat_site,
                                                                          tmp_path):
    """A captcha at login: needs_login within one pass, no restart, the form not hammered; the
    owner imports a storage state (as `playwright codegen --save-storage` writes) and the session
    resumes by itself, with no other actor restarted, and the waiting message is drafted."""
    import json
    import subprocess
    import sys

    from contracts.settings import ROOT
    chat_site.faults(challenge="captcha")
    cfg, handle = start_pipeline()
    waiting = wait_for(lambda: (c := _child(handle, BROWSER))["status"] == "needs_login" and c,
                       timeout=30, what="the account to need a person")
    assert waiting["restarts"] == 0 and waiting["state"] == "running"
    chat_site.inject("c-1", "Ann", "Hello, is this still available?")
    store = Store.from_config(cfg)
    [event] = list(store.outbox.coll.find({"routing_key": "account.needs_login"}))  # reviewers are told
    assert "captcha" in json.loads(event["body"])["error"]
    # killed while it waits, the session's successor waits too: the form is not tried again
    ray.kill(ray.get_actor(BROWSER, namespace=cfg.settings.namespace), no_restart=True)
    wait_for(lambda: (c := _child(handle, BROWSER))["restarts"] == 1 and c["status"] == "needs_login",
             timeout=30, what="the restarted session still waiting for a person")
    # a reply approved meanwhile is kept for later, not dead-lettered
    from actors.review.decisions import approved_event
    store.drafts.insert({"_id": "d-waiting", "account_id": "meetme-main", "conversation_id": "c-1",
                         "message_ids": [], "text": "Yes, it is!"})
    store.drafts.transition("d-waiting", "pending_review", "approved", decided_by="owner")
    store.outbox.add([approved_event(store.drafts.get("d-waiting"))])
    before = _ids(handle)
    assert chat_site.stats()["login_submissions"] == 1  # one try, then hands off: no hammering
    # the owner logs in on a machine with a screen and brings the state file
    _storage_state_for(chat_site, tmp_path)
    env = {**os.environ}
    r = subprocess.run([sys.executable, "-m", "supervisor", "login", "meetme-main", "--import",
                        str(tmp_path / "state.json"), "--config", str(tmp_path / "conf" / "replydesk.yaml")],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "stored the login state of meetme-main" in r.stdout
    wait_for(lambda: store.drafts.get("d-waiting")["status"] == "sent", timeout=60,
             what="the reply approved while waiting sent after the login")
    assert [m["text"] for m in chat_site.sent()["messages"]] == ["Yes, it is!"]  # once
    wait_for(lambda: store.messages.count({"direction": "in"}) == 1, timeout=60,
             what="the message that waited extracted once")
    assert _child(handle, BROWSER)["status"] == "running"
    assert _ids(handle) == before  # resumed in place: no actor restarted
    assert chat_site.stats()["login_submissions"] == 1


def test_login_import_refuses_a_file_that_is_no_storage_state(tmp_path, make_config):
    from supervisor import login
    cfg = make_config()
    bad = tmp_path / "state.json"
    bad.write_text('{"cookies": [{"name": "sid"}]}')
    assert login.main(cfg, ["meetme-main", "--import", str(bad)]) == 1
    bad.write_text("not json")
    assert login.main(cfg, ["meetme-main", "--import", str(bad)]) == 1
    assert login.main(cfg, ["nobody", "--import", str(bad)]) == 2


def test_headed_login_for_a_person_under_a_virtual_display(make_config, chat_site, tmp_path):
    """`./run login ACCOUNT` opens a visible Chromium (here under Xvfb), fills and sends the form;
    once the inbox shows, the login state is stored for the session to resume with."""
    import shutil
    import subprocess

    from supervisor import login
    xvfb = shutil.which("Xvfb")
    assert xvfb, "Xvfb missing: ./run installs it (apt-get install xvfb)"
    display = f":{90 + os.getpid() % 100}"
    server = subprocess.Popen([xvfb, display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.exists(f"/tmp/.X11-unix/X{display[1:]}"), timeout=20, what="Xvfb")
        cfg = make_config(app={"accounts": [{"id": "meetme-main"}]}, MEETME_URL=chat_site.url)
        os.environ["DISPLAY"] = display
        try:
            assert login.main(cfg, ["meetme-main", "--timeout", "30"]) == 0
        finally:
            del os.environ["DISPLAY"]
        state = Store.from_config(cfg).accounts.storage_state("meetme-main")
        assert any(c["name"] == "mm_sid" for c in state["cookies"])
        assert chat_site.stats()["logins"] == 1
    finally:
        server.terminate()
        server.wait(10)


def test_a_child_restarting_slowly_holds_up_no_event_and_no_other_heartbeat(start_pipeline, chat_site):
    """The browser session is killed and its restart hangs (the site answers every page after
    a minute); meanwhile 200 events flow through the router to the AI worker and every other
    child keeps answering its heartbeats."""
    from contracts.events import ChatMessage, MessageSeen
    cfg, handle = start_pipeline()
    store = Store.from_config(cfg)
    wait_for(lambda: _child(handle, BROWSER)["state"] == "running", what="the session")
    chat_site.faults(slow_ms=60_000)
    ray.kill(ray.get_actor(BROWSER, namespace=cfg.settings.namespace), no_restart=True)
    wait_for(lambda: _child(handle, BROWSER)["state"] != "running", what="the session restarting")
    others = {c["name"]: c["heartbeats"] for c in ray.get(handle.status.remote())["children"]
              if c["name"] != BROWSER}
    msgs = [ChatMessage(message_id=f"slow:{i}", account_id="meetme-main", site="meetme",
                        conversation_id=f"s-{i}", sender="Ann", text=f"Hello {i}, how are you?",
                        sent_at="2026-01-01T10:00:00Z") for i in range(200)]
    store.messages.insert(msgs)
    store.outbox.add([MessageSeen.of(m) for m in msgs])

    def progress():
        now = {c["name"]: c for c in ray.get(handle.status.remote())["children"]}
        beats = {n: now[n]["heartbeats"] - before for n, before in others.items()}
        done = store.conversations.coll.count_documents({"conversation_id": {"$regex": "^s-"}})
        return done == 200 and all(b >= 3 for b in beats.values()) and now

    now = wait_for(progress, timeout=180, what="200 conversations drafted or classified, 3 more heartbeats of every other child")
    assert now[BROWSER]["state"] != "running"          # all of it happened while it restarted
    chat_site.faults(slow_ms=0)
    if _child(handle, BROWSER)["state"] == "failed":   # its restarts may have run out meanwhile
        ray.get(handle.retry.remote(BROWSER))
    else:  # the hung start would wait out its page; a kill makes the supervisor start it afresh now
        try:
            ray.kill(ray.get_actor(BROWSER, namespace=cfg.settings.namespace), no_restart=True)
        except ValueError:
            pass  # between two starts: the next one meets the healthy site anyway
    wait_for(lambda: _child(handle, BROWSER)["state"] == "running", timeout=120, what="the session back")
