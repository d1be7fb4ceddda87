"""The chaos run's short variant (`./run chaos --smoke`): about 100 messages over a dozen
conversations while a browser session is killed, the MongoDB-wire server is SIGKILLed and
restarted on its data, the Sheets fake answers 500 after applying an append, and a broker node of
the run's own is restarted. It judges the run against the stand-ins' own records (the chat site's
messages and sends, the Sheets fake's rows, the scripted reviewer's approvals), never our store.

It starts its own Ray, broker node and database server (it kills them), so it runs in its own
process, as the node-loss scenario does."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def chaos_run():
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.pop("MONGODB_URI", None)
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "standins.chaos", "--smoke", "--json",
                             "--settle-timeout-s", "60", "--recovery-timeout-s", "60"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=280)
    except subprocess.TimeoutExpired:  # Ctrl-C, so the run stops its broker node and database itself
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    proc = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line, f"no result (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-4000:]}"
    return json.loads(line[len("RESULT "):]), proc


@pytest.mark.timeout(300)
def test_chaos_short_run_loses_and_duplicates_nothing(chaos_run):
    t, proc = chaos_run
    # ground truth came out: messages were injected and stored, replies reached the contacts
    assert t["messages_injected"] >= 100 and t["conversations"] >= 10, t
    assert t["sends_shown"] >= 10 and t["reviewer"]["approved"] >= t["sends_shown"], t
    assert t["settled"], t
    for column in ("messages_lost", "messages_duplicated", "unanswered", "answered_twice",
                   "sheet_rows_missing", "sheet_rows_duplicated", "sends_lost", "sends_duplicated"):
        assert t[column] == 0, (column, t)
    assert t["messages_stored"] == t["messages_injected"], t
    assert t["dead_letters"] == {}, t
    faults = [r["fault"] for r in t["recovery"]]
    assert {"kill:browser", "mongo:sigkill", "sheets:500_applied", "broker:restart"} <= set(faults)
    assert all(r["recovery_s"] is not None for r in t["recovery"]), t["recovery"]
    assert proc.returncode == 0, proc.stdout[-2000:]


def test_the_chaos_run_leaves_no_process_of_its_own(chaos_run):
    from standins.stack import wait_for
    t, proc = chaos_run

    def leftovers() -> list[str]:
        out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        return [line for line in out.splitlines() if "replydesk-chaos-" in line]
    # its broker node and database are gone; its reaper (which names the run's dir too) exits
    # within a second or two of the run, having found nothing left to stop
    try:
        wait_for(lambda: not leftovers(), timeout=20, what="no process of the chaos run left")
    except TimeoutError:
        pytest.fail(f"the chaos run left processes running: {leftovers()}")


def test_the_reaper_stops_a_runs_servers_when_the_run_is_killed(tmp_path):
    """A run SIGKILLed (no cleanup code of its own runs) leaves no server behind: its reaper
    kills every process naming the run's work dir and removes the dir."""
    from standins import reaper
    from standins.stack import wait_for
    work = tmp_path / "replydesk-reaper-test"
    work.mkdir()
    run = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time\n"
        "from standins import reaper\n"
        "reaper.start(sys.argv[1])\n"
        "server = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', sys.argv[1]],\n"
        "                          start_new_session=True)\n"
        "print(server.pid, flush=True)\n"
        "time.sleep(600)\n"), str(work)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, text=True)
    server = int(run.stdout.readline())
    assert server in reaper.naming(str(work)), "the run's server is up"
    run.kill()
    run.wait(timeout=10)
    wait_for(lambda: not reaper.alive(server) and not work.exists(), timeout=30,
             what="the reaper to stop the run's server and remove its dir")
