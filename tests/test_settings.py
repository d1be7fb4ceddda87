"""Bad configuration stops start-up with one clear line naming the variable; secrets never print."""
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from contracts import settings, telemetry
from tests.fixtures.infra import BASE_ENV

ROOT = Path(__file__).resolve().parents[1]


def _env(**over):
    env = {k: v for k, v in os.environ.items() if k not in BASE_ENV and k not in ("HEADLESS", "PUPPETEER_HEADLESS")}
    env.update(BASE_ENV)
    env.update(over)
    return {k: v for k, v in env.items() if v is not None}


def _check(**over):
    return subprocess.run([sys.executable, "-m", "supervisor", "--check-config"], cwd=ROOT,
                          env=_env(**over), capture_output=True, text=True, timeout=60)


def test_valid_config_passes():
    r = _check()
    assert r.returncode == 0, r.stderr
    assert "config ok" in r.stdout


def test_missing_ai_api_url_fails_fast_naming_it():
    r = _check(AI_API_URL=None)
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert lines == ["config error: AI_API_URL: required but not set"]


def test_malformed_rabbitmq_url_fails_fast_naming_it():
    r = _check(RABBITMQ_URL="http//not-a-broker")
    assert r.returncode == 2
    assert r.stderr.strip().startswith("config error: RABBITMQ_URL: must be a AMQP URL")


@pytest.mark.parametrize("var,value,expect", [
    ("MONGODB_URI", "localhost:27017", "MONGODB_URI: must be a MongoDB URL"),
    ("PUPPETEER_HEADLESS", "perhaps", "PUPPETEER_HEADLESS or HEADLESS"),
    ("MEETME_PASSWORD", "", "MEETME_PASSWORD: must not be empty"),
    ("AI_API_URL", "https://ai.example.net/v1", "AI_API_KEY: required for the AI server at ai.example.net"),
])
def test_each_bad_variable_is_named(var, value, expect):
    r = _check(**{var: value, **({"AI_API_KEY": None} if var == "AI_API_URL" else {})})
    assert r.returncode == 2
    assert expect in r.stderr


def test_real_sheets_need_a_readable_credentials_file(tmp_path):
    r = _check(SHEETS_API_URL=None, GOOGLE_CREDENTIALS_FILE=str(tmp_path / "missing.json"))
    assert r.returncode == 2
    assert "GOOGLE_CREDENTIALS_FILE" in r.stderr and "missing or unreadable" in r.stderr


def test_bad_yaml_names_the_file_and_field(tmp_path):
    bad = tmp_path / "replydesk.yaml"
    bad.write_text("accounts: []\nai: {workers: 0}\n")
    r = subprocess.run([sys.executable, "-m", "supervisor", "--check-config", "--config", str(bad)],
                       cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert str(bad) in r.stderr and "accounts" in r.stderr and "ai.workers" in r.stderr


def test_headless_aliases(monkeypatch):
    for k, v in BASE_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("PUPPETEER_HEADLESS", "false")
    assert settings.load_settings().headless is False
    monkeypatch.delenv("PUPPETEER_HEADLESS")
    monkeypatch.setenv("HEADLESS", "0")
    assert settings.load_settings().headless is False


def test_secrets_never_in_reprs_errors_or_logs(monkeypatch, capfd):
    for k, v in BASE_ENV.items():
        monkeypatch.setenv(k, v)
    cfg = settings.load()
    secrets = [BASE_ENV["MEETME_PASSWORD"], BASE_ENV["AI_API_KEY"], BASE_ENV["REVIEW_TOKEN"]]
    text = repr(cfg) + str(cfg) + cfg.model_dump_json()
    assert not any(s in text for s in secrets)
    # a validation error elsewhere never echoes the secret input back
    monkeypatch.setenv("RABBITMQ_URL", "bogus")
    with pytest.raises(settings.ConfigError) as ei:
        settings.load()
    assert not any(s in str(ei.value) for s in secrets)
    # the JSON log formatter masks registered secret values even if code logs them by mistake
    telemetry.register_secret(BASE_ENV["AI_API_KEY"])
    rec = logging.LogRecord("t", logging.INFO, __file__, 1, "calling with key %s",
                            (BASE_ENV["AI_API_KEY"],), None)
    line = telemetry.JsonFormatter("test").format(rec)
    assert BASE_ENV["AI_API_KEY"] not in line and "**********" in line


def test_review_desk_needs_its_token():
    """A job needs REVIEW_TOKEN; `--check-config` accepts its absence (`./run up` makes one)."""
    env = _env(REVIEW_TOKEN=None)
    r = subprocess.run([sys.executable, "-m", "supervisor", "--duration", "1"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "REVIEW_TOKEN: required when the review desk is enabled" in r.stderr
    assert "./run up` generates one" in _check(REVIEW_TOKEN=None).stdout


def test_check_config_accepts_the_embedded_defaults_and_names_what_each_choice_needs(tmp_path):
    """Only an account's login and a local AI server: `--check-config` accepts it and says what
    `./run up` embeds; a job (no --check-config) still needs a database; choosing a sheet or an
    AI server off this machine names every variable that choice needs, at once."""
    minimal = {k: None for k in BASE_ENV if k not in ("MEETME_USERNAME", "MEETME_PASSWORD", "MEETME_URL")}
    minimal["AI_API_URL"] = "http://127.0.0.1:18080/v1"
    r = _check(**minimal)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith("config ok")
    for embedded in ("MONGODB_URI unset", "RABBITMQ_URL unset", "GOOGLE_SHEET_ID unset",
                     "no AI_API_KEY", "REVIEW_TOKEN unset"):
        assert embedded in out, out
    job = subprocess.run([sys.executable, "-m", "supervisor", "--duration", "1"], cwd=ROOT,
                         env=_env(**minimal), capture_output=True, text=True, timeout=60)
    assert job.returncode == 2 and "MONGODB_URI: required but not set" in job.stderr
    r = _check(**{**minimal, "GOOGLE_SHEET_ID": "sheet-1", "AI_API_URL": "https://ai.example.net/v1"})
    assert r.returncode == 2
    assert "GOOGLE_CREDENTIALS_FILE: required" in r.stderr and "AI_API_KEY: required" in r.stderr
    assert _check(**{**minimal, "AI_API_URL": "https://ai.example.net/v1", "AI_API_KEY": "none"}).returncode == 0
    # no credentials at all: `up` runs the demo site (said so); some but not all: named
    demo = _check(**{**minimal, "MEETME_USERNAME": None, "MEETME_PASSWORD": None})
    assert demo.returncode == 0 and "built-in demo site" in demo.stdout
    half = _check(**{**minimal, "MEETME_PASSWORD": None})
    assert half.returncode == 2 and "MEETME_PASSWORD: required but not set" in half.stderr


def _conf_with_review(tmp_path, review: dict) -> Path:
    """conf/ copied with `review` settings merged into the YAML file."""
    import shutil

    import yaml
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf)
    data = yaml.safe_load((conf / "replydesk.yaml").read_text())
    data["review"] = {**(data.get("review") or {}), **review}
    (conf / "replydesk.yaml").write_text(yaml.safe_dump(data))
    return conf / "replydesk.yaml"


def _check_file(path: Path):
    return subprocess.run([sys.executable, "-m", "supervisor", "--check-config", "--config", str(path)],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)


def test_review_desk_off_loopback_needs_https(tmp_path):
    r = _check_file(_conf_with_review(tmp_path / "a", {"host": "0.0.0.0"}))
    assert r.returncode == 2
    assert "review: host '0.0.0.0' is reachable from other machines" in r.stderr
    assert "tls_cert_file" in r.stderr and "behind_tls_proxy" in r.stderr
    r = _check_file(_conf_with_review(tmp_path / "b", {"host": "0.0.0.0", "behind_tls_proxy": True}))
    assert r.returncode == 0, r.stderr
    r = _check_file(_conf_with_review(tmp_path / "c", {"tls_cert_file": str(tmp_path / "nope.pem"),
                                                       "tls_key_file": str(tmp_path / "nope.key")}))
    assert r.returncode == 2 and "tls_cert_file" in r.stderr and "missing or unreadable" in r.stderr


@pytest.mark.parametrize("var,secret", [("AI_API_URL", "AI_API_KEY"), ("MEETME_URL", "MEETME_PASSWORD")])
def test_secrets_never_sent_over_plain_http_off_this_machine(var, secret):
    r = _check(**{var: "http://inference.example.net:8000"})
    assert r.returncode == 2
    assert f"{var}: http:// to inference.example.net would send {secret} in clear" in r.stderr
    assert "REPLYDESK_ALLOW_INSECURE_HTTP" in r.stderr
    assert _check(**{var: "https://inference.example.net:8000"}).returncode == 0
    assert _check(**{var: "http://inference.example.net:8000",
                     "REPLYDESK_ALLOW_INSECURE_HTTP": "true"}).returncode == 0
    assert _check(**{var: "http://localhost:8000"}).returncode == 0


def test_reload_with_a_bad_config_is_refused_before_touching_anything(tmp_path):
    bad = tmp_path / "replydesk.yaml"
    bad.write_text("accounts: [{id: a, poll_interval_s: -1}]\n")
    r = subprocess.run([sys.executable, "-m", "supervisor", "reload", "--config", str(bad)],
                       cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("reload refused, nothing changed: config error:")
    assert "accounts.0.poll_interval_s" in lines[0]
