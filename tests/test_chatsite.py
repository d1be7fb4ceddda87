"""The chat-site stand-in itself: login, escaping, paging, sending and the admin/fault API."""
from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar

import pytest

from tests.fixtures.infra import BASE_ENV


def _opener():
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))


def _login(site, opener):
    data = urllib.parse.urlencode({"email": BASE_ENV["MEETME_USERNAME"],
                                   "password": BASE_ENV["MEETME_PASSWORD"]}).encode()
    return opener.open(site.url + "/login", data).read().decode()


def test_pages_need_login_and_login_counts(chat_site):
    op = _opener()
    assert 'data-testid="login-form"' in op.open(chat_site.url + "/chat").read().decode()
    with pytest.raises(urllib.error.HTTPError) as bad:
        op.open(chat_site.url + "/login", b"email=owner%40example.com&password=wrong")
    assert bad.value.code == 401
    assert "<h1>Messages</h1>" in _login(chat_site, op)
    assert chat_site.stats()["login_submissions"] == 2
    assert chat_site.stats()["logins"] == 1


def test_hostile_text_is_escaped_and_pages_link_older(chat_site):
    op = _opener()
    _login(chat_site, op)
    chat_site.faults(page_size=2)
    ids = [chat_site.inject("c1", "Eve", f"<script>window.__pwned={i}</script>") for i in range(3)]
    html = op.open(chat_site.url + "/chat/c1").read().decode()
    assert "<script>window.__pwned" not in html
    assert "&lt;script&gt;window.__pwned=2" in html
    assert f'data-message-id="{ids[0]}"' not in html
    assert f'href="/chat/c1?before={ids[1]}"' in html
    older = op.open(chat_site.url + f"/chat/c1?before={ids[1]}").read().decode()
    assert f'data-message-id="{ids[0]}"' in older and "load-older" not in older


def test_send_records_outgoing_message(chat_site):
    op = _opener()
    _login(chat_site, op)
    chat_site.inject("c1", "Alice", "hi")
    op.open(chat_site.url + "/chat/c1/send", b"message=hello%0D%0Athere")
    sent = chat_site.sent()
    assert sent["counts"] == {"c1": 1}
    assert sent["messages"][0]["text"] == "hello\nthere"
    assert [m["direction"] for m in chat_site.messages("c1")] == ["in", "out"]


def test_faults_500_logged_out_and_renamed(chat_site):
    op = _opener()
    _login(chat_site, op)
    chat_site.faults(http500=1, renamed_classes=True)
    with pytest.raises(urllib.error.HTTPError) as err:
        op.open(chat_site.url + "/chat")
    assert err.value.code == 500
    chat_site.inject("c1", "Alice", "hi")
    html = op.open(chat_site.url + "/chat").read().decode()
    assert "chat-list-item" not in html and 'data-testid="conversation-item"' in html
    chat_site.faults(logged_out=True)
    assert 'data-testid="login-form"' in op.open(chat_site.url + "/chat").read().decode()
    with pytest.raises(urllib.error.HTTPError):
        chat_site.faults(no_such_fault=1)
