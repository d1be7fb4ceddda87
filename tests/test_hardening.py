"""What a security probe found, fixed: non-ASCII bearer tokens, whole texts in the inbox list,
the leak guard's blind spots, and RabbitMQ's guest account off loopback."""
from __future__ import annotations

import http.client
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

from actors.ai.guard import LeakGuard
from tests.review_helpers import add_conversation, desk_fixtures
from tests.test_settings import _env

ROOT = Path(__file__).resolve().parents[1]

config, desk = desk_fixtures()


def _raw_get(url: str, path: str, authorization: bytes) -> int:
    """A request whose Authorization header carries these exact bytes (clients refuse to)."""
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        conn.putrequest("GET", path)
        conn.putheader("Authorization", authorization)
        conn.endheaders()
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


@pytest.mark.parametrize("raw", ["Bearer tök".encode("utf-8"), "Bearer tök".encode("latin-1"),
                                 b"Bearer \xff\xfe\x80", "Bearer ключ-ключ-ключ-ключ".encode()])
def test_a_non_ascii_bearer_token_is_a_plain_401(desk, raw):
    assert _raw_get(desk.url, "/api/meta", raw) == 401


def test_the_inbox_list_sends_excerpts_and_the_views_the_whole_text(desk, store, config):
    token = config.settings.review_token.get_secret_value()
    auth = {"Authorization": f"Bearer {token}"}
    long_text = "Long reply. " * 90_000                      # ~1 MB
    long_message = "A very long incoming message. " * 2000
    draft = add_conversation(store, "c-long", [long_message], draft=long_text)
    r = requests.get(desk.url + "/api/drafts", headers=auth, timeout=30)
    assert r.status_code == 200
    (item,) = r.json()["drafts"]
    assert len(r.content) < 5_000
    assert item["text_truncated"] is True and len(item["text"]) <= 280
    assert long_text.startswith(item["text"].rstrip("…"))
    full = requests.get(f"{desk.url}/api/drafts/{draft['_id']}", headers=auth, timeout=30).json()
    assert full["draft"]["text"] == long_text
    conv = requests.get(f"{desk.url}/api/conversations/{draft['account_id']}/c-long", headers=auth,
                        timeout=30).json()
    assert conv["messages"][0]["text"] == long_message and conv["draft"]["text"] == long_text
    short = add_conversation(store, "c-short", ["hi"], draft="Hello!")
    items = {d["id"]: d for d in requests.get(desk.url + "/api/drafts", headers=auth, timeout=30).json()["drafts"]}
    assert items[short["_id"]]["text"] == "Hello!" and items[short["_id"]]["text_truncated"] is False


def test_the_guard_checks_every_configured_secret_however_it_is_disguised(make_config):
    cfg = make_config()
    guard = LeakGuard("You draft replies.", cfg.secret_values())
    key = cfg.settings.ai_api_key.get_secret_value()           # sk-test-secret-api-key-123456
    review = cfg.settings.review_token.get_secret_value()
    password = cfg.credentials(cfg.app.accounts[0]).password.get_secret_value()
    disguises = [key, key.upper(), " ".join(key), "\u200b".join(key), key[:10] + "\n  " + key[10:],
                 f"sure: {key[:5]}\u2060{key[5:].upper()}", review.title(), "\ufeff".join(review),
                 password.upper(), f"the password is {password[:4]} {password[4:]}"]
    for text in disguises:
        problem = guard.problem(f"Here you go: {text} ok?")
        assert problem and "credential" in problem, text
        assert key not in problem and review not in problem
    assert guard.problem("Hello! Saturday works for me.") is None


def _check(**over):
    return subprocess.run([sys.executable, "-m", "supervisor", "--check-config"], cwd=ROOT,
                          env=_env(**over), capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("url", ["amqp://guest:guest@rabbit.internal:5672/%2F",
                                 "amqps://guest@10.0.0.5/%2F", "amqp://guest:guest@[2001:db8::1]:5672/"])
def test_rabbitmq_guest_account_off_loopback_is_refused_at_start(url):
    r = _check(RABBITMQ_URL=url)
    assert r.returncode == 2
    (line,) = [x for x in r.stderr.splitlines() if x.strip()]
    assert line.startswith("config error: RABBITMQ_URL: the default guest:guest account")


def test_rabbitmq_guest_on_loopback_and_own_users_off_it_pass():
    assert _check(RABBITMQ_URL="amqp://guest:guest@127.0.0.1:5672/%2F").returncode == 0
    r = _check(RABBITMQ_URL="amqp://replydesk:Long-Own-Password-1@rabbit.internal:5672/%2F")
    assert r.returncode == 0, r.stderr


def test_an_over_long_authorization_header_is_a_400_that_quotes_nothing_of_it(desk, caplog):
    """aiohttp's own answer to a header over its 8190-byte limit quotes the header's bytes in the
    body and in a logged traceback: the token would leak. The desk answers a fixed 400."""
    secret = "Bearer review-secret-" + "x" * 9000
    u = urlparse(desk.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    with caplog.at_level("DEBUG"):
        try:
            conn.putrequest("GET", "/api/drafts")
            conn.putheader("Authorization", secret)
            conn.endheaders()
            resp = conn.getresponse()
            body = resp.read().decode()
        finally:
            conn.close()
    assert resp.status == 400
    assert "could not be read" in body
    assert "review-secret" not in body and "xxxxxxxx" not in body
    logged = "\n".join(r.getMessage() + str(r.__dict__) + (str(r.exc_info) if r.exc_info else "")
                       for r in caplog.records)
    assert "unreadable request refused" in logged
    assert "review-secret" not in logged and "xxxxxxxx" not in logged
