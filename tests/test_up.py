"""`./run up` as an owner runs it (`python -m supervisor.local`, what `./run up` executes after
setup): a clean data directory, only the accounts' logins (the chat-site stand-in) and an AI URL
(the AI stand-in). One run is shared by the assertions, in the order a person meets them:

1. `up` in the foreground: the banner names the embedded database and broker and the generated
   token (mode 600) that opens the desk; an account whose first login the site rejects waits in
   needs_login with the command to run (banner, desk, status), never restarted; a second `up` is
   refused with the pid; a message is drafted, approved and sent once; the desk's CSV holds the
   rows a sheet would;
2. SIGKILL of every process of that `up` just after a reply was approved and a new message arrived;
3. `up --detach` on the same data: the approved reply is sent exactly once, the new message is
   drafted, nothing is doubled, the second account still waits without a login attempt;
   `status` says so; `./run login second --import state.json` (the command shown) resumes it;
   `down` stops it and leaves no process behind; `backup` dumps the embedded database afterwards.
"""
from __future__ import annotations

import csv
import io
import json
import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
import yaml
from pymongo import MongoClient

from actors.sheets.derive import stored_rows
from actors.sheets.rows import RowMapper
from actors.store import Store
from contracts.settings import ROOT
from standins.demo import _process_tree, _still_running
from supervisor import runner
from tests.fixtures.infra import BASE_ENV
from tests.helpers import wait_for

pytestmark = pytest.mark.timeout(600)
WRONG = "not-the-password-of-second"


def _conf(tmp_path: Path) -> Path:
    """The shipped config plus a second account whose password the site rejects; the desk on a
    free port and brisk polls (several runs share this machine)."""
    base = yaml.safe_load((ROOT / "conf" / "replydesk.yaml").read_text())
    base["accounts"][0]["poll_interval_s"] = 0.5
    base["accounts"][0]["site"] = "classic"     # the chat-site stand-in's markup, by its own spec
    base["accounts"].append({"id": "second", "site": "classic", "username_env": "SECOND_USERNAME",
                             "password_env": "SECOND_PASSWORD", "poll_interval_s": 0.5})
    base["review"]["port"] = 0
    conf = tmp_path / "conf"
    (conf / "sites").mkdir(parents=True)
    for site in [*(ROOT / "conf" / "sites").glob("*.yaml"), ROOT / "standins" / "sites" / "classic.yaml"]:
        (conf / "sites" / site.name).write_text(site.read_text())
    (conf / "replydesk.yaml").write_text(yaml.safe_dump(base))
    return conf / "replydesk.yaml"


@pytest.fixture
def owner_env(tmp_path, chat_site, ai_server, ns, make_config):
    chat_site.add_account("second@example.com", "the-real-password-2")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MONGODB", "REPLYDESK", "RAY_", "GOOGLE", "SHEETS", "AI_", "REVIEW",
                                "MEETME", "RABBITMQ", "COVERAGE_PROCESS"))}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", REPLYDESK_VAR=str(tmp_path / "var"),
               REPLYDESK_NAMESPACE=ns, REPLYDESK_CONFIG=str(_conf(tmp_path)),
               MEETME_URL=chat_site.url, MEETME_USERNAME="owner@example.com",
               MEETME_PASSWORD=BASE_ENV["MEETME_PASSWORD"],
               SECOND_USERNAME="second@example.com", SECOND_PASSWORD=WRONG,
               AI_API_URL=ai_server.url + "/v1", AI_API_KEY=ai_server.key)
    yield env
    runner.decommission(make_config())          # this run's queues on the shared broker


def _local(env, *args, timeout=120):
    return subprocess.run([sys.executable, "-m", "supervisor.local", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


class Console:
    """A foreground `up` and the lines it prints."""

    def __init__(self, env):
        self.proc = subprocess.Popen([sys.executable, "-m", "supervisor.local", "up"], cwd=ROOT,
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(iter(self.proc.stdout.readline, "")),
                         daemon=True).start()

    def wait_for_line(self, start: str, timeout: float) -> str:
        return wait_for(lambda: next((x for x in self.lines if x.startswith(start)), None)
                        or (self.proc.poll() is not None and pytest.fail("".join(self.lines))),
                        timeout, f"a line starting {start!r}", interval=0.3)


def _columns() -> list[str]:
    return yaml.safe_load((ROOT / "conf" / "replydesk.yaml").read_text())["sheets"]["columns"]


def _desk(var: Path) -> tuple[str, dict[str, str]]:
    status = json.loads((var / "run" / "status.json").read_text())
    token = (var / "review_token").read_text().strip()
    return status["desk_url"], {"Authorization": f"Bearer {token}"}


def _draft_for(url, auth, conversation: str) -> dict:
    def find():
        drafts = requests.get(f"{url}/api/drafts", headers=auth, timeout=10).json()["drafts"]
        return next((d for d in drafts if d["conversation_id"] == conversation), None)
    return wait_for(find, 120, f"a draft for {conversation}", interval=0.5)


def _kill_everything(root: int) -> list[int]:
    """SIGKILL `root` and every process under it (twice: one may have been starting)."""
    killed: list[int] = []
    for _ in range(2):
        pids = [root, *_process_tree(root)]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    return sorted(set(killed))


def test_up_runs_the_real_job_on_embedded_defaults_and_survives_sigkill(owner_env, chat_site, tmp_path):
    var = Path(owner_env["REPLYDESK_VAR"])
    chat_site.inject("c-ann", "Ann", "Hi! Do you like hiking? Any favourite trails?")
    up = Console(owner_env)
    family: list[int] = []
    try:
        up.wait_for_line("running; Ctrl-C", 240)
        out = "".join(up.lines)
        assert up.lines[0].startswith("replydesk up: accounts meetme-main (classic), second (classic)"), out
        assert "database: embedded SecantusDB at mongodb://127.0.0.1:" in out and str(var / "db") in out
        assert "broker: the local RabbitMQ at 127.0.0.1:5672" in out
        assert f"desk token: generated in {var / 'review_token'} (mode 600)" in out
        assert "second: needs_login -- a person must log in: ./run login second" in out, out
        assert WRONG not in out and owner_env["AI_API_KEY"] not in out
        assert stat.S_IMODE((var / "review_token").stat().st_mode) == 0o600
        url, auth = _desk(var)
        token = auth["Authorization"].split()[1]
        assert f"review desk: {url}/#token={token}" in out

        # the generated token opens the desk (and nothing else does)
        assert requests.get(f"{url}/api/meta", timeout=10).status_code == 401
        accounts = requests.get(f"{url}/api/accounts", headers=auth, timeout=10).json()["accounts"]
        second = next(a for a in accounts if a["account"] == "second")
        assert second["state"] == "needs_login" and "./run login second" in second["last_error"]

        # a second `up` on the same data is refused with the pid
        again = _local(owner_env, "up", timeout=60)
        assert again.returncode == 1 and f"already running (pid {up.proc.pid})" in again.stderr

        # drafted, approved, sent once
        draft = _draft_for(url, auth, "c-ann")
        r = requests.post(f"{url}/api/drafts/{draft['id']}/approve", headers=auth, json={}, timeout=30)
        assert r.status_code == 200, r.text
        wait_for(lambda: requests.get(f"{url}/api/drafts/{draft['id']}", headers=auth, timeout=10)
                 .json()["draft"]["status"] == "sent", 120, "the reply to be sent", interval=0.5)
        assert [m["conversation_id"] for m in chat_site.sent()["messages"]] == ["c-ann"]

        # the CSV holds the rows a sheet would: the message, the draft, its approval, the send
        status = json.loads((var / "run" / "status.json").read_text())
        store = Store(status["db_uri"], "replydesk")
        async def rows() -> dict:
            return {r.row_id: r.values async for page in stored_rows(store.inline, RowMapper(_columns()))
                    for r in page}
        want = store.run(rows())
        got = requests.get(f"{url}/api/log.csv", headers=auth, timeout=30)
        assert got.headers["Content-Type"].startswith("text/csv")
        assert "attachment" in got.headers["Content-Disposition"]
        table = list(csv.reader(io.StringIO(got.text)))
        assert table[0] == _columns()
        assert {row[0]: row for row in table[1:]} == want
        did = draft["id"]
        assert {*draft["message_ids"], did, f"draft.approved:{did}", f"reply.sent:{did}"} <= set(want), want

        # mid-flow: a new message arrives and the next reply is approved; then SIGKILL everything
        chat_site.inject("c-ann", "Ann", "Also, would Saturday morning work for you?")
        chat_site.inject("c-bo", "Bo", "Hello! What music do you like?")
        draft2 = wait_for(lambda: (d := _draft_for(url, auth, "c-ann")) and d["id"] != draft["id"] and d,
                          120, "a draft for the new message", interval=0.5)
        r = requests.post(f"{url}/api/drafts/{draft2['id']}/approve", headers=auth, json={}, timeout=30)
        assert r.status_code == 200, r.text
        logins = chat_site.stats()["login_submissions"]
        family = _kill_everything(up.proc.pid)
    finally:
        if up.proc.poll() is None:       # a failure above: leave nothing of it running
            _kill_everything(up.proc.pid)
        up.proc.wait(30)
    wait_for(lambda: not _still_running(family), 30, "every killed process to be gone")
    status = json.loads((var / "run" / "status.json").read_text())
    assert status["state"] == "running"            # it never got to say it stopped
    assert _local(owner_env, "status").returncode == 3   # but `status` knows it is not running

    # again, in the background, on the same data: everything taken up where it was
    started = _local(owner_env, "up", "--detach", timeout=300)
    assert started.returncode == 0, started.stdout + started.stderr
    assert "running in the background" in started.stdout
    pid = int((var / "run" / "up.pid").read_text())
    token = (var / "review_token").read_text().strip()
    assert f"/#token={token}" in started.stdout                                # the link, as before
    assert stat.S_IMODE((var / "logs" / "up.log").stat().st_mode) == 0o600     # its console has it too
    assert token not in (var / "run" / "status.json").read_text()              # the status file never
    try:
        url, auth = _desk(var)
        wait_for(lambda: len(chat_site.sent()["messages"]) >= 2, 120, "the approved reply to be sent", interval=0.5)
        _draft_for(url, auth, "c-bo")
        status = json.loads((var / "run" / "status.json").read_text())
        db = MongoClient(status["db_uri"])["replydesk"]
        sent = chat_site.sent()["messages"]
        assert [m["conversation_id"] for m in sent] == ["c-ann", "c-ann"]        # each reply once
        assert sent[1]["text"] == db.drafts.find_one({"_id": draft2["id"]})["text"]
        assert db.messages.count_documents({"direction": {"$ne": "out"}}) == 3   # nothing lost or doubled
        wait_for(lambda: db.sends.count_documents({}) == 2 and db.drafts.count_documents({"status": "sent"}) == 2,
                 60, "both sends to be recorded")            # the site shows a reply before it is recorded
        assert chat_site.stats()["login_submissions"] == logins   # the stored session; second waits
        shown = _local(owner_env, "status")
        assert shown.returncode == 0, shown.stderr
        assert f"replydesk is running (pid {pid}" in shown.stdout
        assert "second: needs_login -- a person must log in: ./run login second" in shown.stdout
        assert "meetme-main: running" in shown.stdout and "drafts waiting for review: 1" in shown.stdout
        second = next(a for a in status["accounts"] if a["account"] == "second")
        assert second["restarts"] == 0                                              # no restart loop
        # the command shown, as the person runs it: a login state saved elsewhere, imported into
        # the running `up`'s embedded database; the account resumes by itself
        cookie = chat_site.session_cookie("second@example.com")
        state = tmp_path / "state.json"
        state.write_text(json.dumps({"cookies": [{"name": cookie["cookie"], "value": cookie["value"],
                                                  "domain": "127.0.0.1", "path": "/"}], "origins": []}))
        login = _local(owner_env, "login", "second", "--import", str(state))
        assert login.returncode == 0 and "stored the login state of second" in login.stdout, login.stderr
        wait_for(lambda: next(a for a in json.loads((var / "run" / "status.json").read_text())["accounts"]
                              if a["account"] == "second")["state"] == "running", 90, "second to resume")
        tree = _process_tree(pid)
    finally:
        stopped = _local(owner_env, "down", timeout=240)
    assert stopped.returncode == 0 and "replydesk stopped" in stopped.stdout, stopped.stdout + stopped.stderr
    wait_for(lambda: not _still_running([pid, *tree]), 60, "every process of `up` to end")
    assert _local(owner_env, "status").returncode == 3

    # the embedded database is backed up with `./run backup` while nothing runs
    dump = tmp_path / "dump"
    backup = _local(owner_env, "backup", "--out", str(dump))
    assert backup.returncode == 0, backup.stderr
    manifest = json.loads((dump / "manifest.json").read_text())
    assert "messages" in json.dumps(manifest) and len((dump / "sends.jsonl").read_text().splitlines()) == 2


def test_service_writes_a_systemd_unit_that_starts_up_at_boot(tmp_path):
    env = {**os.environ, "REPLYDESK_VAR": str(tmp_path / "var"), "PYTHONPATH": str(ROOT)}
    r = _local(env, "service", timeout=60)
    assert r.returncode == 0, r.stderr
    unit = (tmp_path / "var" / "replydesk.service").read_text()
    assert f"ExecStart={ROOT}/run up\n" in unit and f"ExecStop={ROOT}/run down\n" in unit
    assert f"WorkingDirectory={ROOT}\n" in unit and f"Environment=REPLYDESK_VAR={tmp_path / 'var'}\n" in unit
    assert "Restart=on-failure\n" in unit and "WantedBy=multi-user.target\n" in unit
    assert "systemctl enable --now replydesk" in r.stdout and str(tmp_path / "var" / "replydesk.service") in r.stdout


def test_no_credentials_run_on_the_demo_site_and_say_so_first(tmp_path, monkeypatch):
    """No account has credentials: `up` serves the built-in demo site (a login per account, a few
    messages waiting), says so in its first line, and the strict config then loads."""
    from contracts import settings
    from supervisor.local import embedded
    from supervisor.local.paths import Paths
    from supervisor.local.up import first_line
    for k in list(os.environ):
        if k.startswith(("MEETME", "MONGODB", "REVIEW", "REPLYDESK", "GOOGLE", "SHEETS")):
            monkeypatch.delenv(k)
    monkeypatch.setenv("AI_API_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("MONGODB_URI", "mongodb://127.0.0.1:9/")    # the database is not the point here
    pre = settings.load(embedded=True)
    assert pre.account_credentials == {} and not pre.reviewers
    saved = dict(os.environ)                   # prepare() sets variables: none may leak out
    emb = embedded.prepare(Paths(tmp_path / "var").ensure(), pre)
    try:
        assert emb.demo_site and any(line.startswith("site: the built-in demo site") for line in emb.lines)
        config = settings.load()
        assert config.site_url("meetme") == emb.demo_site
        assert config.settings.mongodb_db == embedded.DEMO_DB and config.settings.namespace == embedded.DEMO_NAMESPACE
        assert first_line(config, emb.demo_site).startswith("replydesk up: on the built-in DEMO site")
        # the shipped MeetMe spec reads it: the www host (its start page) and the app host
        assert config.host_urls("meetme")["app"] != emb.demo_site
        assert requests.get(emb.demo_site + "/", timeout=10).status_code == 200
        assert requests.get(config.host_urls("meetme")["app"] + "/", timeout=10).status_code in (200, 302, 401)
        assert stat.S_IMODE((tmp_path / "var" / "review_token").stat().st_mode) == 0o600
        assert config.settings.review_token.get_secret_value() == (tmp_path / "var" / "review_token").read_text().strip()
    finally:
        emb.close()
        os.environ.clear()
        os.environ.update(saved)
    # the site ran as its own child process (supervisor never imports the stand-ins) and stopped with up
    assert "phoenix: www " in (tmp_path / "var" / "logs" / "demo-site.log").read_text()
    with pytest.raises(requests.ConnectionError):
        requests.get(emb.demo_site + "/", timeout=10)
