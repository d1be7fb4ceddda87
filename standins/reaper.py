"""A watchdog for servers a run started itself: when the run's process is gone, however it went
(Ctrl-C, SIGTERM, SIGKILL, a crash in native code), every process whose command line names the
run's work directory (its broker node, its database server) is killed and the directory removed.

    python -m standins.reaper PID WORKDIR

`start(workdir)` spawns it for the calling process. A clean exit of the run does the same itself;
the reaper then finds nothing to do."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path


def start(workdir: Path | str) -> subprocess.Popen:
    """Watch the calling process; clean up `workdir`'s servers once it is gone."""
    return subprocess.Popen([sys.executable, "-m", "standins.reaper", str(os.getpid()), str(workdir)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True,
                            cwd=Path(__file__).resolve().parents[1])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:   # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def naming(workdir: str) -> list[int]:
    """Pids of the processes whose command line mentions `workdir` (never this one)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            args = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if workdir in args:
            pids.append(int(entry.name))
    return pids


def reap(workdir: str) -> int:
    """Kill what still runs from `workdir` (TERM, then KILL) and remove it; how many were found."""
    found = naming(workdir)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in naming(workdir):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while naming(workdir) and time.monotonic() < deadline:
            time.sleep(0.2)
    shutil.rmtree(workdir, ignore_errors=True)
    return len(found)


def main(argv: list[str]) -> int:
    pid, workdir = int(argv[0]), argv[1]
    while alive(pid):
        time.sleep(1.0)
    reap(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
