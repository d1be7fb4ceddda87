"""A private Ray head started with the `ray` CLI, for tests that must not touch the shared
in-process Ray instance (tests/fixtures/infra.py ray_session).

Why not `ray start` + `ray stop`: `ray stop` has no --temp-dir scope; it terminates EVERY Ray
process on the machine (the shared test instance, other runs'). So the head runs as
`ray start --head --block` in its own process group; terminating that process shuts down exactly
the processes it started, and `stop()` reports any that are still alive afterwards.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
RAY = str(VENV_BIN / "ray")


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[1])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def related_processes(root_pid: int, marker: str | None = None) -> set[int]:
    """Descendants of root_pid plus any process whose command line names `marker` (the temp dir:
    raylet, GCS, agents and workers all carry it, even once re-parented)."""
    parents = {pid: _ppid(pid) for pid in _pids()}
    found = {root_pid}
    grew = True
    while grew:
        new = {pid for pid, pp in parents.items() if pp in found and pid not in found}
        found |= new
        grew = bool(new)
    if marker:
        found |= {pid for pid in parents if marker in _cmdline(pid)}
    found.discard(os.getpid())
    return {pid for pid in found if Path(f"/proc/{pid}").exists()}


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class RayHead:
    temp_dir: Path
    port: int
    dashboard_port: int
    env: dict[str, str]
    metrics_port: int = 0
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    _stopped: bool = field(default=False, repr=False)

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run a `ray` subcommand against this head (RAY_ADDRESS pins the dashboard)."""
        return subprocess.run([RAY, *args], env={**self.env, "RAY_ADDRESS": self.dashboard_url},
                              capture_output=True, text=True, timeout=timeout)

    def metrics(self) -> str:
        """The node's Prometheus metrics endpoint (what the dashboard's Grafana/Prometheus scrape)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            return r.read().decode()

    def job(self, job_id: str) -> dict:
        """The job's record from the dashboard's REST API (status, message, entrypoint...)."""
        with urllib.request.urlopen(f"{self.dashboard_url}/api/jobs/{job_id}", timeout=10) as r:
            return json.loads(r.read())

    def stop(self, timeout: float = 40) -> list[str]:
        """Terminate the head and everything it started; returns the command lines still alive."""
        if self._stopped or self.proc is None:
            return []
        self._stopped = True
        procs = related_processes(self.proc.pid, str(self.temp_dir))
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(alive(p) for p in procs):
            time.sleep(0.2)
        left = [f"{p}: {_cmdline(p)[:160]}" for p in procs if alive(p)]
        for p in procs:
            if alive(p):
                os.kill(p, signal.SIGKILL)
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        return left


def start_head(resources: dict[str, float], num_cpus: int = 2, timeout: float = 60) -> RayHead:
    """`ray start --head --block` on free ports, token auth off, the venv's python on PATH (so a
    job's `python` is the venv's). The temp dir is short: Ray's unix socket paths must fit 107 bytes."""
    temp = Path(tempfile.mkdtemp(prefix="rdray-", dir="/tmp"))
    port, dash, client, agent, agent_grpc, metrics, rt_agent = free_ports(7)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_AUTH_MODE="disabled", PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}")
    head = RayHead(temp_dir=temp, port=port, dashboard_port=dash, env=env, metrics_port=metrics,
                   log_path=temp / "ray-start.log")
    cmd = [RAY, "start", "--head", "--block", "--disable-usage-stats", f"--temp-dir={temp}",
           "--node-ip-address=127.0.0.1", f"--port={port}", "--include-dashboard=true",
           "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
           f"--ray-client-server-port={client}", f"--dashboard-agent-listen-port={agent}",
           f"--dashboard-agent-grpc-port={agent_grpc}", f"--metrics-export-port={metrics}",
           f"--runtime-env-agent-port={rt_agent}", f"--num-cpus={num_cpus}",
           f"--resources={json.dumps(resources)}"]
    with open(head.log_path, "wb") as log:
        head.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
    deadline = time.monotonic() + timeout
    while True:
        if head.proc.poll() is not None:
            out = head.log_path.read_text()[-2000:]
            head.stop()
            raise RuntimeError(f"ray start exited {head.proc.returncode}: {out}")
        try:
            with urllib.request.urlopen(f"{head.dashboard_url}/api/version", timeout=2):
                break
        except OSError:
            if time.monotonic() > deadline:
                head.stop()
                raise TimeoutError(f"the Ray dashboard did not come up in {timeout}s")
            time.sleep(0.5)
    return head
