"""One `up` per data directory: an exclusive flock on var/run/up.lock held for the process's life
(the kernel drops it when the process ends, even by SIGKILL), and its pid in var/run/up.pid."""
from __future__ import annotations

import fcntl
import os

from supervisor.local.paths import Paths


class AlreadyRunning(Exception):
    def __init__(self, pid: int | None):
        super().__init__(f"replydesk is already running (pid {pid if pid else 'unknown'}); "
                         "`./run status` shows it, `./run down` stops it")
        self.pid = pid


def _pid(paths: Paths) -> int | None:
    try:
        return int(paths.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def acquire(paths: Paths) -> int:
    """Take the lock for this process (its fd: keep it open) and write the pid file."""
    paths.ensure()
    fd = os.open(paths.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AlreadyRunning(_pid(paths)) from None
    paths.pid_file.write_text(f"{os.getpid()}\n")
    return fd


def release(paths: Paths, fd: int) -> None:
    try:
        paths.pid_file.unlink()
    except OSError:
        pass
    os.close(fd)


def running_pid(paths: Paths) -> int | None:
    """The pid of the `up` holding the lock, or None when none runs."""
    if not paths.lock_file.exists():
        return None
    fd = os.open(paths.lock_file, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return _pid(paths) or -1
    finally:
        os.close(fd)   # closing drops a lock taken just now
    return None
