"""The MongoDB-wire server (SecantusDB, GPL: run as its own process, never imported): what
`./run up` embeds on var/db (journaled: `sync_on_commit`), and what tests and the demo start on a
scratch directory."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_binary() -> str:
    cand = Path(sys.executable).parent / "secantusd-py"
    if cand.exists():
        return str(cand)
    found = shutil.which("secantusd-py")
    if not found:
        raise RuntimeError("secantusd-py not found: run ./run setup (pip install secantusdb==0.7.0b3)")
    return found


# SecantusDB caps its oplog at 100,000 entries by default; past the cap every write also deletes the
# oldest entries (decoding each), so a long test or benchmark run slows down as it goes. mongod sizes
# its oplog in gigabytes; this keeps about an hour of this project's writes (retention is 1 h).
OPLOG_MAX_ENTRIES = 2_000_000


def kill_when_parent_dies() -> None:
    """In the child before exec: SIGKILL when the parent ends (Linux PR_SET_PDEATHSIG), so a
    SIGKILLed `up` leaves no server holding its data directory (every commit is synced)."""
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)


def stop_child(proc: subprocess.Popen | None, sig: int = signal.SIGTERM) -> None:
    """Signal a child server that is still running and reap it (SIGKILL after 15 s)."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class MongoServer:
    """Start `secantusd-py` on a free port with its own storage dir; restartable on the same data."""

    def __init__(self, storage: Path | str | None = None, port: int | None = None,
                 sync_on_commit: bool = False, oplog_max_entries: int = OPLOG_MAX_ENTRIES,
                 die_with_parent: bool = False):
        self._own_dir = storage is None
        self.storage = Path(storage or tempfile.mkdtemp(prefix="replydesk-mongo-"))
        self.port = port or free_port()
        self.sync_on_commit = sync_on_commit
        self.oplog_max_entries = oplog_max_entries
        self.die_with_parent = die_with_parent   # killed when its starter dies, even by SIGKILL
        self.proc: subprocess.Popen | None = None
        self.log = self.storage.parent / f"{self.storage.name}.log"
        self.storage.mkdir(parents=True, exist_ok=True)

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self, timeout: float = 30) -> "MongoServer":
        cmd = [_server_binary(), "--host", "127.0.0.1", "--port", str(self.port),
               "--storage-path", str(self.storage),
               "--oplog-max-entries", str(self.oplog_max_entries)]
        if self.sync_on_commit:
            cmd.append("--sync-on-commit")
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True,
                                     preexec_fn=kill_when_parent_dies if self.die_with_parent else None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"secantusd-py exited with {self.proc.returncode}; see {self.log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"secantusd-py did not open port {self.port} within {timeout}s")

    def stop(self, kill: bool = False) -> None:
        stop_child(self.proc, signal.SIGKILL if kill else signal.SIGTERM)
        self.proc = None

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.storage, ignore_errors=True)
            try:
                os.unlink(self.log)
            except OSError:
                pass

    def __enter__(self) -> "MongoServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
