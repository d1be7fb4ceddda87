"""Bad infrastructure config fails fast and safe: a broker that refuses our credentials or has no
such virtual host stops the start with one line naming RABBITMQ_URL (its secret masked) and a
non-zero exit; a child's start error always arrives readable, whatever Ray could pickle."""
from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import ray

from contracts.errors import describe
from supervisor.preflight import Refused, check_broker, masked
from tests.test_settings import ROOT, _env

GOOD = "amqp://guest:guest@127.0.0.1:5672/%2F"


def _job(url: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "supervisor", "--duration", "1"], cwd=ROOT,
                          env=_env(RABBITMQ_URL=url), capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("url, why", [
    ("amqp://guest:wrong-pass-4711@127.0.0.1:5672/%2F", "user name or password (ACCESS_REFUSED)"),
    ("amqp://guest:guest@127.0.0.1:5672/no-such-vhost", "virtual host"),
])
def test_a_broker_refusal_stops_the_start_naming_the_variable(rabbit_url, url, why):
    r = _job(url)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("RABBITMQ_URL: "), lines
    assert why in lines[-1]
    assert masked(url) in lines[-1]
    assert "wrong-pass-4711" not in r.stderr + r.stdout
    assert "ray" not in r.stdout.lower()            # stopped before Ray was started


def test_the_preflight_tells_refusal_from_absence(rabbit_url):
    check_broker(GOOD)                                   # accepted: nothing raised
    check_broker("amqp://guest:guest@127.0.0.1:1/%2F")   # nobody there: the actors will wait
    with pytest.raises(Refused) as info:
        check_broker("amqp://guest:nope@127.0.0.1:5672/%2F")
    assert info.value.variable == "RABBITMQ_URL" and "nope" not in str(info.value)


def test_masked_hides_only_the_password():
    assert masked("amqp://u:p%40ss@h:5672/v") == "amqp://u:***@h:5672/v"
    assert masked("mongodb://127.0.0.1:27017/") == "mongodb://127.0.0.1:27017/"
    assert masked("amqp://u:x@[::1]:5672/%2F") == "amqp://u:***@[::1]:5672/%2F"


class _Unpicklable(Exception):
    def __init__(self, message: str, extra: int):
        super().__init__(message)
        self.lock = threading.Lock()  # pickling this fails: Ray cannot send it back as it is


@ray.remote(num_cpus=0)
class _FailsToConstruct:
    def __init__(self):
        raise _Unpicklable("the database refused user replydesk", 1)

    def start(self):
        return "never"


@ray.remote(num_cpus=0)
class _FailsToStart:
    async def start(self):
        raise _Unpicklable("the broker refused the virtual host /x", 1)


def test_a_child_start_error_arrives_readable_even_when_it_cannot_be_pickled(ray_session):
    with pytest.raises(ray.exceptions.RayActorError) as died:
        ray.get(_FailsToConstruct.remote().start.remote(), timeout=120)
    assert describe(died.value) == "_Unpicklable: the database refused user replydesk"
    with pytest.raises(ray.exceptions.RayError) as failed:
        ray.get(_FailsToStart.remote().start.remote(), timeout=120)
    assert describe(failed.value) == "_Unpicklable: the broker refused the virtual host /x"


def test_describe_names_a_plain_error_and_masks_registered_secrets():
    from contracts import telemetry
    telemetry.register_secret("s3cret-value-99")
    assert describe(ValueError("bad s3cret-value-99 here")) == "ValueError: bad ********** here"
    assert describe(KeyError("x")).startswith("KeyError")


def test_the_start_report_names_each_child_with_its_own_error(caplog):
    from supervisor.runner import report_start
    with caplog.at_level("WARNING", logger="replydesk.runner"):
        report_start([
            {"name": "router", "kind": "router", "state": "failed",
             "last_error": "Refused: RABBITMQ_URL: the broker refused the user name or password"},
            {"name": "browser:meetme:a", "kind": "browser", "state": "starting", "last_error": None},
            {"name": "ai:0", "kind": "ai", "state": "running", "last_error": None},
        ])
    lines = [(r.getMessage(), getattr(r, "child", None), getattr(r, "error", None)) for r in caplog.records]
    assert ("child not running", "router",
            "Refused: RABBITMQ_URL: the broker refused the user name or password") in lines
    assert any(m.startswith("browser child still starting") and c == "browser:meetme:a" for m, c, _ in lines)
    assert not any(c == "ai:0" for _, c, _ in lines)           # a running child is not reported
    assert not any("browser" in m and c == "router" for m, c, _ in lines)  # no wrong blame


def test_up_with_a_refused_broker_stops_within_seconds_naming_the_variable(tmp_path, rabbit_url):
    """`./run up`: the same refusal stops the start after the embedded database, before Ray."""
    import os
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MONGODB", "REPLYDESK", "RAY_", "GOOGLE", "AI_", "REVIEW", "MEETME",
                                "RABBITMQ", "COVERAGE_PROCESS"))}
    env.update(PYTHONPATH=str(ROOT), REPLYDESK_VAR=str(tmp_path / "var"),
               RABBITMQ_URL="amqp://guest:not-the-password-77@127.0.0.1:5672/%2F",
               AI_API_URL="http://127.0.0.1:9/v1")
    r = subprocess.run([sys.executable, "-m", "supervisor.local", "up"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    assert "RABBITMQ_URL: the broker refused the user name or password" in r.stderr
    assert "not-the-password-77" not in r.stdout + r.stderr
    assert "replydesk stopped" in r.stdout                 # the embedded parts were stopped again
