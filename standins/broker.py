"""A RabbitMQ node of our own (chaos runs restart and disconnect it): its own node name, AMQP and
distribution ports, config, mnesia and log directories, so the shared broker on 5672 (which the
test suite uses) is never touched."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pika

from standins.mongo import free_port


def _hand_to_rabbitmq_user(base: Path) -> None:
    """Debian's rabbitmq-server runs the node as the `rabbitmq` user: it must own its dirs."""
    try:
        import pwd
        user = pwd.getpwnam("rabbitmq")
    except (KeyError, ImportError):
        return
    for d in [base, *base.rglob("*")]:
        try:
            os.chown(d, user.pw_uid, user.pw_gid)
        except PermissionError:
            return
    os.chmod(base, 0o755)


class RabbitNode:
    def __init__(self, base: Path | str | None = None):
        self.base = Path(base or tempfile.mkdtemp(prefix="replydesk-rabbit-"))
        self.node = f"replydesk-chaos-{uuid.uuid4().hex[:6]}@{socket.gethostname().split('.')[0]}"
        self.port = free_port()
        self.dist_port = free_port()
        self.proc: subprocess.Popen | None = None
        (self.base / "log").mkdir(parents=True, exist_ok=True)
        (self.base / "mnesia").mkdir(parents=True, exist_ok=True)
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\nloopback_users.guest = true\n")
        (self.base / "enabled_plugins").write_text("[].\n")
        (self.base / "rabbitmq-env.conf").write_text("")
        _hand_to_rabbitmq_user(self.base)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def _env(self) -> dict[str, str]:
        return {**os.environ, "RABBITMQ_NODENAME": self.node, "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
                "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
                "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
                "RABBITMQ_LOG_BASE": str(self.base / "log"),
                "RABBITMQ_PID_FILE": str(self.base / "node.pid"),
                "ERL_EPMD_ADDRESS": "127.0.0.1", "ERL_CRASH_DUMP": str(self.base / "erl_crash.dump"),
                "ERL_FLAGS": "-kernel inet_dist_use_interface {127,0,0,1}"}

    def _ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(["rabbitmqctl", "-n", self.node, *args], env=self._env(),
                              capture_output=True, text=True, timeout=timeout)

    def answers(self) -> bool:
        try:
            pika.BlockingConnection(pika.URLParameters(
                self.url + "?connection_attempts=1&socket_timeout=2&blocked_connection_timeout=2")).close()
            return True
        except Exception:
            return False

    def start(self, timeout: float = 90) -> "RabbitNode":
        self.proc = subprocess.Popen(["rabbitmq-server"], env=self._env(), start_new_session=True,
                                     stdout=open(self.base / "server.out", "ab"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited with {self.proc.returncode}; "
                                   f"see {self.base / 'server.out'}")
            if self.answers():
                return self
            time.sleep(0.3)
        raise RuntimeError(f"rabbitmq node {self.node} did not answer within {timeout}s")

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if not kill:
            try:
                self._ctl("stop", timeout=60)
            except subprocess.TimeoutExpired:
                kill = True
        if kill or self.proc.poll() is None:
            try:
                self.proc.wait(0 if kill else 20)
            except subprocess.TimeoutExpired:
                pass
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close_connections(self) -> str:
        """Every client is disconnected (as a network blip or a broker failover does)."""
        return self._ctl("close_all_connections", "replydesk chaos: connections closed").stdout

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> "RabbitNode":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
