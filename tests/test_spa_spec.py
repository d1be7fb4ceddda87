"""Each single-page-app feature of the site spec (contracts/sitespec.py) on small pages served by
a tiny aiohttp app on two hosts: the feature works where the page has it, and a page that lacks
it fails loudly (the element, the selectors tried, the URL, a screenshot and the HTML), never
silently. Real Chromium (one for the module), the real adapter; no store, no Ray.
(The whole path on the MeetMe-shaped stand-in: the phoenix tests of test_site_themes.py.)"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from actors.browser.adapter import LoginFailed, NeedsLogin, SendNotConfirmed, SiteAdapter
from actors.browser.anchors import anchor
from actors.browser.launcher import close_browser, launch_browser, start_playwright
from actors.browser.limits import NodeSlots, SlidingWindowLimiter
from actors.browser.selectors import Health, SelectorNotFound, Selectors
from contracts.settings import ConfigError
from standins.serve import ServedApp

pytestmark = pytest.mark.asyncio(loop_scope="module")

ACCOUNT = "spa-main"
RIGHT_PASSWORD = "s3cret-meetme-password"   # tests/fixtures/infra.py BASE_ENV


def spa(views: dict[str, str], delay_ms: int = 30) -> str:
    """An empty shell whose script renders the view of the URL fragment after `delay_ms`."""
    return f"""<!doctype html><html><body><main id="root"></main><script>
const V = {json.dumps(views)};
function render() {{
  const root = document.getElementById('root'); root.innerHTML = '';
  const h = location.hash.slice(1);
  setTimeout(() => {{ if (h in V) root.innerHTML = V[h]; }}, {delay_ms});
}}
addEventListener('hashchange', render); render();
</script></body></html>"""


class Hosts:
    """Two origins (www, app) serving `pages[host][path]`; a login API on www."""

    def __init__(self):
        self.pages: dict[str, dict[str, str]] = {"www": {}, "app": {}}
        self.password = RIGHT_PASSWORD
        self.bounces = 0
        self.logins = 0
        self.servers = {h: ServedApp(self._app(h)).start() for h in ("www", "app")}

    def url(self, host: str) -> str:
        return self.servers[host].url.rstrip("/")

    def _app(self, host: str) -> web.Application:
        async def page(request: web.Request) -> web.Response:
            html = self.pages[host].get(request.path)
            if html is None:
                raise web.HTTPNotFound()
            return web.Response(text=html, content_type="text/html")

        async def login(request: web.Request) -> web.Response:
            body = await request.json()
            self.logins += 1
            if body.get("password") != self.password:
                return web.json_response({"error": "Invalid email or password"})
            if self.bounces > 0:
                self.bounces -= 1
                return web.json_response({"go": self.url("www") + "/"})
            return web.json_response({"go": self.url("app") + "/#home"})

        app = web.Application()
        app.router.add_post("/api/login", login)
        app.router.add_get("/{tail:.*}", page)
        return app

    def stop(self):
        for s in self.servers.values():
            s.stop()


@pytest.fixture(scope="module")
def hosts():
    h = Hosts()
    yield h
    h.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(tmp_path_factory, make_config_module):
    scratch = tmp_path_factory.mktemp("spa-browser")
    pw = await start_playwright(scratch)
    b = await launch_browser(pw, make_config_module)
    yield b
    await close_browser(b, pw, scratch)


@pytest.fixture(scope="module")
def make_config_module():
    """A config only for the browser's launch options (the tests make their own)."""
    from contracts import settings
    from tests.fixtures.infra import BASE_ENV
    import os
    old = {k: os.environ.get(k) for k in BASE_ENV}
    os.environ.update(BASE_ENV)
    try:
        return settings.load()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


BASE = {
    "name": "spa", "base_url": "http://127.0.0.1:9", "url_env": "SPA_URL",
    "hosts": {"app": {"url": "https://app.example.test", "env": "SPA_APP_URL"}},
    "paths": {"login": "/", "inbox": "{app}/#chat", "conversation": "{app}/#c/{conversation_id}"},
    "ready_timeout_s": 1,
    "elements": {
        "login_username": {"selectors": ["#u"]}, "login_password": {"selectors": ["#p"]},
        "login_submit": {"selectors": ["#go"]},
        "inbox_ready": {"selectors": ["ol"]},       # the shells render late: read once rendered
        "conversation_ready": {"selectors": ["ol"]},
        "inbox_item": {"selectors": ["li.item"]},
        "message": {"selectors": ["li.msg"]},
        "conversation_contact": {"selectors": ["h4.contact"]},
        "message_text": {"selectors": ["p"]},
        "message_time": {"selectors": ["time"], "from": ["@datetime"]},
        "message_direction": {"outgoing": [".me"], "incoming": [".them"]},
        "reply_box": {"selectors": ["textarea"]},
        "send_button": {"selectors": ["button.send"]},
    }}


def spec(**changes) -> dict:
    out = json.loads(json.dumps(BASE))
    elements = changes.pop("elements", {})
    out.update(changes)
    for name, el in elements.items():
        if el is None:
            out["elements"].pop(name, None)
        else:
            out["elements"][name] = el
    return out


@pytest_asyncio.fixture(loop_scope="module")
async def adapter_for(make_config, browser, hosts, artifacts_dir, tmp_path):
    """adapter_for(spec) -> a SiteAdapter on a fresh page (its own context)."""
    contexts = []

    async def make(site: dict, sleep=None) -> SiteAdapter:
        cfg = make_config(
            app={"browser": {"artifacts_dir": str(artifacts_dir), "selector_timeout_s": 0.3,
                             "navigation_timeout_s": 5, "retry_backoff_s": 0.01},
                 "accounts": [{"id": ACCOUNT, "site": "spa", "navigations_per_minute": 10000}]},
            sites={"spa": site}, SPA_URL=hosts.url("www"), SPA_APP_URL=hosts.url("app"))
        context = await browser.new_context()
        contexts.append(context)
        page = await context.new_page()
        account = cfg.account(ACCOUNT)
        kw = {"sleep": sleep} if sleep else {}
        return SiteAdapter(page, cfg, account, cfg.credentials(account),
                           Selectors(cfg.site("spa"), artifacts_dir, 0.3, Health()),
                           SlidingWindowLimiter(10000), NodeSlots(4, tmp_path / "slots"), **kw)

    yield make
    for c in contexts:
        await c.close()


def loud(exc: SelectorNotFound, element: str, url_part: str) -> None:
    """A miss that names the element, the selectors tried and the URL, with its artifacts."""
    assert exc.element == element and url_part in exc.url and exc.tried, exc
    assert Path(exc.screenshot).is_file() and Path(exc.html).is_file()
    assert element in str(exc) and str(list(exc.tried)) in str(exc)


# ---------------------------------------------------------------- hosts, routes, ids

async def test_two_hosts_fragment_routes_and_ids_read_from_the_full_url(adapter_for, hosts):
    hosts.pages["app"]["/"] = spa({
        "chat": "<ol><li class=item><a href='#c/42'>Al: hi</a></li>"
                "<li class=item><a href='#c/43'>Bo: yo</a></li></ol>",
        "odd": "<ol><li class=item><a href='#profile/42'>Al</a></li></ol>"})
    a = await adapter_for(spec())
    assert a.config.host_urls("spa") == {"app": hosts.url("app")}   # SPA_APP_URL overrides the spec
    assert a.url("conversation", conversation_id="42") == hosts.url("app") + "/#c/42"
    assert [i.conversation_id for i in await a.inbox()] == ["42", "43"]
    assert a.on_inbox() and not a.routes.at(hosts.url("www") + "/#chat", a.url("inbox"))
    # an item whose link is no conversation route: named as unreadable, never skipped
    odd = await adapter_for(spec(paths={**BASE["paths"], "inbox": "{app}/#odd"}))
    with pytest.raises(SelectorNotFound, match="gave no conversation id") as e:
        await odd.inbox()
    loud(e.value, "inbox_item", "#odd")


def test_ids_from_a_query_or_a_fragment_and_paths_compared_as_before():
    from actors.browser.routes import Routes
    from contracts.sitespec import SiteConf
    query = SiteConf.model_validate(spec(hosts={}, paths={
        "login": "/login", "inbox": "/messages", "conversation": "/messages?thread={conversation_id}"}))
    r = Routes(query, "https://chat.example.test")
    assert r.conversation_id("?thread=77", "https://chat.example.test/messages") == "77"
    assert r.conversation_id("/messages/77", "https://chat.example.test/") is None
    path = SiteConf.model_validate(spec(hosts={}, paths={
        "login": "/login", "inbox": "/chat", "conversation": "/chat/{conversation_id}"}))
    r = Routes(path, "https://chat.example.test")   # a path route ignores query and fragment
    assert r.conversation_id("/chat/c1?page=2#end", "https://chat.example.test/chat") == "c1"
    assert r.at("https://other.example.test/chat?x=1", r.url("inbox"))   # one host: any name


def test_a_route_on_an_unknown_host_or_a_bad_host_url_is_a_config_error(make_config, hosts):
    account = {"accounts": [{"id": ACCOUNT, "site": "spa"}]}
    bad = spec(paths={**BASE["paths"], "inbox": "{api}/#chat"})
    with pytest.raises(ConfigError, match=r"inbox: host \{api\} is not in hosts"):
        make_config(app=account, sites={"spa": bad})
    with pytest.raises(ConfigError, match="SPA_APP_URL"):
        make_config(app=account, sites={"spa": spec()}, SPA_APP_URL="ftp://app.example.test")
    # the login may post on any host: none may carry the password in clear off this machine
    with pytest.raises(ConfigError, match="SPA_APP_URL: http:// to app.example.test would send MEETME_PASSWORD"):
        make_config(app=account, sites={"spa": spec()}, SPA_APP_URL="http://app.example.test")


# ---------------------------------------------------------------- ready, empty inbox

async def test_ready_waits_for_the_render_and_an_inbox_is_empty_only_by_its_marker(adapter_for, hosts):
    hosts.pages["app"]["/"] = spa({
        "chat": "<section id=inbox><ol><li class=item><a href='#c/1'>Al</a></li></ol></section>",
        "empty": "<section id=inbox><ol></ol><p class=empty>No messages yet</p></section>",
        "bare": "<section id=inbox><ol></ol></section>"}, delay_ms=300)
    site = spec(elements={"inbox_ready": {"selectors": ["#inbox"]},
                          "inbox_empty": {"selectors": [".empty"]}})
    a = await adapter_for(site)
    assert [i.conversation_id for i in await a.inbox()] == ["1"]   # read after the render, not before
    site["paths"]["inbox"] = "{app}/#empty"
    assert await (await adapter_for(site)).inbox() == []
    site["paths"]["inbox"] = "{app}/#bare"
    with pytest.raises(SelectorNotFound, match="does not show its empty marker") as e:
        await (await adapter_for(site)).inbox()
    loud(e.value, "inbox_item", "#bare")
    site["paths"]["inbox"] = "{app}/#never"      # a shell that never renders the inbox
    with pytest.raises(SelectorNotFound, match="did not render it within 1 s") as e:
        await (await adapter_for(site)).inbox()
    loud(e.value, "inbox_ready", "#never")


# ---------------------------------------------------------------- login steps

LOGIN_PAGE = """<!doctype html><html><body><button id=open>Log in</button><div id=modal></div><script>
document.getElementById('open').onclick = () => {
  document.getElementById('modal').innerHTML =
    '<form id=f><input id=u><input id=p type=password><button id=go>Go</button></form>';
  document.getElementById('f').onsubmit = async (ev) => {
    ev.preventDefault();
    const r = await fetch('/api/login', {method: 'POST', body: JSON.stringify(
      {user: document.getElementById('u').value, password: document.getElementById('p').value})});
    const d = await r.json();
    if (d.go) { location.href = d.go; return; }
    document.getElementById('modal').insertAdjacentHTML('beforeend', '<p class=err>' + d.error + '</p>');
  };
};
</script></body></html>"""

LOGIN = {"type_delay_ms": 5, "submit": "enter", "success_url": "{app}/#home", "attempts": 3,
         "backoff_s": 2, "settle_s": 5}
LOGIN_ELEMENTS = {"login_open": {"selectors": ["#open"]}, "login_error": {"selectors": [".err"]},
                  "logged_in": {"selectors": ["#account-menu"]}}


async def test_login_steps_modal_typed_enter_success_by_url(adapter_for, hosts):
    hosts.pages["www"]["/"] = LOGIN_PAGE
    hosts.pages["app"]["/"] = spa({"home": "<p>welcome</p><div id=account-menu>me</div>"}, delay_ms=200)
    hosts.password, hosts.bounces, hosts.logins = RIGHT_PASSWORD, 0, 0
    a = await adapter_for(spec(login=LOGIN, elements=LOGIN_ELEMENTS))
    await a.login()
    assert a.logins == 1 and hosts.logins == 1 and a.page.url == hosts.url("app") + "/#home"
    # success by the logged-in marker alone (no success_url): only once it has rendered
    b = await adapter_for(spec(login={**LOGIN, "success_url": None, "submit": "click"}, elements=LOGIN_ELEMENTS))
    await b.login()
    assert b.logins == 1 and await b.page.locator("#account-menu").count() == 1


async def test_login_error_is_permanent_and_a_bounce_is_retried_with_backoff_then_a_person(
        adapter_for, hosts):
    hosts.pages["www"]["/"] = LOGIN_PAGE
    hosts.password, hosts.bounces, hosts.logins = "another-password", 0, 0
    a = await adapter_for(spec(login=LOGIN, elements=LOGIN_ELEMENTS))
    with pytest.raises(LoginFailed, match="login_error showed"):
        await a.login()
    assert hosts.logins == 1                      # a wrong password is never tried again
    hosts.password, hosts.bounces, hosts.logins = RIGHT_PASSWORD, 10, 0
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)
    b = await adapter_for(spec(login={**LOGIN, "type_delay_ms": 0}, elements=LOGIN_ELEMENTS), sleep=sleep)
    with pytest.raises(NeedsLogin, match="3 login attempts .* ended neither logged in") as e:
        await b.login()
    assert hosts.logins == 3 and slept == [2, 4] and b.login_bounces == 3   # never hammered
    assert Path(e.value.screenshot).is_file() and RIGHT_PASSWORD not in str(e.value)


async def test_a_login_open_that_matches_nothing_fails_loudly(adapter_for, hosts):
    hosts.pages["www"]["/"] = LOGIN_PAGE
    a = await adapter_for(spec(login=LOGIN, elements={**LOGIN_ELEMENTS,
                                                      "login_open": {"selectors": ["#sign-in"]}}))
    with pytest.raises(SelectorNotFound) as e:
        await a.login()
    loud(e.value, "login_open", hosts.url("www"))


# ---------------------------------------------------------------- navigation inside the app

CONV = ("<h4 class=contact>Alice</h4><ol>"
        "<li class='msg them'><p>hi</p><time datetime='2026-12-01T10:00:00Z'></time></li>"
        "<li class='msg me'><p>hello Alice</p><time datetime='2026-12-01T10:01:00Z'></time></li></ol>")


async def test_navigation_by_click_with_a_fallback_to_the_url_or_a_loud_miss(adapter_for, hosts):
    hosts.pages["app"]["/"] = spa({
        "chat": "<nav><a id=nav href='#chat'>Chat</a></nav><ol><li class=item><a href='#c/42'>Al</a></li></ol>",
        "c/42": "<nav><a id=nav href='#chat'>Chat</a></nav><div id=conv>" + CONV + "</div>",
        "c/99": "<div id=conv>" + CONV + "</div>"})
    elements = {"conversation_ready": {"selectors": ["#conv"]}, "nav_inbox": {"selectors": ["#nav"]}}
    a = await adapter_for(spec(navigate={"conversation": "click", "inbox": "click"}, elements=elements))
    await a.open_conversation("42")             # the inbox first, then a click on the item
    assert a.page.url.endswith("#c/42") and await a.page.locator("#conv").count()
    await a.open_inbox()                        # back by the nav link
    assert a.on_inbox()
    with pytest.raises(SelectorNotFound, match="nothing to click") as e:
        await a.open_conversation("99")         # not in the inbox: a click cannot get there
    loud(e.value, "inbox_item", "#chat")
    b = await adapter_for(spec(navigate={"conversation": "both"}, elements=elements))
    await b.open_conversation("99")             # both: the URL when no click gets there
    assert b.page.url.endswith("#c/99") and await b.page.locator("#conv").count()


# ---------------------------------------------------------------- senders from the header

async def test_senders_from_the_conversation_header_and_the_account(adapter_for, hosts):
    hosts.pages["app"]["/"] = spa({"c/42": CONV, "c/43": CONV.replace("<h4 class=contact>Alice</h4>", "")})
    a = await adapter_for(spec(elements={"conversation_ready": {"selectors": ["ol"]}}))
    msgs = await a.conversation("42", None, 1)
    assert [(m.direction, m.sender, m.text) for m in msgs] == [("in", "Alice", "hi"),
                                                               ("out", ACCOUNT, "hello Alice")]
    with pytest.raises(SelectorNotFound, match="the contact's name") as e:
        await a.conversation("43", None, 1)
    loud(e.value, "conversation_contact", "#c/43")


# ---------------------------------------------------------------- status previews, typing

async def test_status_previews_and_typing_indicators_are_no_change(adapter_for, hosts, make_config):
    item = "<li class=item><a href='#c/{id}'><b>{name}</b><p class=pv>{pv}</p>{typing}</a></li>"
    hosts.pages["app"]["/"] = spa({
        "chat": "<ol>" + item.format(id=1, name="Al", pv="Sent: see you", typing="")
        + item.format(id=2, name="Bo", pv="hello", typing="<p class=typing>typing…</p>") + "</ol>",
        "quiet": "<ol>" + item.format(id=2, name="Bo", pv="hello", typing="") + "</ol>"})
    elements = {"inbox_preview": {"selectors": ["p.pv"]}, "inbox_typing": {"selectors": [".typing"]},
                "inbox_status": {"patterns": ["^Sent\\b", "^Seen$"]}}
    a = await adapter_for(spec(elements=elements))
    sent, typing = await a.inbox()
    assert sent.status and not sent.unchanged_since("Al hi there")   # "hi there" -> our reply: read once
    seen = (await a.inbox(reload=False))[0]
    assert seen.unchanged_since(sent.signature)                 # a status after a status: no change
    assert not typing.status and "typing" not in typing.signature
    quiet = await (await adapter_for(spec(elements=elements, paths={**BASE["paths"], "inbox": "{app}/#quiet"}))).inbox()
    assert quiet[0].signature == typing.signature               # typing came and went: no change
    with pytest.raises(ConfigError, match="'patterns' need an inbox_preview element"):
        make_config(app={"accounts": [{"id": ACCOUNT, "site": "spa"}]},
                    sites={"spa": spec(elements={"inbox_status": {"patterns": ["^Sent"]}})})


# ---------------------------------------------------------------- sending

SEND_VIEW = """<h4 class=contact>Alice</h4><ol id=log>
<li class='msg them'><p>ping</p><time datetime='2026-12-01T10:00:00Z'></time></li></ol>
<form><textarea></textarea><button class=send disabled>Send</button></form>"""

SEND_JS = """<script>
document.addEventListener('keydown', (ev) => {
  if (ev.key !== 'Enter' || ev.target.tagName !== 'TEXTAREA') return;
  ev.preventDefault();
  const li = document.createElement('li');
  li.className = 'msg me is-pending';
  li.innerHTML = '<p></p><time datetime="2026-12-01T10:02:00Z"></time>';
  li.querySelector('p').textContent = ev.target.value;
  document.getElementById('log').append(li);
  if (!location.hash.includes('stuck')) setTimeout(() => li.classList.remove('is-pending'), 200);
});
</script>"""


async def test_send_by_either_falls_back_to_enter_and_a_pending_message_is_no_confirmation(
        adapter_for, hosts):
    hosts.pages["app"]["/"] = spa({"c/1": SEND_VIEW, "c/stuck": SEND_VIEW,
                                   "c/2": SEND_VIEW.replace("<textarea></textarea>", "")}) + SEND_JS
    elements = {"conversation_ready": {"selectors": ["#log"]},
                "message_pending": {"selectors": [".is-pending"]}}
    a = await adapter_for(spec(send_by="either", elements=elements))
    on_page = await a.conversation("1", None, 1)
    sent = await a.send("1", "pong", anchor(await a.read_seen(), "pong", a.site.anchor_messages))
    assert (sent.direction, sent.sender, sent.text) == ("out", ACCOUNT, "pong") and len(on_page) == 1
    await a.conversation("stuck", None, 1)
    a.config.app.browser.navigation_timeout_s = 1
    with pytest.raises(SendNotConfirmed, match="still marked pending"):
        await a.send("stuck", "pong", anchor(await a.read_seen(), "pong", a.site.anchor_messages))
    await a.conversation("2", None, 1)
    with pytest.raises(SelectorNotFound) as e:
        await a.send("2", "pong", [])
    loud(e.value, "reply_box", "#c/2")


# ---------------------------------------------------------------- older messages by scrolling

SCROLL_VIEW = """<h4 class=contact>Alice</h4><div id=box style='height:60px;overflow:auto'><ol id=log>{msgs}</ol></div>"""
SCROLL_JS = """<script>
let older = 3;
document.addEventListener('scroll', (ev) => {
  if (ev.target.id !== 'box' || ev.target.scrollTop > 0 || older === 0) return;
  setTimeout(() => {
    const log = document.getElementById('log');
    for (; older > 0; older--) {
      const li = document.createElement('li');
      li.className = 'msg them';
      li.innerHTML = '<p>old ' + older + '</p><time datetime="2026-12-01T09:0' + older + ':00Z"></time>';
      log.prepend(li);
    }
    const start = document.createElement('li'); start.className = 'start'; log.prepend(start);
  }, 100);
}, true);
</script>"""


async def test_older_messages_by_scrolling_and_a_missing_container_is_loud(adapter_for, hosts):
    msgs = "".join(f"<li class='msg them'><p>new {i}</p><time datetime='2026-12-01T10:0{i}:00Z'></time></li>"
                   for i in range(3))
    hosts.pages["app"]["/"] = spa({"c/1": SCROLL_VIEW.format(msgs=msgs),
                                   "c/2": CONV}) + SCROLL_JS
    elements = {"conversation_ready": {"selectors": ["#log", "ol"]},
                "scroll_container": {"selectors": ["#box"]}, "conversation_start": {"selectors": ["li.start"]}}
    a = await adapter_for(spec(older_by="scroll", elements=elements))
    msgs = await a.conversation("1", None, 5)
    assert [m.text for m in msgs] == ["old 1", "old 2", "old 3", "new 0", "new 1", "new 2"]
    with pytest.raises(SelectorNotFound) as e:   # no container to scroll, no start marker
        await a.conversation("2", None, 5)
    loud(e.value, "scroll_container", "#c/2")


# ---------------------------------------------------------------- frames

async def test_messages_inside_an_iframe_and_a_missing_frame_is_loud(adapter_for, hosts):
    framed = ("<iframe id=chat srcdoc=\"" + CONV.replace("'", "&#39;").replace('"', "&quot;")
              + "\"></iframe>")
    hosts.pages["app"]["/"] = spa({"c/1": framed, "c/2": CONV}, delay_ms=0)
    inside = {"frame": "#chat"}
    elements = {"conversation_ready": {"selectors": ["iframe", "ol"]},
                "message": {"selectors": ["li.msg"], **inside},
                "conversation_contact": {"selectors": ["h4.contact"], **inside}}
    a = await adapter_for(spec(elements=elements))
    msgs = await a.conversation("1", None, 1)
    assert [(m.sender, m.text) for m in msgs] == [("Alice", "hi"), (ACCOUNT, "hello Alice")]
    with pytest.raises(SelectorNotFound) as e:   # the messages are not in a frame on this page
        await a.conversation("2", None, 1)
    loud(e.value, "message", "#c/2")
