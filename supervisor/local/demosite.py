"""`./run up`'s built-in demo site: the phoenix stand-in run as its own child process by module
name (`python -m standins.phoenix`), never imported (the stand-ins sit above the supervisor).

Both of its hosts listen on loopback on ports the child picks; it prints its two URLs once it
serves, and this reads them from its log (var/logs/demo-site.log). Accounts and messages are put
in through its admin HTTP API. It is stopped with SIGTERM when `up` ends (`down`, Ctrl-C), and
dies with its parent even when `up` is SIGKILLed.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import requests

from contracts.settings import ROOT
from supervisor.local.mongod import kill_when_parent_dies, stop_child

MODULE = "standins.phoenix"
# the line `python -m standins.phoenix` prints when both hosts serve
READY = re.compile(r"^phoenix: www (?P<www>http://\S+)\s+app (?P<app>http://\S+)", re.MULTILINE)


class DemoSite:
    """The phoenix stand-in as a child process; `.www_url` / `.app_url` once started."""

    def __init__(self, log: Path):
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.www_url = self.app_url = ""

    def start(self, timeout: float = 30) -> "DemoSite":
        cmd = [sys.executable, "-m", MODULE, "--port-www", "0", "--port-app", "0"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
        self.log.parent.mkdir(parents=True, exist_ok=True)
        start = self.log.stat().st_size if self.log.exists() else 0   # the log is appended to
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True, preexec_fn=kill_when_parent_dies)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the demo site ({MODULE}) exited with {self.proc.returncode}; "
                                   f"see {self.log}")
            found = READY.search(self.log.read_bytes()[start:].decode(errors="replace"))
            if found and self._answers(found["app"]):
                self.www_url, self.app_url = found["www"].rstrip("/"), found["app"].rstrip("/")
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the demo site ({MODULE}) did not serve within {timeout}s; see {self.log}")

    @staticmethod
    def _answers(app_url: str) -> bool:
        try:
            return requests.get(app_url + "/_admin/stats", timeout=2).ok
        except requests.RequestException:
            return False

    def _admin(self, path: str, body: dict) -> dict:
        r = requests.post(f"{self.app_url}/_admin{path}", json=body, timeout=30)
        r.raise_for_status()
        return r.json()

    def add_account(self, username: str, password: str) -> None:
        self._admin("/accounts", {"username": username, "password": password})

    def inject(self, conversation_id: str, sender: str, text: str) -> str:
        """An incoming message; returns the site's message id."""
        return self._admin(f"/conversations/{conversation_id}/messages",
                           {"sender": sender, "text": text})["id"]

    def stop(self) -> None:
        stop_child(self.proc)
        self.proc = None
