"""The review desk in real headless Chromium against the whole pipeline under the supervisor: a
message arrives on the stand-in chat site, the real browser actor extracts it, the real AI worker
drafts a reply, a person edits and approves it on the page, and the browser actor posts it once."""
from __future__ import annotations

import pytest
import ray
from playwright.sync_api import Page, expect

from actors.store import Store
from tests.fixtures.infra import BASE_ENV
from tests.helpers import wait_for
from tests.review_helpers import HeldRequests, chromium, sign_in, wait_in_inbox

EDITED = "Saturday works for me!\nHow about 3pm at Café Luna? 😊"


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture
def desk(start_pipeline, browser):
    """(config, supervisor, page on the desk) with the whole pipeline running."""
    cfg, handle = start_pipeline(app={"review": {"poll_interval_s": 0.2,
                                                    "inbox_poll_interval_s": 0.5}})
    children = ray.get(handle.status.remote())["children"]
    url = next(c for c in children if c["kind"] == "review")["info"]["url"]
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    page.goto(url + "/")
    yield cfg, handle, page
    context.close()


def _open_new_draft(page: Page, conversation_id: str) -> None:
    """Sign in and open the draft the pipeline makes for `conversation_id`."""
    sign_in(page, BASE_ENV["REVIEW_TOKEN"])
    expect(page.locator("#reviewer")).to_have_text("owner")
    wait_in_inbox(page, conversation_id).click()
    expect(page.locator("#conv-id")).to_have_text(conversation_id)


def test_edit_approve_is_sent_once_through_the_pipeline(desk, chat_site, artifacts_dir):
    cfg, _, page = desk
    store = Store.from_config(cfg)
    incoming = "Hi! Are you free for coffee on Saturday?"
    chat_site.inject("c-alice", "Alice", incoming)

    _open_new_draft(page, "c-alice")
    expect(page.locator("#messages .text")).to_have_text([incoming])   # the extracted message
    draft = store.drafts.coll.find_one({"conversation_id": "c-alice"})
    assert draft["status"] == "pending_review" and draft["text"].strip()
    reply = page.get_by_label("Reply draft", exact=False)
    expect(reply).to_have_value(draft["text"])                          # the AI worker's draft

    reply.fill(EDITED)
    held = HeldRequests(page, "**/api/drafts/*/edit")                   # see the spinner first
    page.get_by_role("button", name="Save & Approve").click()
    conversation = page.locator("#conversation")
    expect(conversation).to_have_attribute("aria-busy", "true")
    expect(conversation.locator(".spinner")).to_be_visible()
    expect(page.get_by_role("button", name="Save & Approve")).to_be_disabled()
    held.wait(1)
    assert chat_site.sent()["counts"] == {}                             # nothing sent before approval
    held.release()

    status = page.locator("#draft-status")
    expect(status).to_have_attribute("data-status", "sent", timeout=30_000)
    expect(status).to_contain_text("Sent")
    expect(conversation).to_have_attribute("aria-busy", "false")
    expect(page.locator("#inbox-empty")).to_be_visible()
    page.screenshot(path=str(artifacts_dir / "review-desk-e2e-sent.png"), full_page=True)

    outgoing = [m for m in chat_site.messages("c-alice") if m["direction"] == "out"]
    assert [m["text"] for m in outgoing] == [EDITED]
    doc = store.drafts.get(draft["_id"])
    assert (doc["status"], doc["text"], doc["original_text"]) == ("sent", EDITED, draft["text"])
    assert doc["site_message_id"] == outgoing[0]["id"]
    # the browser actor's next poll extracts its own reply: by then any second send would be done
    wait_for(lambda: store.messages.coll.find_one({"site_message_id": outgoing[0]["id"]}),
             timeout=20, what="the sent reply extracted by the next poll")
    sent = chat_site.sent()
    assert sent["counts"] == {"c-alice": 1}
    assert [m["text"] for m in sent["messages"]] == [EDITED]


def test_conflict_from_another_reviewer_is_shown_readably(desk, chat_site, browser):
    cfg, _, page = desk
    store = Store.from_config(cfg)
    chat_site.inject("c-bob", "Bob", "hey, still on for tonight?")
    _open_new_draft(page, "c-bob")
    approve = page.get_by_role("button", name="Approve", exact=True)
    expect(approve).to_be_enabled()

    other = browser.new_context().new_page()                            # a second reviewer
    other.goto(page.url)
    _open_new_draft(other, "c-bob")
    other.get_by_label("Reason (optional)").fill("not tonight")
    other.get_by_role("button", name="Reject").click()
    expect(other.locator("#draft-status")).to_contain_text("Rejected by owner: not tonight")
    other.context.close()

    approve.click()
    error = page.get_by_role("alert")
    expect(error).to_contain_text("Approving the draft failed")
    expect(error).to_contain_text("it was already rejected by owner")
    expect(error).to_contain_text("409")
    expect(page.locator("#draft-status")).to_contain_text("Rejected by owner: not tonight")
    expect(approve).to_be_disabled()
    draft = store.drafts.coll.find_one({"conversation_id": "c-bob"})
    assert draft["status"] == "rejected"
    assert store.outbox.coll.count_documents({"routing_key": "draft.approved"}) == 0
    assert chat_site.sent()["counts"] == {}


def test_account_health_panel_shows_needs_login_and_retry_resumes(start_pipeline, browser, chat_site,
                                                                 artifacts_dir):
    """A captcha at login: the desk's Accounts panel says `needs login` (0 restarts); the owner
    imports a login state, presses Retry now, and the panel shows the session running again."""
    from supervisor import login
    from tests.test_supervisor import _storage_state_for
    chat_site.faults(challenge="captcha")
    cfg, handle = start_pipeline(app={"review": {"poll_interval_s": 0.2, "inbox_poll_interval_s": 0.5}})
    children = ray.get(handle.status.remote())["children"]
    url = next(c for c in children if c["kind"] == "review")["info"]["url"]
    wait_for(lambda: next(c for c in ray.get(handle.status.remote())["children"]
                          if c["kind"] == "browser")["status"] == "needs_login", timeout=30,
             what="the account to need a person")
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    try:
        page.goto(url + "/")
        sign_in(page, BASE_ENV["REVIEW_TOKEN"])
        row = page.locator("#accounts-rows tr[data-account='meetme-main']")
        expect(row.locator(".badge")).to_have_text("needs login")
        expect(row.locator(".error-cell")).to_contain_text("captcha")   # why, and what to run
        expect(row.locator(".error-cell")).to_contain_text("./run login meetme-main")
        expect(row.locator("td").nth(2)).to_have_text("never")           # the site was never read
        expect(row.get_by_role("button", name="Retry now: meetme-main")).to_be_visible()
        page.screenshot(path=str(artifacts_dir / "desk-accounts-needs-login.png"), full_page=True)
        assert (artifacts_dir / "desk-accounts-needs-login.png").stat().st_size > 0
        chat_site.inject("c-1", "Ann", "Hello?")
        login.import_state(cfg, "meetme-main", _storage_state_for(chat_site, artifacts_dir))
        row.get_by_role("button", name="Retry now: meetme-main").click()
        expect(page.locator("#accounts-note")).to_contain_text("Retry asked for meetme-main")

        def running() -> bool:
            page.locator("#accounts-refresh").click()
            return row.locator(".badge").inner_text() == "running"
        wait_for(running, timeout=30, what="the panel to show the session running")
        wait_for(lambda: Store.from_config(cfg).drafts.count() == 1, timeout=60, what="the waiting message drafted")
        page.screenshot(path=str(artifacts_dir / "desk-accounts-running.png"), full_page=True)
    finally:
        context.close()
