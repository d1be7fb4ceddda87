"""The review page in real headless Chromium against the real API and store."""
from __future__ import annotations

import pytest
import requests
from playwright.sync_api import expect

from tests.review_helpers import (
    HeldRequests,
    add_conversation,
    add_sent_reply,
    chromium,
    desk_fixtures,
    send_as_browser,
    sign_in,
)

HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=1">'


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


config, desk = desk_fixtures({"poll_interval_s": 0.2, "inbox_poll_interval_s": 0.3})


@pytest.fixture
def page(browser, desk):
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    p = context.new_page()
    p.goto(desk.url + "/")
    yield p
    context.close()


def _token(config) -> str:
    return config.settings.review_token.get_secret_value()


def test_edit_approve_then_sent(page, desk, store, config, artifacts_dir):
    first = add_conversation(store, "c1", ["hi!", "are you around this weekend?"], draft="Yes, Saturday works.")
    second = add_conversation(store, "c2", ["hello"], draft="Hello there")
    sign_in(page, _token(config))
    items = page.locator(".draft-item")
    expect(items).to_have_count(2)
    expect(page.locator("#reviewer")).to_have_text("owner")

    page.keyboard.press("j")                                    # newest first: c2, then c1
    expect(page.locator("#conv-id")).to_have_text("c2")
    page.keyboard.press("j")
    expect(page.locator("#conv-id")).to_have_text("c1")
    expect(page.locator("#messages li")).to_have_count(2)
    expect(page.get_by_label("Reply draft", exact=False)).to_have_value("Yes, Saturday works.")
    expect(page.get_by_role("button", name="Save & Approve")).to_be_disabled()

    page.get_by_label("Reply draft", exact=False).fill("Yes, Saturday at 3 works for me.")
    held = HeldRequests(page, "**/api/drafts/*/edit")   # hold the real request: see the spinner
    page.get_by_role("button", name="Save & Approve").click()
    conversation = page.locator("#conversation")
    expect(conversation).to_have_attribute("aria-busy", "true")
    expect(conversation.locator(".spinner")).to_be_visible()
    expect(page.get_by_role("button", name="Approve", exact=True)).to_be_disabled()
    held.wait(1)
    held.release()
    status = page.locator("#draft-status")
    expect(status).to_contain_text("Edited and approved by owner")
    expect(conversation).to_have_attribute("aria-busy", "false")
    expect(items).to_have_count(1)
    assert store.drafts.get(first["_id"])["text"] == "Yes, Saturday at 3 works for me."

    send_as_browser(store, first["_id"])                     # as the browser actor would
    expect(status).to_contain_text("Sent")
    expect(status).to_have_attribute("data-status", "sent")
    page.screenshot(path=str(artifacts_dir / "review-desk-sent.png"), full_page=True)

    page.keyboard.press("j")
    expect(page.locator("#conv-id")).to_have_text("c2")
    page.keyboard.press("a")
    expect(status).to_contain_text("Approved by owner")
    assert store.drafts.get(second["_id"])["status"] == "approved"
    assert store.outbox.coll.count_documents({"routing_key": "draft.approved"}) == 2
    expect(page.locator("#inbox-empty")).to_be_visible()


def test_hostile_text_is_shown_as_text(page, store, config, artifacts_dir):
    add_conversation(store, "c1", [HOSTILE], draft=HOSTILE)
    sign_in(page, _token(config))
    page.locator(".draft-item").first.click()
    message = page.locator("#messages .text").first
    expect(message).to_have_text(HOSTILE)
    expect(page.locator(".draft-item .snippet")).to_have_text(HOSTILE)
    expect(page.get_by_label("Reply draft", exact=False)).to_have_value(HOSTILE)
    assert page.locator("#desk img, #desk script").count() == 0
    assert page.evaluate("() => window.__pwned") is None
    page.screenshot(path=str(artifacts_dir / "review-desk-hostile.png"), full_page=True)


def test_wrong_token_and_conflict_show_readable_errors(page, desk, store, config):
    d = add_conversation(store, "c1", ["hi"], draft="hello")
    sign_in(page, "not-the-right-token-at-all")
    error = page.get_by_role("alert")
    expect(error).to_contain_text("the review token was not accepted (401)")
    expect(page.get_by_label("Review token")).to_be_focused()

    sign_in(page, _token(config))
    expect(error).to_be_hidden()
    page.locator(".draft-item").first.click()
    expect(page.get_by_role("button", name="Approve", exact=True)).to_be_enabled()
    other = requests.post(f"{desk.url}/api/drafts/{d['_id']}/reject", timeout=10,     # someone else
                          headers={"Authorization": f"Bearer {_token(config)}"}, json={"reason": "no"})
    assert other.status_code == 200
    page.get_by_role("button", name="Approve", exact=True).click()
    expect(error).to_contain_text("it was already rejected by owner")
    expect(error).to_contain_text("409")
    expect(page.locator("#draft-status")).to_contain_text("Rejected by owner: no")
    expect(page.get_by_role("button", name="Approve", exact=True)).to_be_disabled()


def test_server_failure_shows_readable_error_and_retry_works(page, store, config, artifacts_dir):
    d = add_conversation(store, "c1", ["hi"], draft="hello")
    sign_in(page, _token(config))
    page.locator(".draft-item").first.click()
    # A real failure inside the database: a unique index that the approval's update violates.
    store.drafts.coll.insert_one({"_id": "blocker", "decided_by": "owner", "status": "sent"})
    store.drafts.coll.create_index("decided_by", unique=True, name="fault_injection")
    page.get_by_role("button", name="Approve", exact=True).click()
    error = page.get_by_role("alert")
    expect(error).to_contain_text("Approving the draft failed: internal error in the review desk")
    expect(error).to_contain_text("HTTP 500")
    expect(page.locator("#conversation")).to_have_attribute("aria-busy", "false")
    page.screenshot(path=str(artifacts_dir / "review-desk-error.png"), full_page=True)
    assert store.drafts.get(d["_id"])["status"] == "pending_review"
    assert store.outbox.coll.count_documents({}) == 0

    store.drafts.coll.drop_index("fault_injection")
    page.get_by_role("button", name="Approve", exact=True).click()
    expect(page.locator("#draft-status")).to_contain_text("Approved by owner")
    expect(error).to_be_hidden()


# Counts every change of the inbox's aria-busy: background re-reads must not show the spinner.
WATCH_BUSY = """() => { window.__busyFlips = 0;
  new MutationObserver(() => { window.__busyFlips += 1; })
    .observe(document.getElementById("inbox"), {attributes: true, attributeFilter: ["aria-busy"]}); }"""


def test_new_drafts_appear_live_without_stealing_focus(page, store, config, artifacts_dir):
    add_conversation(store, "c1", ["hi"], draft="first reply")
    add_conversation(store, "c2", ["hello"], draft="second reply")
    sign_in(page, _token(config))
    items = page.locator(".draft-item")
    expect(items).to_have_count(2)
    page.keyboard.press("j")
    page.keyboard.press("j")                                    # newest first: c2, then c1
    expect(page.locator("#conv-id")).to_have_text("c1")
    c1 = items.filter(has_text="c1")
    expect(c1).to_be_focused()
    expect(c1).to_have_attribute("aria-current", "true")
    page.evaluate("() => { document.activeElement.dataset.probe = 'same-node'; }")
    page.evaluate(WATCH_BUSY)

    add_conversation(store, "c3", ["anyone there?"], draft="third reply")    # no Refresh pressed
    c3 = items.filter(has_text="c3")
    expect(c3).to_have_count(1)
    expect(items.first).to_contain_text("c3")
    expect(c3.locator(".new-badge")).to_have_text("New")
    expect(page.get_by_role("status").filter(has_text="new draft")).to_have_text(
        "1 new draft arrived (Pending drafts: 3).")
    expect(page.locator("#inbox-count")).to_have_text("(3)")
    expect(c1).to_be_focused()                                  # the very element, not a copy
    assert page.evaluate("() => document.activeElement.dataset.probe") == "same-node"
    expect(c1).to_have_attribute("aria-current", "true")
    expect(page.locator("#conv-id")).to_have_text("c1")
    assert page.evaluate("() => window.__busyFlips") == 0     # no spinner for background reads
    page.keyboard.press("k")                                    # navigation goes on from c1
    expect(page.locator("#conv-id")).to_have_text("c2")
    expect(items.filter(has_text="c2")).to_be_focused()

    page.keyboard.press("e")                                    # now editing the reply
    reply = page.get_by_label("Reply draft", exact=False)
    expect(reply).to_be_focused()
    page.keyboard.type(" Typing")
    add_conversation(store, "c4", ["new one"], draft="fourth reply")
    expect(items.filter(has_text="c4")).to_have_count(1)
    expect(page.locator("#inbox-count")).to_have_text("(4)")
    expect(reply).to_be_focused()
    expect(reply).to_have_value("second reply Typing")
    page.keyboard.type(" on")                                   # the caret stayed at the end
    expect(reply).to_have_value("second reply Typing on")
    expect(items.filter(has_text="c2")).to_have_attribute("aria-current", "true")
    page.screenshot(path=str(artifacts_dir / "review-desk-live-inbox.png"), full_page=True)


def test_status_filter_finds_sent_and_rejected_drafts(page, store, config, artifacts_dir):
    sent = add_conversation(store, "c-sent", ["see you at 8?"], draft="Yes, see you then!")
    assert store.drafts.transition(sent["_id"], "pending_review", "approved", decided_by="owner")
    send_as_browser(store, sent["_id"])
    rejected = add_conversation(store, "c-spam", ["win a prize"], draft="ok", classification="spam_or_scam")
    assert store.drafts.transition(rejected["_id"], "pending_review", "rejected", decided_by="owner",
                                   reject_reason="spam")
    add_conversation(store, "c-new", ["hey"], draft="hey back")
    sign_in(page, _token(config))
    items = page.locator(".draft-item")
    status = page.get_by_label("Status", exact=True)
    expect(status).to_have_value("pending_review")
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("c-new")

    status.select_option("sent")
    expect(page.locator("#inbox-label")).to_have_text("Sent drafts")
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("c-sent")
    expect(items.first.locator(".status-badge")).to_have_text("Sent")
    page.keyboard.press("Escape")                               # leave the filter: shortcuts work
    expect(status).not_to_be_focused()
    page.keyboard.press("j")
    expect(page.locator("#conv-id")).to_have_text("c-sent")
    expect(page.locator("#draft-status")).to_have_attribute("data-status", "sent")
    expect(page.get_by_label("Reply draft", exact=False)).to_have_value("Yes, see you then!")
    expect(page.get_by_label("Reply draft", exact=False)).not_to_be_editable()
    expect(page.get_by_role("button", name="Approve", exact=True)).to_be_disabled()
    page.screenshot(path=str(artifacts_dir / "review-desk-filter-sent.png"), full_page=True)

    status.select_option("rejected")
    expect(page.locator("#inbox-label")).to_have_text("Rejected drafts")
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("c-spam")
    status.select_option("approved")
    expect(page.locator("#inbox-empty")).to_have_text("No approved drafts.")
    expect(items).to_have_count(0)
    status.select_option("pending_review")
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("c-new")


def test_conversation_shows_the_reply_once_sent(page, store, config, artifacts_dir):
    draft = add_conversation(store, "c1", ["are you free tonight?"], draft="Yes, 8pm at the usual place?")
    sign_in(page, _token(config))
    page.locator(".draft-item").first.click()
    messages = page.locator("#messages li")
    expect(messages).to_have_count(1)
    page.get_by_role("button", name="Approve", exact=True).click()
    status = page.locator("#draft-status")
    expect(status).to_contain_text("Approved by owner")

    send_as_browser(store, draft["_id"])                       # the browser actor sent it
    expect(status).to_have_attribute("data-status", "sent")
    provisional = page.locator("#messages li.provisional")
    expect(provisional.locator(".text")).to_have_text("Yes, 8pm at the usual place?")
    expect(provisional).to_contain_text("Sent ✓ · waiting for the chat to show it")
    expect(messages).to_have_count(2)

    add_sent_reply(store, store.drafts.get(draft["_id"]))      # the session's next pass stores it
    expect(provisional).to_have_count(0)
    expect(messages).to_have_count(2)
    reply = messages.last
    expect(reply).to_have_class("msg out reply")
    expect(reply.locator(".who")).to_contain_text("me · 2026-11-25T10:30:00Z")
    expect(reply.locator(".text")).to_have_text("Yes, 8pm at the usual place?")
    expect(reply).to_contain_text("This reply was sent ✓")
    page.screenshot(path=str(artifacts_dir / "review-desk-reply-sent.png"), full_page=True)
