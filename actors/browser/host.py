"""The shared-browser layout: one Chromium per node, reached over CDP by every session there.

`BrowserHost` is a detached Ray actor pinned to its node (named f"browser-host:{node_id}"), so it
outlives any single session; Chromium is its child and dies with it (PR_SET_PDEATHSIG). The
supervisor runs one per browser node as a child (supervisor/specs.py): heartbeats, restarts and
shutdown as for any other child.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.browser.launcher import CHROMIUM_FLAGS, scratch_root
from contracts import names
from contracts.settings import Config

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@ray.remote(num_cpus=0)
class BrowserHost:
    def __init__(self, config: Config):
        self.dir = scratch_root() / f"shared-{ray.get_runtime_context().get_node_id()[:12]}"
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        args = [config.settings.chromium_path, "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1", f"--user-data-dir={self.dir / 'profile'}",
                *CHROMIUM_FLAGS, "about:blank"]
        if config.settings.headless:
            args.insert(1, "--headless=new")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=_die_with_parent, env={**os.environ, "TMPDIR": str(self.dir)})
        self.endpoint = self._wait_for_port(self.dir / "profile" / "DevToolsActivePort")

    def _wait_for_port(self, port_file: Path, timeout_s: float = 20) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"shared Chromium exited with {self.proc.returncode}")
            if port_file.exists() and port_file.read_text().strip():
                port = port_file.read_text().split()[0]
                return f"http://127.0.0.1:{port}"
            time.sleep(0.05)
        raise RuntimeError("shared Chromium did not open its DevTools port")

    def cdp_endpoint(self) -> str:
        if self.proc.poll() is not None:
            raise RuntimeError(f"shared Chromium exited with {self.proc.returncode}")
        return self.endpoint

    def ping(self) -> dict:
        """The supervisor's start call and heartbeat: a host whose Chromium exited fails it (and
        is restarted, with a new Chromium)."""
        return {"endpoint": self.cdp_endpoint(), "pid": self.proc.pid}

    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


async def shared_endpoint(config: Config) -> str:
    """The CDP endpoint of this node's shared Chromium. The supervisor starts one host per
    browser node (a child spec); a session on a node that joined since is not kept waiting: it
    starts the host itself, and the supervisor adopts it under the same name."""
    node_id = ray.get_runtime_context().get_node_id()
    # in the config's namespace, where the supervisor looks for it (an actor created by an actor
    # otherwise lands in the job's namespace)
    host = BrowserHost.options(
        name=names.browser_host(node_id), namespace=config.settings.namespace,
        get_if_exists=True, lifetime="detached",
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
    ).remote(config)
    return await host.cdp_endpoint.remote()
