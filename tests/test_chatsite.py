"""The chat-site stand-in itself: login, escaping, paging, sending and the admin/fault API, and its
markup themes (each checked against its site spec, over HTTP and once in real Chromium)."""
from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta, timezone
from html.parser import HTMLParser
from http.cookiejar import CookieJar
from pathlib import Path

import pytest
import yaml

from contracts.sitespec import ELEMENTS, SiteConf
from standins.chatsite import THEMES, ChatSiteAdmin, make_app
from standins.serve import ServedApp
from tests.fixtures.infra import BASE_ENV
from tests.helpers import wait_for


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


# ---------------------------------------------------------------- themes (markups) and their specs

ROOT = Path(__file__).resolve().parents[1]
SPECS = {"classic": ROOT / "standins/sites/classic.yaml", "bubbles": ROOT / "standins/sites/bubbles.yaml",
         "items": ROOT / "standins/sites/items.yaml", "aria": ROOT / "standins/sites/aria.yaml"}
LOGIN_FIELDS = {"classic": ("email", "password"), "bubbles": ("username", "password"),
                "items": ("login_username", "login_password"), "aria": ("identifier", "password")}
LOGGED_OUT = {"classic": 'data-testid="login-form"', "bubbles": '<form id="login"',
              "items": '<form class="login-form"', "aria": 'data-testid="signin-form"'}
POPUP_CLOSE = {"classic": 'class="modal-close"', "bubbles": 'class="close-btn"',
               "items": 'class="popup-close"', "aria": 'aria-label="Dismiss"'}


class _Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: _Node | None):
        self.tag, self.attrs, self.parent, self.children, self.text = tag, attrs, parent, [], ""

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def walk(self):
        for c in self.children:
            yield c
            yield from c.walk()

    def find(self, pred) -> list[_Node]:
        return [n for n in self.walk() if pred(n)]

    def all_text(self) -> str:
        return self.text + "".join(c.all_text() for c in self.children)


class _Tree(HTMLParser):
    """Just enough DOM to assert on structure (void elements are closed at once)."""
    VOID = frozenset({"input", "meta", "br", "img", "link", "hr", "path"})

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.root = self.cur = _Node("#root", {}, None)
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        node = _Node(tag, {k: v or "" for k, v in attrs}, self.cur)
        self.cur.children.append(node)
        if tag not in self.VOID:
            self.cur = node

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.text += data


def _dom(html: str) -> _Node:
    return _Tree(html).root


def _themed_login(site, opener, theme: str, password: str | None = None) -> str:
    user_f, pw_f = LOGIN_FIELDS[theme]
    data = urllib.parse.urlencode({user_f: BASE_ENV["MEETME_USERNAME"],
                                   pw_f: password or BASE_ENV["MEETME_PASSWORD"]}).encode()
    return opener.open(site.url + "/login", data).read().decode()


def _get(site, opener, path: str) -> str:
    return opener.open(site.url + path).read().decode()


def test_theme_admin_switch_reset_and_unknown(chat_site):
    assert THEMES == ("classic", "bubbles", "items", "aria")
    assert chat_site.current_theme() == "classic"
    assert chat_site.theme("aria") == "aria"
    assert chat_site.current_theme() == "aria"
    op = _opener()
    _themed_login(chat_site, op, "aria")
    assert 'role="list"' in _get(chat_site, op, "/chat")
    chat_site.theme("bubbles")  # a redesign in the middle of the day: the next page load has it
    assert 'class="conversations"' in _get(chat_site, op, "/chat")
    with pytest.raises(urllib.error.HTTPError) as bad:
        chat_site.theme("nope")
    assert bad.value.code == 400
    reason = bad.value.read().decode()
    assert "'nope'" in reason and all(t in reason for t in THEMES)
    assert chat_site.current_theme() == "bubbles"
    chat_site.reset()
    assert chat_site.current_theme() == "classic"


@pytest.mark.parametrize("theme", THEMES)
def test_login_with_each_themes_form(chat_site, theme):
    chat_site.theme(theme)
    op = _opener()
    page = _get(chat_site, op, "/chat")
    assert LOGGED_OUT[theme] in page
    user_f, pw_f = LOGIN_FIELDS[theme]
    assert f'name="{user_f}"' in page and f'name="{pw_f}"' in page
    with pytest.raises(urllib.error.HTTPError) as bad:
        _themed_login(chat_site, op, theme, password="wrong")
    assert bad.value.code == 401 and LOGGED_OUT[theme] in bad.value.read().decode()
    chat_site.inject("c1", "Alice", "hi <there>")
    inbox = _dom(_themed_login(chat_site, op, theme))
    links = inbox.find(lambda n: n.tag == "a" and n.attrs.get("href") == "/chat/c1")
    assert len(links) == 1
    parent = links[0].parent
    if theme == "classic":
        assert "chat-list-item" in parent.classes
    elif theme == "bubbles":
        assert parent.tag == "div" and parent.classes == {"conversation"}
    elif theme == "items":
        assert parent.tag == "li" and "thread" in parent.classes and parent.parent.classes == {"threads"}
    else:
        assert parent.attrs.get("role") == "listitem" and parent.parent.attrs.get("role") == "list"
    assert "hi <there>" in links[0].all_text()  # escaped in the page, the text once parsed
    assert chat_site.stats()["logins"] == 1


def _setup_conversation(chat_site, theme: str):
    """Three incoming messages (one hostile) and one sent; page size 2; logged in."""
    op = _opener()
    _themed_login(chat_site, op, theme)
    chat_site.theme(theme)
    chat_site.faults(page_size=2)
    ids = [chat_site.inject("c1", "Alice", "first", time="2026-11-30T21:05:09+02:00"),
           chat_site.inject("c1", "Alice", "<img src=x onerror=alert(1)>")]
    op.open(chat_site.url + "/chat/c1/send", b"message=mine")
    ids.append(chat_site.messages("c1")[-1]["id"])
    ids.append(chat_site.inject("c1", "Alice", "last"))
    return op, ids


def _messages(dom: _Node, theme: str) -> list[_Node]:
    if theme == "classic":
        return dom.find(lambda n: "chat-message" in n.classes)
    if theme == "bubbles":
        return dom.find(lambda n: n.tag == "div" and "chat-message" in n.classes)
    if theme == "items":
        return dom.find(lambda n: n.tag == "div" and "message-item" in n.classes)
    return dom.find(lambda n: n.attrs.get("role") == "article" and n.attrs.get("data-testid") == "msg")


def _field(msg: _Node, pred) -> _Node:
    found = msg.find(pred)
    assert len(found) == 1, [n.attrs for n in found]
    return found[0]


@pytest.mark.parametrize("theme", THEMES)
def test_conversation_markup_and_paging_per_theme(chat_site, theme):
    op, ids = _setup_conversation(chat_site, theme)
    html = _get(chat_site, op, "/chat/c1")
    assert "<img src=x" not in html
    dom = _dom(html)
    msgs = _messages(dom, theme)
    assert [m.all_text().count("mine") for m in msgs] == [1, 0]  # the latest page: "mine", "last"
    outgoing, incoming = msgs
    older = dom.find(lambda n: n.tag == "a" and "before=" in n.attrs.get("href", ""))
    assert [a.attrs["href"] for a in older] == [f"/chat/c1?before={ids[2]}"]
    if theme == "bubbles":
        assert [m.attrs.get("data-id") for m in msgs] == ids[2:]
        assert "data-message-id" not in html
        assert outgoing.classes == {"chat-message", "sent"} and incoming.classes == {"chat-message", "received"}
        assert _field(outgoing, lambda n: "user-name" in n.classes).all_text() == BASE_ENV["MEETME_USERNAME"]
        assert _field(incoming, lambda n: "message-text" in n.classes).all_text() == "last"
        stamp = _field(incoming, lambda n: "timestamp" in n.classes).all_text()
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", stamp)
        assert older[0].classes == {"older"}
        assert dom.find(lambda n: n.tag == "textarea" and n.attrs.get("id") == "reply")
        assert dom.find(lambda n: n.tag == "button" and "send-btn" in n.classes)
    elif theme == "items":
        for m in msgs:  # no id attribute of any kind on or in a message
            assert not [k for n in [m, *m.walk()] for k in n.attrs if k == "id" or k.endswith("id")]
        assert outgoing.classes == {"message-item", "outgoing"} and incoming.classes == {"message-item", "incoming"}
        assert _field(incoming, lambda n: "message-user" in n.classes).all_text() == "Alice"
        assert _field(incoming, lambda n: "message-content" in n.classes).all_text() == "last"
        clock = _field(incoming, lambda n: "message-time" in n.classes)
        assert re.fullmatch(r"\d\d:\d\d", clock.all_text())
        assert datetime.fromisoformat(clock.attrs["title"]).strftime("%H:%M") == clock.all_text()
        assert older[0].classes == {"load-more"}
        assert dom.find(lambda n: n.tag == "textarea" and n.classes == {"message-input"})
        assert dom.find(lambda n: n.tag == "button" and n.classes == {"message-send"})
    elif theme == "aria":
        assert "class=" not in html  # no class names anywhere
        assert not re.search(r"\sid=", html) and "data-id" not in html and "data-message-id" not in html
        assert [m.attrs["data-author"] for m in msgs] == ["self", "other"]
        log = _field(dom, lambda n: n.attrs.get("role") == "log")
        assert all(any(p is log for p in _ancestors(m)) for m in msgs + older)
        assert _field(incoming, lambda n: n.attrs.get("data-testid") == "author").all_text() == "Alice"
        assert _field(incoming, lambda n: n.attrs.get("data-testid") == "body").all_text() == "last"
        assert re.fullmatch(r"\d\d:\d\d", _field(incoming, lambda n: n.attrs.get("data-testid") == "clock").all_text())
        assert older[0].attrs.get("data-testid") == "older"
        box = _field(dom, lambda n: n.attrs.get("contenteditable") == "true")
        assert box.attrs["role"] == "textbox" and box.attrs["aria-label"] == "Message" and box.tag == "div"
        send = _field(dom, lambda n: n.attrs.get("aria-label") == "Send")
        assert send.tag == "button" and send.attrs["type"] == "button" and not send.all_text().strip()
        assert "<textarea" not in html
    else:
        assert [m.attrs.get("data-message-id") for m in msgs] == ids[2:]
    page1 = _get(chat_site, op, f"/chat/c1?before={ids[2]}")
    assert "&lt;img src=x onerror=alert(1)&gt;" in page1 and "<img src=x" not in page1
    dom1 = _dom(page1)
    assert [m.all_text().count("first") for m in _messages(dom1, theme)] == [1, 0]
    assert not dom1.find(lambda n: n.tag == "a" and "before=" in n.attrs.get("href", ""))
    if theme == "aria":  # the oldest page is marked (the spec's conversation_start)
        assert 'data-testid="conversation-start"' in page1
    elif theme != "classic":
        assert ("conversation-start" if theme == "bubbles" else "thread-start") in page1


def _ancestors(n: _Node):
    while n.parent is not None:
        n = n.parent
        yield n


def test_aria_day_separators_and_utc_clocks(chat_site):
    op = _opener()
    _themed_login(chat_site, op, "aria")
    chat_site.theme("aria")
    now = datetime.now(UTC)
    if (now + timedelta(seconds=5)).date() != now.date():  # not across midnight (UTC)
        wait_for(lambda: datetime.now(UTC).date() != now.date(), timeout=10, what="midnight (UTC)")
        now = datetime.now(UTC)
    old = (now - timedelta(days=5)).replace(hour=22, minute=51, second=7, microsecond=0)
    plus2 = timezone(timedelta(hours=2))
    chat_site.inject("c1", "Alice", "old", time=old.isoformat())
    # 00:53 on the next day at +02:00 is 22:53 UTC: same UTC day, clock in UTC
    chat_site.inject("c1", "Alice", "old2", time=(old + timedelta(minutes=2)).astimezone(plus2).isoformat())
    yesterday = (now - timedelta(days=1)).replace(hour=12, minute=5)
    chat_site.inject("c1", "Alice", "yest", time=yesterday.isoformat())
    chat_site.inject("c1", "Alice", "<now>", time=now.isoformat())
    dom = _dom(_get(chat_site, op, "/chat/c1"))
    log = _field(dom, lambda n: n.attrs.get("role") == "log")

    def shown(n: _Node) -> str:
        if n.attrs["role"] == "separator":
            assert n.attrs.get("data-testid") == "day"
            return "day:" + n.all_text()
        body = _field(n, lambda x: x.attrs.get("data-testid") == "body").all_text()
        return body + "@" + _field(n, lambda x: x.attrs.get("data-testid") == "clock").all_text()

    seq = [shown(n) for n in log.children if n.attrs.get("role") in ("separator", "article")]
    long_day = f"{old:%A}, {old.day} {old:%B %Y}"  # e.g. "Monday, 30 November 2026"
    assert seq == [f"day:{long_day}", "old@22:51", "old2@22:53", "day:Yesterday", "yest@12:05",
                   "day:Today", f"<now>@{now:%H:%M}"]
    assert datetime.strptime(long_day, "%A, %d %B %Y").date() == old.date()  # the spec's format


def _post_json(site, opener, path: str, body) -> tuple[int, dict]:
    req = urllib.request.Request(site.url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with opener.open(req) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, (json.loads(e.read() or b"null") if e.headers.get_content_type() == "application/json" else {})


def test_aria_json_send_returns_the_rerendered_log(chat_site):
    op = _opener()
    _themed_login(chat_site, op, "aria")
    chat_site.theme("aria")
    chat_site.faults(page_size=2)
    chat_site.inject("c1", "Alice", "one")
    chat_site.inject("c1", "Alice", "two")
    status, body = _post_json(chat_site, op, "/chat/c1/send", {"message": "hi <b>Alice</b>\r\nbye"})
    assert status == 200 and body["ok"] is True
    log = body["log_html"]
    assert "hi &lt;b&gt;Alice&lt;/b&gt;\nbye" in log and "<b>" not in log
    assert 'data-author="self"' in log and ">two<" in log and ">one<" not in log  # the latest page
    assert 'data-testid="older"' in log and "class=" not in log
    sent = chat_site.sent()
    assert sent["counts"] == {"c1": 1} and sent["messages"][0]["text"] == "hi <b>Alice</b>\nbye"
    assert body["id"] == sent["messages"][0]["id"] == chat_site.messages("c1")[-1]["id"]
    assert _post_json(chat_site, op, "/chat/c1/send", {"message": "  "})[0] == 400
    assert _post_json(chat_site, op, "/chat/c1/send", {"message": 5})[0] == 400
    chat_site.faults(logged_out=True)
    status, body = _post_json(chat_site, op, "/chat/c1/send", {"message": "again"})
    assert status == 401 and body["login"] == "/login?next=/chat/c1"
    assert chat_site.sent()["counts"] == {"c1": 1}


@pytest.mark.parametrize("theme", ["bubbles", "items"])
def test_form_send_in_other_themes(chat_site, theme):
    op = _opener()
    _themed_login(chat_site, op, theme)
    chat_site.theme(theme)
    chat_site.inject("c1", "Alice", "hi")
    field = "message" if theme == "bubbles" else "body"  # what each theme's textarea is named
    page = op.open(chat_site.url + "/chat/c1/send", f"{field}=hello%0D%0Athere".encode()).read().decode()
    assert f'name="{field}"' in page and "hello\nthere" in page  # redirected back to the conversation
    assert chat_site.sent()["messages"][0]["text"] == "hello\nthere"


@pytest.mark.parametrize("theme", THEMES)
def test_faults_work_in_every_theme(chat_site, theme):
    op = _opener()
    _themed_login(chat_site, op, theme)
    chat_site.theme(theme)
    chat_site.inject("c1", "Alice", "hi")
    chat_site.faults(popup="always")
    assert POPUP_CLOSE[theme] in _get(chat_site, op, "/chat")
    assert 'role="dialog"' in _get(chat_site, op, "/chat/c1")
    chat_site.faults(popup="never", http500=1)
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(chat_site, op, "/chat")
    assert err.value.code == 500
    chat_site.faults(session_ttl_s=0)   # the session expires as soon as any time has passed
    wait_for(lambda: LOGGED_OUT[theme] in _get(chat_site, op, "/chat"), timeout=10,
             what="the logged-out page", interval=0.01)
    chat_site.faults(session_ttl_s=None)
    assert LOGGED_OUT[theme] not in _get(chat_site, op, "/chat")
    chat_site.faults(logged_out=True)
    assert LOGGED_OUT[theme] in _get(chat_site, op, "/chat/c1")


def test_site_specs_validate_and_name_their_sites():
    specs = {p.stem: SiteConf.model_validate(yaml.safe_load(p.read_text()))
             for p in sorted((ROOT / "standins/sites").glob("*.yaml"))}
    assert set(specs) == {"classic", "bubbles", "items", "aria", "chatterbox"}
    for name, spec in specs.items():
        assert spec.name == name and spec.base_url == "http://127.0.0.1:9"
        assert spec.url_env == ("CHATTERBOX_URL" if name == "chatterbox" else "MEETME_URL")
        assert spec.paths == {"login": "/login", "inbox": "/chat", "conversation": "/chat/{conversation_id}"}
        for el_name, el in spec.elements.items():
            n = len(el.outgoing) if ELEMENTS[el_name][1] == "direction" else len(el.selectors)
            assert 1 <= n <= (4 if name == "classic" else 3), (name, el_name)   # classic: once shipped
    assert "message_id" not in specs["items"].elements and "message_id" not in specs["aria"].elements
    # the shipped MeetMe spec is the real single-page app's (phoenix is its stand-in)
    meetme = SiteConf.model_validate(yaml.safe_load((ROOT / "conf/sites/meetme.yaml").read_text()))
    assert meetme.hosts["app"].env == "MEETME_APP_URL" and meetme.url_env == "MEETME_URL"
    assert meetme.paths["conversation"] == "{app}/#chat/member/{conversation_id}/chat"
    assert specs["bubbles"].elements["message_id"].from_ == ["@data-id"]
    assert specs["aria"].elements["date_header"].formats == ["relative", "%A, %d %B %Y"]
    assert specs["chatterbox"].elements == specs["items"].elements


def test_second_site_brand_and_default_theme():
    with ServedApp(make_app(theme="items", brand="Chatterbox")) as served:
        site = ChatSiteAdmin(served.url)
        site.add_account(BASE_ENV["MEETME_USERNAME"], BASE_ENV["MEETME_PASSWORD"])
        assert site.current_theme() == "items"
        op = _opener()
        login = _get(site, op, "/login")
        assert "<title>Log in · Chatterbox</title>" in login and "Welcome to Chatterbox" in login
        assert "MeetMe" not in login
        assert 'class="threads"' in _themed_login(site, op, "items")
        site.theme("aria")
        site.reset()
        assert site.current_theme() == "items"
    with pytest.raises(ValueError):
        make_app(theme="nope")


# ---------------------------------------------------------------- every theme in real Chromium

CHROMIUM = Path("/usr/lib/chromium/chromium")
# Every selector of the spec evaluated in the page as the adapter would: page elements counted in
# the document, message fields looked up inside each message element (`:scope`: the element).
_READ_SPEC_JS = """(spec) => {
  const q = (root, s) => s === ':scope' ? [root] : Array.from(root.querySelectorAll(s));
  const value = (el, from) => {
    for (const f of from) {
      const v = (f === 'text' ? el.innerText : (el.getAttribute(f.slice(1)) || '')).trim();
      if (v) return v;
    }
    return null;
  };
  const page = {};
  for (const [name, sels] of Object.entries(spec.page)) page[name] = sels.map(s => q(document, s).length);
  const messages = q(document, spec.message[0]).map(m => {
    const rec = {};
    for (const [name, el] of Object.entries(spec.fields)) {
      rec[name] = el.selectors.map(s => { const hit = q(m, s)[0]; return hit ? value(hit, el.from) : null; });
    }
    const is = ss => ss.some(s => m.matches(s) || m.querySelector(s) !== null);
    rec.out = is(spec.direction.outgoing);
    rec.in = is(spec.direction.incoming);
    return rec;
  });
  return {page, messages};
}"""


def _spec_for_js(spec: SiteConf) -> dict:
    page = {n: spec.selectors(n) for n, (_, kind) in ELEMENTS.items()
            if kind in ("page", "header") and n in spec.elements}
    fields = {n: {"selectors": spec.selectors(n), "from": spec.elements[n].from_}
              for n, (_, kind) in ELEMENTS.items() if kind == "field" and n in spec.elements}
    d = spec.elements["message_direction"]
    return {"page": page, "fields": fields, "message": spec.selectors("message"),
            "direction": {"outgoing": d.outgoing, "incoming": d.incoming}}


def _parses(value: str, formats: list[str]) -> bool:
    for fmt in formats:
        try:
            if fmt == "iso8601":
                datetime.fromisoformat(value)
            elif fmt != "relative":
                datetime.strptime(value, fmt)
            else:
                continue
            return True
        except ValueError:
            continue
    return False


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no Chromium at /usr/lib/chromium")
def test_every_theme_in_chromium_matches_its_spec_and_sends(chat_site):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.set_default_timeout(5000)
            for theme in THEMES:
                _check_theme_in_browser(chat_site, page, theme)
        finally:
            browser.close()


def _check_theme_in_browser(site, page, theme: str) -> None:
    """Log in through the theme's form, close its popup, read a conversation with every selector
    of the theme's spec, send through its reply box (aria: XHR, no navigation)."""
    spec = SiteConf.model_validate(yaml.safe_load(SPECS[theme].read_text()))
    js_spec = _spec_for_js(spec)
    cid = f"{theme}-1"
    site.theme(theme)
    site.faults(page_size=2, popup="never", logged_out=True)
    site.inject(cid, "Alice", "first <b>old</b>", time=(datetime.now(UTC) - timedelta(days=3)).isoformat())
    site.inject(cid, "Alice", "second")
    site.inject(cid, "Alice", "third\nline")

    def read() -> dict:
        return page.evaluate(_READ_SPEC_JS, js_spec)

    def all_match(found: dict, names: list[str]) -> None:
        for n in names:
            if n in found["page"]:
                assert all(found["page"][n]), (theme, n, spec.selectors(n), found["page"][n])

    page.goto(site.url + "/chat")
    all_match(read(), ["logged_out", "login_username", "login_password", "login_submit"])
    page.fill(spec.selectors("login_username")[0], BASE_ENV["MEETME_USERNAME"])
    page.fill(spec.selectors("login_password")[0], BASE_ENV["MEETME_PASSWORD"])
    site.faults(popup="always")
    with page.expect_navigation():
        page.click(spec.selectors("login_submit")[0])
    found = read()
    all_match(found, ["inbox_item", "popup_close"])
    assert not any(found["page"]["logged_out"]), theme
    page.click(spec.selectors("popup_close")[0])
    assert page.locator("[role=dialog]").count() == 0, theme
    site.faults(popup="never")

    page.goto(f"{site.url}/chat/{cid}")
    found = read()
    all_match(found, ["message", "older_messages", "reply_box", "send_button", "date_header"])
    assert not any(found["page"].get("conversation_start", [])) and not any(found["page"]["logged_out"])
    msgs = found["messages"]
    assert [m["message_text"][0] for m in msgs] == ["second", "third\nline"], (theme, msgs)
    for m in msgs:
        for name, values in m.items():
            if name.startswith("message_"):
                assert all(v for v in values), (theme, name, values)  # every fallback finds it
        assert m["in"] and not m["out"], (theme, m)
        assert m["message_sender"][0] == "Alice"
        assert _parses(m["message_time"][0], spec.elements["message_time"].formats), (theme, m)
    ids = [x["id"] for x in site.messages(cid)]
    if "message_id" in spec.elements:
        assert [m["message_id"][0] for m in msgs] == ids[1:]
    assert page.get_attribute(spec.selectors("older_messages")[0], "href") == f"/chat/{cid}?before={ids[1]}"

    page.evaluate("window.__same_page = true")
    page.fill(spec.selectors("reply_box")[0], "hello <i>Alice</i>")
    if theme == "aria":  # XHR: the log is re-rendered in place, no navigation
        page.click(spec.selectors("send_button")[0])
        page.wait_for_function("document.querySelector('[role=log]').innerText.includes('hello <i>Alice</i>')")
        assert page.evaluate("window.__same_page") is True
        assert page.inner_text(spec.selectors("reply_box")[0]).strip() == ""
    else:
        with page.expect_navigation():
            page.click(spec.selectors("send_button")[0])
        assert page.evaluate("window.__same_page === undefined")
    found = read()
    assert [m["message_text"][0] for m in found["messages"]] == ["third\nline", "hello <i>Alice</i>"]
    assert found["messages"][-1]["out"] and not found["messages"][-1]["in"], theme
    all_match(found, ["message", "older_messages"])
    if "date_header" in spec.elements:  # aria draws a day separator only where the day changes
        assert not any(found["page"]["date_header"]), (theme, "a page continuing the day of the page before")
    assert [s["text"] for s in site.sent()["messages"] if s["conversation_id"] == cid] == ["hello <i>Alice</i>"]


def test_the_live_streams_push_each_change_and_never_hold_the_sites_shutdown():
    """SSE as a client reads it: an `inbox` event with the re-rendered inbox per change, a `log`
    event on the conversation's stream, nothing once the `live` switch is off; and a site with
    open streams stops at once (they end on shutdown)."""
    served = ServedApp(make_app()).start()
    site = ChatSiteAdmin(served.url)
    site.add_account("owner", "pw")
    cookie = site.session_cookie("owner")
    site.inject("c1", "Ann", "first")
    headers = {"Cookie": f"{cookie['cookie']}={cookie['value']}"}

    def events(path: str, n: int) -> list[tuple[str, dict]]:
        got, event = [], None
        with urllib.request.urlopen(urllib.request.Request(served.url + path, headers=headers),
                                    timeout=10) as r:
            assert r.headers["Content-Type"].startswith("text/event-stream")
            for raw in r:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    got.append((event, json.loads(line[6:])))
                    if len(got) == n:
                        return got
        return got

    out: dict[str, list] = {}
    readers = [threading.Thread(target=lambda p=p: out.__setitem__(p, events(p, 1)))
               for p in ("/_live/inbox?theme=classic", "/_live/chat/c1?theme=aria")]
    for t in readers:
        t.start()
    wait_for(lambda: site.stats()["live_streams"] == 2, what="both streams open")
    site.inject("c1", "Ann", "pushed <b>now</b>")
    for t in readers:
        t.join(10)
    (kind, inbox), = out["/_live/inbox?theme=classic"]
    assert kind == "inbox" and "pushed &lt;b&gt;now&lt;/b&gt;" in inbox["body"] and "chat-list" in inbox["body"]
    (kind, log), = out["/_live/chat/c1?theme=aria"]
    assert kind == "log" and 'data-testid="msg"' in log["log"] and "pushed &lt;b&gt;now" in log["log"]
    assert site.stats()["live_pushes"] == 2 and site.stats()["page_views"] == 0   # not page views
    site.faults(live=False)
    quiet = threading.Thread(target=lambda: out.__setitem__("quiet", events("/_live/inbox", 1)))
    quiet.start()
    wait_for(lambda: site.stats()["live_streams"] == 3, what="a third stream open")
    site.inject("c1", "Ann", "not pushed")
    assert site.stats()["live_pushes"] == 2                  # the channel is silent, still open
    served.stop()                                            # ends the open stream: no wait
    quiet.join(10)
    assert not quiet.is_alive() and out["quiet"] == []


def _first_event(url: str, headers: dict, out: list) -> None:
    """Open a live stream and append its first event's data to `out`."""
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
        for raw in r:
            if raw.startswith(b"data: "):
                out.append(json.loads(raw[6:]))
                return


def test_a_stream_opened_after_a_change_its_page_missed_syncs_at_once(chat_site):
    """A change between the page's render and its subscription is not lost to the page: the
    page carries its channel's change count (`since`), and a stream opened after a newer change
    sends the current state at once; one opened up to date sends nothing until the next change."""
    cookie = chat_site.session_cookie(BASE_ENV["MEETME_USERNAME"])
    headers = {"Cookie": f"{cookie['cookie']}={cookie['value']}"}
    chat_site.inject("c1", "Ann", "first")
    with urllib.request.urlopen(urllib.request.Request(chat_site.url + "/chat", headers=headers), timeout=10) as r:
        page = r.read().decode()
    since = int(re.search(r"/_live/inbox\?theme=\w+&since=(\d+)", page).group(1))
    chat_site.inject("c2", "Bea", "between the render and the subscription")

    def first_event(path: str, out: list) -> None:
        _first_event(chat_site.url + path, headers, out)

    late: list = []
    first_event(f"/_live/inbox?theme=classic&since={since}", late)   # returns at once: no inject
    assert "between the render and the subscription" in late[0]["body"]
    pushes = chat_site.stats()["live_pushes"]
    current: list = []
    reader = threading.Thread(target=first_event, args=(f"/_live/inbox?theme=classic&since={since + 1}", current))
    reader.start()
    wait_for(lambda: chat_site.stats()["live_streams"] == 2, what="the up-to-date stream open")
    assert chat_site.stats()["live_pushes"] == pushes and not current   # nothing to sync
    chat_site.inject("c1", "Ann", "next")
    reader.join(10)
    assert "next" in current[0]["body"]


def test_a_stale_rendered_send_is_not_pushed_into_the_open_conversation(chat_site):
    """`send_render_stale`: the XHR's answer leaves the send out and the open conversation page is
    not pushed it either (nothing on the page shows it); the site stored it, so the next change
    pushed, like a fresh page load, shows it."""
    op = _opener()
    _themed_login(chat_site, op, "aria")
    chat_site.theme("aria")
    chat_site.inject("c1", "Alice", "one")
    cookie = chat_site.session_cookie(BASE_ENV["MEETME_USERNAME"])
    headers = {"Cookie": f"{cookie['cookie']}={cookie['value']}"}
    got: list = []
    reader = threading.Thread(target=_first_event,
                              args=(chat_site.url + "/_live/chat/c1?theme=aria", headers, got))
    reader.start()
    wait_for(lambda: chat_site.stats()["live_streams"] == 1, what="the conversation's stream open")
    chat_site.faults(send_render_stale=True)
    status, body = _post_json(chat_site, op, "/chat/c1/send", {"message": "unseen reply"})
    assert status == 200 and "unseen reply" not in body["log_html"]
    assert chat_site.sent()["counts"] == {"c1": 1} and chat_site.stats()["live_pushes"] == 0
    chat_site.inject("c1", "Alice", "two")
    reader.join(10)
    assert "unseen reply" in got[0]["log"] and ">two<" in got[0]["log"]
