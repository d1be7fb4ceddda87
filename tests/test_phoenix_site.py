"""The phoenix stand-in (standins/phoenix) driven by real Chromium: every behaviour of its markup
contract (empty shell then render, the login modal on the www host and the handoff to the app
host, the push modal, hash routes, status previews, typing, Enter-to-send with its pending state
and the send faults, scroll paging, live pushes, renamed hooks). One browser for the module, a
fresh context per test; render delays kept small through the admin API."""
from __future__ import annotations

import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from standins.phoenix import PhoenixAdmin
from tests.fixtures.infra import BASE_ENV
from tests.helpers import wait_for
from tests.review_helpers import HeldRequests, chromium

USER, PASSWORD = BASE_ENV["MEETME_USERNAME"], BASE_ENV["MEETME_PASSWORD"]
CID = "1000001"
ITEMS = "#chat-section ol.media-list.chat-list > li"
MESSAGES = "#chat-messages ol.chat-message-list > li.media"
BOX = '.chat-form textarea.form-control.input-lg[placeholder="Type something\u2026"]'
SEND = '.chat-form button[type="submit"]'


@pytest.fixture(scope="module")
def browser() -> Browser:
    with chromium() as b:
        yield b


@pytest.fixture
def site(phoenix_site: PhoenixAdmin) -> PhoenixAdmin:
    """Small render delay and no push modal unless a test asks for them."""
    phoenix_site.faults(render_delay_ms=30, push_modal=False)
    return phoenix_site


@pytest.fixture
def context(browser: Browser) -> BrowserContext:
    ctx = browser.new_context()
    ctx.set_default_timeout(5000)
    yield ctx
    ctx.close()


@pytest.fixture
def tab(context: BrowserContext) -> Page:
    return context.new_page()


def logged_in(context: BrowserContext, site: PhoenixAdmin) -> None:
    """The app host's session cookie, as a login leaves it."""
    c = site.session_cookie(USER)
    context.add_cookies([{"name": c["cookie"], "value": c["value"], "url": site.app_url}])


def open_app(tab: Page, site: PhoenixAdmin, route: str) -> None:
    tab.goto(f"{site.app_url}/#{route}")
    if route == "chat":
        tab.wait_for_selector("#chat-section")
    elif route.startswith("chat/member/"):
        tab.wait_for_selector(".chat-form")


def login_through_modal(tab: Page, site: PhoenixAdmin, password: str = PASSWORD) -> None:
    tab.goto(f"{site.www_url}/")
    tab.click("#marketing-header-login .btn-black")
    tab.type("#site-login-modal-email", USER)
    tab.type("#site-login-modal-password", password)
    tab.click("#site-login-modal-submit-group > button")


def test_every_load_is_an_empty_shell_rendered_from_the_api(site, context, tab):
    """Held API answers (the render delay, made as long as the test needs): the page stays empty,
    then renders; an inbox whose list has not rendered is not an empty inbox."""
    site.inject(CID, "Ann", "hello")
    raw = context.request.get(f"{site.www_url}/").text()
    assert '<div id="global-layer-main-content"></div>' in raw and "marketing-header-login" not in raw
    held = HeldRequests(tab, "**/api/config")
    tab.goto(f"{site.www_url}/", wait_until="domcontentloaded")
    held.wait()
    assert tab.inner_html("#global-layer-main-content") == ""
    held.release()
    expect(tab.locator("#marketing-header-login .btn-black")).to_be_visible()
    assert tab.url == f"{site.www_url}/#home"

    logged_in(context, site)
    me, inbox = HeldRequests(tab, "**/api/me"), HeldRequests(tab, "**/api/conversations*")
    tab.goto(f"{site.app_url}/#chat", wait_until="domcontentloaded")
    me.wait()
    assert tab.inner_html("#global-layer-main-content") == ""
    me.release()
    inbox.wait()
    expect(tab.locator("#phoenix-topbar #user-menu")).to_be_visible()
    assert tab.locator("#chat-section").count() == 0     # not rendered yet: no items is not empty
    inbox.release()
    expect(tab.locator(ITEMS)).to_have_count(1)
    assert tab.locator("#chat-section .chat-list-empty").count() == 0


def test_an_empty_inbox_says_so(site, context, tab):
    logged_in(context, site)
    open_app(tab, site, "chat")
    expect(tab.locator("#chat-section .chat-list-empty")).to_have_text("No messages yet")
    assert tab.locator(ITEMS).count() == 0


def test_login_modal_hands_off_to_the_app_host(site, tab):
    login_through_modal(tab, site)
    tab.wait_for_url(f"{site.app_url}/#meet")
    expect(tab.locator("#phoenix-topbar #user-menu")).to_be_visible()
    stats = site.stats()
    assert stats["login_submissions"] == 1 and stats["logins"] == 1


def test_enter_in_the_password_field_submits(site, tab):
    tab.goto(f"{site.www_url}/")
    tab.click("#marketing-header-login .btn-black")
    tab.type("#site-login-modal-email", USER)
    tab.type("#site-login-modal-password", PASSWORD)
    tab.press("#site-login-modal-password", "Enter")
    tab.wait_for_url(f"{site.app_url}/#meet")


def test_wrong_password_shows_the_error_in_the_modal(site, tab):
    login_through_modal(tab, site, password="wrong")
    expect(tab.locator("#site-login-modal .error-message")).to_have_text("Invalid email or password")
    assert tab.url == f"{site.www_url}/#home"
    assert site.stats()["logins"] == 0


def test_app_host_without_a_session_goes_to_the_start_page(site, tab):
    tab.goto(f"{site.app_url}/#chat")
    tab.wait_for_url(f"{site.www_url}/#home")
    expect(tab.locator("#marketing-header-login .btn-black")).to_be_visible()


def test_a_session_lost_mid_visit_goes_to_the_start_page(site, context, tab):
    site.inject(CID, "Ann", "hello")
    logged_in(context, site)
    open_app(tab, site, "chat")
    site.faults(logged_out=True)
    tab.click(f"{ITEMS} a.media-body")       # the next read of the app's API answers 401
    tab.wait_for_url(f"{site.www_url}/#home")
    expect(tab.locator("#marketing-header-login .btn-black")).to_be_visible()


def test_login_bounce_ends_on_home_without_an_error(site, tab):
    site.faults(login_bounce=1)
    views = site.stats()["views"].get("www", 0)
    login_through_modal(tab, site)
    wait_for(lambda: site.stats()["views"].get("www", 0) == views + 2, what="the bounce's page load")
    expect(tab.locator("#marketing-header-login .btn-black")).to_be_visible()
    assert tab.url == f"{site.www_url}/#home"
    assert tab.locator(".error-message").count() == 0 and tab.locator("#site-login-modal").count() == 0
    assert site.stats()["login_bounces"] == 1 and site.stats()["logins"] == 0
    login_through_modal(tab, site)          # the next attempt goes through
    tab.wait_for_url(f"{site.app_url}/#meet")


def test_challenge_fault_shows_a_challenge_page(site, tab):
    site.faults(challenge="captcha")
    login_through_modal(tab, site)
    expect(tab.locator("[data-testid=login-challenge]")).to_be_visible()
    assert site.stats()["logins"] == 0


def test_push_modal_blocks_the_page_until_closed(site, context, tab):
    site.faults(push_modal=True)
    site.inject(CID, "Ann", "hello")
    logged_in(context, site)
    open_app(tab, site, "chat")
    modal = tab.locator("#enable-push-notifications")
    expect(modal).to_be_visible()
    with pytest.raises(PlaywrightTimeout):      # the modal takes the click
        tab.locator(f"{ITEMS} a.media-body").click(timeout=600)
    assert tab.url.endswith("#chat")
    tab.click("#enable-push-notifications .modal-footer button.btn-primary")
    expect(modal).to_have_count(0)
    tab.click(f"{ITEMS} a.media-body")
    tab.wait_for_selector(".chat-form")
    assert modal.count() == 0                   # a hash change is not a full load
    tab.reload()
    expect(modal).to_be_visible()


def test_hash_routes_render_without_a_page_load(site, context, tab):
    site.inject(CID, "Ann", "hello")
    logged_in(context, site)
    open_app(tab, site, "chat")
    tab.evaluate("window.__same_document = true")
    views = site.stats()["page_views"]
    expect(tab.locator(f"{ITEMS} span.badge.chat-unread")).to_have_text("1")
    tab.click(f"{ITEMS} a.media-body")
    expect(tab.locator(".chat-header h4.media-heading")).to_have_text("Ann")
    assert tab.url == f"{site.app_url}/#chat/member/{CID}/chat"
    assert "Ann" not in tab.inner_text("#chat-messages")     # the name is only in the header
    tab.click("#nav-chat > a")
    expect(tab.locator(ITEMS)).to_have_count(1)
    expect(tab.locator(f"{ITEMS} span.badge")).to_have_count(0)       # read: cleared
    expect(tab.locator("#nav-chat > a > div > span:nth-child(1)")).to_have_text("0")
    assert tab.evaluate("window.__same_document") is True
    stats = site.stats()
    assert stats["page_views"] == views and stats["inbox_views"] == 2 and stats["conversation_views"] == 1
    assert tab.locator("#enable-push-notifications").count() == 0     # switched off (site fixture)


def test_inbox_items_status_previews_and_typing(site, context, tab):
    site.inject(CID, "Ann", "are you there?")
    site.inject("1000002", "Bob", "hi Bob", direction="out")
    site.inject("1000003", "Cy", "seen this", direction="out")
    site.seen("1000003")
    site.inject("1000004", "<b>Eve</b>", "<img src=x onerror=\"document.title='owned'\">")
    logged_in(context, site)
    open_app(tab, site, "chat")
    items = tab.locator(ITEMS)
    expect(items).to_have_count(4)
    eve = items.filter(has_text="<b>Eve</b>")                 # chat text is text, never markup
    expect(eve.locator("p.messages-chats-item-preview")).to_have_text("<img src=x onerror=\"document.title='owned'\">")
    assert tab.title() != "owned"
    ann = items.filter(has_text="Ann")
    assert ann.locator("a.media-body").get_attribute("href") == f"#chat/member/{CID}/chat"
    assert ann.locator("h5.media-heading").inner_text() == "Ann"
    assert float(ann.locator(".media-date span[data-timestamp]").get_attribute("data-timestamp")) > 1.7e9
    expect(ann.locator("p.messages-chats-item-preview")).to_have_text("are you there?")
    expect(ann.locator("span.badge.chat-unread")).to_have_text("1")
    expect(items.filter(has_text="Bob").locator("p.messages-chats-item-preview")).to_have_text("Sent: hi Bob")
    expect(items.filter(has_text="Cy").locator("p.messages-chats-item-preview")).to_have_text("Seen")
    expect(tab.locator("#nav-chat > a > div > span:nth-child(1)")).to_have_text("2")

    site.typing(CID, True)
    expect(ann.locator("p.messages-chats-item-typing")).to_have_text("typing\u2026")
    expect(ann.locator("p.messages-chats-item-preview")).to_have_text("are you there?")
    site.typing(CID, False)
    expect(ann.locator("p.messages-chats-item-typing")).to_have_count(0)


def test_send_button_disabled_until_input_and_enter_sends_with_a_pending_mark(site, context, tab):
    site.inject(CID, "Ann", "hello")
    logged_in(context, site)
    open_app(tab, site, f"chat/member/{CID}/chat")
    expect(tab.locator(SEND)).to_be_disabled()
    tab.fill(BOX, "   ")
    expect(tab.locator(SEND)).to_be_disabled()
    tab.press(BOX, "Enter")                             # nothing to send
    assert tab.locator(f"{MESSAGES}.messages-chat-media-me").count() == 0
    tab.fill(BOX, "")
    tab.type(BOX, "first line")
    expect(tab.locator(SEND)).to_be_enabled()
    tab.press(BOX, "Shift+Enter")
    tab.type(BOX, "second line")
    assert tab.input_value(BOX) == "first line\nsecond line"
    post = HeldRequests(tab, f"**/api/conversations/{CID}/messages")    # the send, not a sync
    tab.press(BOX, "Enter")
    post.wait()
    mine = tab.locator(f"{MESSAGES}.messages-chat-media-me")
    expect(mine).to_have_count(1)
    expect(mine).to_have_class("media messages-chat-media-me is-pending")
    expect(mine.locator(".chat-message-pending")).to_have_text("Sending\u2026")
    assert tab.input_value(BOX) == ""
    expect(tab.locator(SEND)).to_be_disabled()
    assert site.sent()["messages"] == []
    post.release()
    expect(mine).not_to_have_class("media messages-chat-media-me is-pending")
    expect(mine.locator(".chat-message p")).to_have_text("first line\nsecond line")
    assert mine.locator(".chat-message-pending").count() == 0
    assert [m["text"] for m in site.sent()["messages"]] == ["first line\nsecond line"]
    tab.reload()
    tab.wait_for_selector(".chat-form")
    expect(tab.locator(MESSAGES)).to_have_count(2)     # once, not twice


def test_send_pending_forever_stays_pending(site, context, tab):
    site.inject(CID, "Ann", "hello")
    site.faults(send_pending_forever=True)
    logged_in(context, site)
    open_app(tab, site, f"chat/member/{CID}/chat")
    tab.type(BOX, "are you free?")
    tab.press(BOX, "Enter")
    wait_for(lambda: site.stats()["held_sends"] == 1, what="the send to reach the site")
    site.inject(CID, "Ann", "still here")                # a push while our send hangs
    expect(tab.locator(MESSAGES)).to_have_count(3)
    expect(tab.locator(f"{MESSAGES}.is-pending .chat-message p")).to_have_text("are you free?")
    assert site.sent()["messages"] == []


def test_send_fail_after_store_shows_failed_while_the_site_has_it(site, context, tab):
    site.inject(CID, "Ann", "hello")
    site.faults(send_fail_after_store=True)
    logged_in(context, site)
    open_app(tab, site, f"chat/member/{CID}/chat")
    tab.type(BOX, "see you at 8")
    tab.click(SEND)                                       # the button sends as Enter does
    expect(tab.locator(f"{MESSAGES}.is-failed .chat-message p")).to_have_text("see you at 8")
    assert tab.locator(f"{MESSAGES}.is-pending").count() == 0
    assert [m["text"] for m in site.sent()["messages"]] == ["see you at 8"]


def test_scrolling_to_the_top_loads_the_previous_pages(site, context, tab):
    for i in range(45):
        site.inject(CID, "Ann", f"message {i}")
    logged_in(context, site)
    open_app(tab, site, f"chat/member/{CID}/chat")
    texts = tab.locator(f"{MESSAGES} .chat-message p")
    expect(texts).to_have_count(20)
    assert texts.first.inner_text() == "message 25" and texts.last.inner_text() == "message 44"
    assert tab.locator("li.chat-start").count() == 0
    box = tab.locator("#chat-messages")
    assert box.evaluate("b => b.scrollTop > 0 && b.scrollHeight > b.clientHeight")
    box.evaluate("b => { b.scrollTop = 0; }")
    expect(texts).to_have_count(40)
    assert texts.first.inner_text() == "message 5"
    assert box.evaluate("b => b.scrollTop") > 0                 # the position is kept
    assert tab.locator("li.chat-start").count() == 0
    box.evaluate("b => { b.scrollTop = 0; }")
    expect(texts).to_have_count(45)
    expect(tab.locator("#chat-messages li.chat-start")).to_have_text("This is the beginning of your conversation")
    assert tab.locator("#chat-messages ol > li").first.get_attribute("class") == "chat-start"
    assert texts.first.inner_text() == "message 0"


def test_pages_that_do_not_fill_the_box_load_the_ones_before(site, context, tab):
    site.faults(page_size=4)
    for i in range(9):
        site.inject(CID, "Ann", f"message {i}")
    logged_in(context, site)
    open_app(tab, site, f"chat/member/{CID}/chat")
    expect(tab.locator(f"{MESSAGES} .chat-message p")).to_have_count(9)
    expect(tab.locator("#chat-messages li.chat-start")).to_have_count(1)


def test_live_pushes_into_the_inbox_and_the_conversation(site, context, tab):
    site.inject(CID, "Ann", "hello")
    logged_in(context, site)
    open_app(tab, site, "chat")
    views = site.stats()["page_views"]
    site.inject("1000002", "Bob", "new here")
    expect(tab.locator(ITEMS)).to_have_count(2)
    expect(tab.locator(ITEMS).first.locator("h5.media-heading")).to_have_text("Bob")
    tab.click(f"{ITEMS} a.media-body >> nth=1")
    expect(tab.locator(MESSAGES)).to_have_count(1)
    site.inject(CID, "Ann", "one more")
    expect(tab.locator(MESSAGES)).to_have_count(2)
    expect(tab.locator(f"{MESSAGES}.messages-chat-media-them .chat-message p").last).to_have_text("one more")
    assert site.stats()["page_views"] == views


def test_rename_fault_misses_the_shipped_hooks_but_keeps_stable_ones(site, context, tab):
    site.inject(CID, "Ann", "hello")
    site.rename(inbox_list="cl-x1", reply_box="Say something", conversation_contact="hdr-x2")
    logged_in(context, site)
    open_app(tab, site, "chat")
    assert tab.locator(ITEMS).count() == 0
    expect(tab.locator("[data-testid=chat-list] > li")).to_have_count(1)
    assert tab.locator("ol.cl-x1 > li").count() == 1
    tab.click("[data-testid=chat-item-link]")
    tab.wait_for_selector(".chat-form")
    assert tab.locator(BOX).count() == 0 and tab.locator(".chat-header h4.media-heading").count() == 0
    expect(tab.get_by_role("textbox", name="Message")).to_have_attribute("placeholder", "Say something")
    expect(tab.locator("[data-testid=chat-contact-name]")).to_have_class("hdr-x2")
    expect(tab.locator("[data-testid=chat-contact-name]")).to_have_text("Ann")


def test_runs_alone_on_the_ports_given():
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    proc = subprocess.Popen([sys.executable, "-m", "standins.phoenix", "--port-www", str(ports[0]),
                             "--port-app", str(ports[1])], stdout=subprocess.PIPE, text=True)
    try:
        assert f"http://localhost:{ports[0]}" in proc.stdout.readline()
        admin = PhoenixAdmin(f"http://127.0.0.1:{ports[1]}", f"http://localhost:{ports[0]}")
        assert admin.stats()["page_views"] == 0
        with urllib.request.urlopen(f"{admin.www_url}/") as r:
            assert b'id="global-layer-main-content"' in r.read()
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_rename_any_class_or_id_wherever_it_appears(site, context, tab):
    site.inject(CID, "Ann", "hello")
    site.rename({".chat-form": "cf-x", "#chat-messages": "cm-x"})
    logged_in(context, site)
    tab.goto(f"{site.app_url}/#chat/member/{CID}/chat")
    tab.wait_for_selector("form.cf-x")
    assert tab.locator(".chat-form").count() == 0 and tab.locator("#chat-messages").count() == 0
    expect(tab.locator("[data-testid=chat-form]")).to_have_class("cf-x")
    expect(tab.get_by_role("log", name="Messages")).to_have_attribute("id", "cm-x")
    with pytest.raises(urllib.error.HTTPError) as refused:
        site.rename({"chat-list": "x"})
    assert refused.value.code == 400 and "unknown keys ['chat-list']" in refused.value.read().decode()


def test_chatsite_page_faults_apply_to_shell_loads(site):
    site.faults(http500=1)
    with pytest.raises(urllib.error.HTTPError) as failed:
        urllib.request.urlopen(f"{site.www_url}/")
    assert failed.value.code == 500
    with urllib.request.urlopen(f"{site.www_url}/") as r:      # only the next one
        assert r.status == 200
    assert site.stats()["errors_500"] == 1
    with pytest.raises(urllib.error.HTTPError) as refused:     # chatsite-only: not silently ignored
        site.faults(popup="always")
    assert refused.value.code == 400 and "popup" in refused.value.read().decode()
