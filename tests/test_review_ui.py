"""The review page in real headless Chromium against the real API and store."""
from __future__ import annotations

import pytest
import requests
from playwright.sync_api import expect

from contracts import telemetry
from tests.review_helpers import (HeldRequests, add_conversation, chromium, send_as_browser, serve,
                                  sign_in)

HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=1">'


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture
def config(make_config):
    cfg = make_config(app={"review": {"poll_interval_s": 0.2}})
    telemetry.setup_from(cfg, "review-test")
    return cfg


@pytest.fixture
def desk(config, store):
    served = serve(config, store)
    yield served
    served.stop()


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
