"""`./run bench quality` stops on Ctrl-C (SIGINT): the benchmark exits (status 130, one line, no
traceback) and stops the servers it started -- the llama.cpp child too, even on a second Ctrl-C
during the cleanup."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from contracts.settings import ROOT
from tests.helpers import wait_for

pytestmark = pytest.mark.timeout(300)
BENCH = ROOT / "benchmarks" / "bench_quality.py"


def _bench(env_extra: dict[str, str], *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AI_", "COVERAGE_PROCESS"))}
    env.update(PYTHONUNBUFFERED="1", **env_extra)
    # as from a terminal: a test run in the background (CI, `cmd &`) inherits SIGINT ignored, and
    # Python keeps an ignored SIGINT ignored; the child restores the default before it execs
    argv = [sys.executable, str(BENCH), *args]
    exec_with_sigint = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                        "os.execv(sys.argv[1], sys.argv[1:])")
    return subprocess.Popen([sys.executable, "-c", exec_with_sigint, *argv], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def _wait_drafting(proc: subprocess.Popen) -> list[str]:
    """Read the benchmark's output up to the line that says drafting has begun."""
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("Drafting quality:"):
            return lines
    raise AssertionError(f"the benchmark ended before drafting: {''.join(lines)}{proc.stderr.read()}")


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(c) for c in (task / "children").read_text().split())
    return found


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


@pytest.fixture
def silent_ai():
    """An OpenAI-compatible endpoint that lists a model and never answers a completion: the
    benchmark stays busy drafting until it is interrupted."""
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = json.dumps({"data": [{"id": "silent"}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            release.wait(120)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    release.set()
    server.shutdown()
    server.server_close()


def test_ctrl_c_stops_the_benchmark_while_it_drafts(silent_ai):
    proc = _bench({"AI_API_URL": silent_ai, "AI_API_KEY": "sk-silent-0123456789"},
                  "--only", "en-")
    try:
        _wait_drafting(proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert "bench_quality: interrupted" in err and "Traceback" not in err, err


@pytest.mark.full
def test_ctrl_c_twice_stops_the_benchmark_and_its_llama_server():
    """The shipped model on its own llama.cpp child: Ctrl-C, and another during the cleanup."""
    proc = _bench({}, "--only", "en-", "--ctx", "1024", "--threads", "1")
    try:
        _wait_drafting(proc)
        llama = [c for c in _children(proc.pid)
                 if "standins.llama" in Path(f"/proc/{c}/cmdline").read_text()]
        assert len(llama) == 1, llama
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, out + err
        wait_for(lambda: _gone(llama[0]), 30, "the llama.cpp child gone")
    finally:
        if proc.poll() is None:
            proc.kill()
