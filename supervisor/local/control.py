"""The daily tools around `up`: `up --detach`, `status`, `down`, `service` (a systemd unit) and
`backup`/`restore` on the embedded database."""
from __future__ import annotations

import getpass
import os
import signal
import subprocess
import sys
import time
from typing import Callable

from contracts.settings import ROOT
from supervisor.local import lock, report
from supervisor.local.paths import Paths


def detach(paths: Paths, argv: list[str], timeout_s: float = 300) -> int:
    """Start `up` in the background (its own session, console to var/logs/up.log); return once it
    runs (the banner printed) or failed (the log's tail printed)."""
    pid = lock.running_pid(paths)
    if pid is not None:
        print(f"up refused: {lock.AlreadyRunning(pid)}", file=sys.stderr)
        return 1
    fd = os.open(paths.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)   # the banner has the token
    os.chmod(paths.log_file, 0o600)
    with os.fdopen(fd, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "supervisor.local", "up", "--detached-child", *argv],
                                cwd=os.getcwd(), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        st = report.read(paths)
        if st and st.get("pid") == proc.pid and st.get("state") == "running":
            token = os.environ.get("REVIEW_TOKEN") or (
                paths.token_file.read_text().strip() if paths.token_file.is_file() else None)
            print(report.banner(st, token))
            print(f"pid {proc.pid}; pid file {paths.pid_file}")
            return 0
        if proc.poll() is not None:
            print(f"up failed (exit {proc.returncode}); the end of {paths.log_file}:", file=sys.stderr)
            print(_tail(paths, 20), file=sys.stderr)
            return 1
        time.sleep(0.3)
    print(f"up did not report running within {timeout_s:.0f} s (pid {proc.pid}); see {paths.log_file}",
          file=sys.stderr)
    return 1


def _tail(paths: Paths, n: int) -> str:
    try:
        return "\n".join(paths.log_file.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def status(paths: Paths) -> int:
    pid = lock.running_pid(paths)
    print(report.status_text(paths, pid))
    return 0 if pid is not None else 3      # as `systemctl status`: 3 = not running


def down(paths: Paths, timeout_s: float = 180) -> int:
    """SIGINT to the running `up` (it stops everything cleanly), then wait for its lock."""
    pid = lock.running_pid(paths)
    if pid is None:
        print("replydesk is not running")
        return 0
    if pid <= 0:            # the lock is held but the pid file is unreadable: never signal blindly
        print(f"replydesk runs but {paths.pid_file} holds no pid; stop it from its console", file=sys.stderr)
        return 1
    try:
        os.kill(pid, signal.SIGINT)     # as Ctrl-C (Ray's SIGTERM handler prints a stack first)
    except ProcessLookupError:
        pass
    print(f"stopping replydesk (pid {pid})...", flush=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if lock.running_pid(paths) is None:
            print("replydesk stopped")
            return 0
        time.sleep(0.3)
    print(f"replydesk (pid {pid}) did not stop within {timeout_s:.0f} s; `kill -9 {pid}` ends it "
          "(nothing is lost: the next `up` takes everything up where it was)", file=sys.stderr)
    return 1


def reload(paths: Paths, argv: list[str]) -> int:
    """`./run reload`: SIGHUP to the running `up` (it re-reads conf/ and says what changed), else
    the job's own reload (`python -m supervisor reload`, a supervisor in a Ray cluster)."""
    pid = lock.running_pid(paths)
    if pid is None or pid < 0:
        from supervisor.__main__ import main as job
        return job(["reload", *argv])
    os.kill(pid, signal.SIGHUP)
    where = paths.log_file if (report.read(paths) or {}).get("detached") else "its console"
    print(f"reload asked of replydesk (pid {pid}); what changed (or why nothing did) is in {where}")
    return 0


UNIT = """[Unit]
Description=replydesk (chat inbox assistant): ./run up
Wants=network-online.target
After=network-online.target rabbitmq-server.service

[Service]
Type=simple
User={user}
WorkingDirectory={root}
Environment=REPLYDESK_VAR={var}
ExecStart={root}/run up
ExecStop={root}/run down
KillSignal=SIGINT
TimeoutStopSec=180
Restart=on-failure
RestartSec=10

[Install]
WantedBy=multi-user.target
"""


def service(paths: Paths) -> int:
    """Write var/replydesk.service and say how to enable it."""
    unit = paths.var / "replydesk.service"
    unit.write_text(UNIT.format(user=getpass.getuser(), root=ROOT, var=paths.var))
    print(f"wrote {unit}; to start replydesk at boot (and again whenever it fails):\n"
          f"  sudo cp {unit} /etc/systemd/system/replydesk.service\n"
          "  sudo systemctl daemon-reload && sudo systemctl enable --now replydesk\n"
          "then: systemctl status replydesk, journalctl -u replydesk -f, ./run status")
    return 0


def with_embedded(paths: Paths, tool: Callable[[], int]) -> int:
    """Run an operator tool (`login`, `doctor`, `backup`, `restore`) on what `up` embeds: with
    MONGODB_URI unset, on the running `up`'s database, else on var/db started for the duration;
    with no reviewer token set, the one `up` uses (var/review_token)."""
    from contracts.settings import ConfigError, load_settings
    try:
        s = load_settings()
    except ConfigError:
        return tool()                   # the tool names what is wrong
    if s.review_token is None and s.review_tokens is None and s.review_tokens_file is None:
        os.environ["REVIEW_TOKEN"] = paths.review_token()[0]
    if s.mongodb_uri is not None:
        return tool()
    pid = lock.running_pid(paths)
    if pid is not None:
        st = report.read(paths)
        if not st or st.get("pid") != pid or not st.get("db_uri"):
            print("`up` is starting; try again in a moment", file=sys.stderr)
            return 1
        os.environ["MONGODB_URI"] = st["db_uri"]
        return tool()
    from supervisor.local.mongod import MongoServer
    fd = lock.acquire(paths)            # no `up` may start on the files meanwhile
    try:
        with MongoServer(paths.db, sync_on_commit=True, die_with_parent=True) as db:
            os.environ["MONGODB_URI"] = db.uri
            return tool()
    finally:
        lock.release(paths, fd)
