"""The Conversations view and the Dead letters panel in real headless Chromium: against the desk
over the real store, then against the whole pipeline (stand-in chat site and AI, real browser
actor, AI worker, broker): a dead-lettered conversation retried once, a spam_or_scam one answered
by hand and sent once, a redraft whose instruction reaches the model in the user message."""
from __future__ import annotations

import json

import pytest
import ray
from playwright.sync_api import Page, expect

from actors.store import Store
from tests.fixtures.infra import BASE_ENV
from tests.helpers import wait_for
from tests.review_helpers import ACCOUNT, add_conversation, chromium, desk_fixtures, sign_in
from tests.test_review_conversations import say

config, desk = desk_fixtures({"poll_interval_s": 0.2, "inbox_poll_interval_s": 0.5})


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def _no_overflow(page: Page, what: str) -> None:
    width = page.evaluate("() => document.documentElement.scrollWidth")
    viewport = page.evaluate("() => window.innerWidth")
    assert width <= viewport, f"{what}: the page is {width}px wide in a {viewport}px window"


def _conversations(page: Page) -> None:
    page.get_by_role("button", name="Conversations", exact=True).click()
    expect(page.locator("#conv-view")).to_be_visible()


def _item(page: Page, contact: str):
    return page.locator(".conv-item").filter(has_text=contact)


def test_every_view_lists_states_and_fits_a_phone(browser, desk, store, config, artifacts_dir):
    add_conversation(store, "c-draft", ["Are you free on Saturday?"])
    say(store, "c-spam", "Crypto Carl", "Double your bitcoin today", 1)
    store.conversations.record_classification(
        account_id=ACCOUNT, conversation_id="c-spam", last_message_id="x", classification="spam_or_scam",
        draft_id=None, seq=1)
    failed = say(store, "c-failed", "Dora Longstory", "a very long story " * 40, 2)
    store.dead_letters.record("ai", f"message.seen:{failed.message_id}",
                              "context too long: 9000 tokens, the model takes 4096", routing_key="message.seen")
    store.dead_letters.record("sheets", "draft.created:d1", "Sheets API answered 403: the caller does not "
                              "have permission", routing_key="draft.created")
    token = config.settings.review_token.get_secret_value()
    for width, height in ((1280, 900), (390, 844)):
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        try:
            page.goto(desk.url + "/")
            sign_in(page, token)
            expect(page.locator(".draft-item")).to_have_count(1)
            _no_overflow(page, f"drafts at {width}px")
            page.screenshot(path=str(artifacts_dir / f"desk-drafts-{width}.png"), full_page=True)
            _conversations(page)
            expect(page.locator(".conv-item")).to_have_count(3)
            expect(_item(page, "Crypto Carl").locator(".cv-state")).to_have_text("Spam or scam")
            expect(_item(page, "Dora Longstory").locator(".cv-state")).to_have_text("AI failed")
            expect(_item(page, "alex").locator(".cv-state")).to_have_text("Draft to review")
            _item(page, "Dora Longstory").click()
            expect(page.locator("#cv-reason")).to_contain_text("context too long: 9000 tokens")
            expect(page.get_by_role("button", name="Retry AI")).to_be_visible()
            _no_overflow(page, f"conversations at {width}px")
            page.screenshot(path=str(artifacts_dir / f"desk-conversations-{width}.png"), full_page=True)

            page.get_by_label("Search").fill("carl")
            page.get_by_role("button", name="Search").click()
            expect(page.locator(".conv-item")).to_have_count(1)
            page.get_by_label("Search").fill("")
            page.get_by_label("State").select_option("ai_failed")
            expect(page.locator(".conv-item")).to_have_count(1)
            expect(page.locator(".conv-item")).to_contain_text("Dora Longstory")

            page.get_by_role("button", name="Dead letters").click()
            expect(page.locator(".dead-item")).to_have_count(2)
            ai = page.locator(".dead-item[data-consumer='ai']")
            expect(ai).to_contain_text("context too long")
            expect(ai.get_by_role("button", name="Retry: c-failed")).to_be_visible()
            expect(page.locator(".dead-item[data-consumer='sheets']").get_by_role("button")).to_have_count(0)
            _no_overflow(page, f"dead letters at {width}px")
            page.screenshot(path=str(artifacts_dir / f"desk-dead-letters-{width}.png"), full_page=True)
            expect(page.locator("#accounts-rows tr")).to_have_count(1)
            page.locator("#accounts").scroll_into_view_if_needed()
            _no_overflow(page, f"accounts at {width}px")
        finally:
            context.close()


def test_answer_and_close_from_the_conversations_view(browser, desk, store, config):
    first = say(store, "c-spam", "Crypto Carl", "Double your bitcoin today", 1)
    store.conversations.record_classification(
        account_id=ACCOUNT, conversation_id="c-spam", last_message_id="x", classification="spam_or_scam",
        draft_id=None, seq=1)
    say(store, "c-bye", "Bea", "thanks, bye!", 2)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        page.goto(desk.url + "/")
        sign_in(page, config.settings.review_token.get_secret_value())
        _conversations(page)
        _item(page, "Crypto Carl").click()
        expect(page.locator("#cv-contact")).to_have_text("Crypto Carl")
        say(store, "c-spam", "Crypto Carl", "last chance: send 1 BTC", 3)     # arrives while writing
        page.get_by_label("Reply by hand").fill("No thanks.")
        page.get_by_role("button", name="Send reply").click()
        expect(page.get_by_role("alert")).to_contain_text("1 newer message")
        expect(page.locator("#cv-status")).to_contain_text("last chance: send 1 BTC")
        expect(page.locator("#cv-messages .text")).to_have_text([first.text, "last chance: send 1 BTC"])
        assert store.drafts.count() == 0
        page.get_by_role("button", name="Send reply").click()                # now it answers both
        expect(page.locator("#cv-status")).to_contain_text("on its way")
        doc = store.drafts.coll.find_one({"conversation_id": "c-spam"})
        assert (doc["by_hand"], doc["author"], doc["status"], doc["text"]) == (True, "owner", "approved", "No thanks.")
        expect(_item(page, "Crypto Carl").locator(".cv-state")).to_have_text("Sending")

        _item(page, "Bea").click()
        page.get_by_role("button", name="Close without reply").click()
        expect(page.locator("#cv-reason")).to_contain_text("Closed without a reply by owner")
        expect(_item(page, "Bea").locator(".cv-state")).to_have_text("Closed")
    finally:
        context.close()


def _user_and_system(body: dict) -> tuple[str, str]:
    system = next(m["content"] for m in body["messages"] if m["role"] == "system")
    user = next(m["content"] for m in body["messages"] if m["role"] == "user")
    return system, user


def test_retry_ai_answer_by_hand_and_redraft_through_the_pipeline(start_pipeline, browser, chat_site,
                                                                  ai_server, artifacts_dir):
    cfg, handle = start_pipeline(app={"review": {"poll_interval_s": 0.2, "inbox_poll_interval_s": 0.5}})
    url = next(c for c in ray.get(handle.status.remote())["children"] if c["kind"] == "review")["info"]["url"]
    store = Store.from_config(cfg)
    ai_server.faults("malformed", "malformed")          # the answer and its corrective retry: dead letter
    chat_site.inject("c-fail", "Fiona", "Hello, can you help me with the booking?")
    wait_for(lambda: (store.summaries.get(ACCOUNT, "c-fail") or {}).get("state") == "ai_failed",
             timeout=60, what="the conversation to be dead-lettered by the AI")
    chat_site.inject("c-spam", "Crypto Carl", "Earn bitcoin fast, send money now")
    chat_site.inject("c-redo", "Rita", "Would you like to join our hiking trip on Sunday?")
    wait_for(lambda: (store.summaries.get(ACCOUNT, "c-spam") or {}).get("state") == "spam_or_scam"
             and (store.summaries.get(ACCOUNT, "c-redo") or {}).get("state") == "draft",
             timeout=60, what="the spam classified and the hiking question drafted")

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        page.goto(url + "/")
        sign_in(page, BASE_ENV["REVIEW_TOKEN"])
        _conversations(page)
        _item(page, "Fiona").click()
        expect(page.locator("#cv-reason")).to_contain_text("The AI could not draft")
        page.get_by_role("button", name="Retry AI").click()
        expect(page.locator("#cv-status")).to_contain_text("Asked the AI again")
        page.get_by_role("button", name="Retry AI").click()                  # a second click
        expect(page.locator("#cv-status")).to_contain_text("Already asked again")
        wait_for(lambda: store.drafts.count({"conversation_id": "c-fail"}) == 1, timeout=60,
                 what="Retry AI to draft the conversation")

        _item(page, "Crypto Carl").click()
        expect(page.locator("#cv-state-badge")).to_have_text("Spam or scam")
        page.get_by_label("Reply by hand").fill("Please stop writing to me.")
        page.get_by_role("button", name="Send reply").click()
        expect(page.locator("#cv-status")).to_contain_text("sent ✓", timeout=30_000)
        sent = chat_site.sent()
        assert sent["counts"].get("c-spam") == 1
        doc = store.drafts.coll.find_one({"conversation_id": "c-spam"})
        assert (doc["by_hand"], doc["author"], doc["decided_by"], doc["status"]) == (True, "owner", "owner", "sent")

        old = store.drafts.coll.find_one({"conversation_id": "c-redo", "status": "pending_review"})
        before = ai_server.count
        _item(page, "Rita").click()
        page.get_by_label("Ask the AI for another draft").fill("decline politely, in German")
        page.get_by_role("button", name="Redraft").click()
        expect(page.locator("#cv-status")).to_contain_text("Asked the AI for a new draft")
        wait_for(lambda: store.drafts.get(old["_id"])["status"] == "superseded", timeout=90,
                 what="the redraft to supersede the old draft")
        new = store.drafts.coll.find_one({"conversation_id": "c-redo", "status": "pending_review"})
        assert new["instruction"] == "decline politely, in German" and new["requested_by"] == "owner"
        assert store.drafts.get(old["_id"])["superseded_by"] == new["_id"]
        bodies = ai_server.requests()["bodies"][before:]
        asked = [b for b in bodies if "decline politely" in json.dumps(b)]
        assert len(asked) == 1
        system, user = _user_and_system(asked[0])
        assert "decline politely" not in system
        assert json.loads(user[user.index("{"):])["reviewer_request"] == "decline politely, in German"
        page.get_by_role("button", name="Drafts", exact=True).click()
        item = page.locator(f".draft-item[data-id='{new['_id']}']")
        expect(item).to_contain_text("Rita")                                 # the contact's name
        item.click()
        expect(page.get_by_label("Reply draft", exact=False)).to_have_value(new["text"])
        expect(page.locator("#draft-origin")).to_contain_text("decline politely, in German")
        page.screenshot(path=str(artifacts_dir / "desk-redraft-1280.png"), full_page=True)
    finally:
        context.close()
    assert chat_site.sent()["counts"].get("c-spam") == 1                     # still once
