"""Helpers shared by the review desk tests: drafts and messages put in the store the way the AI
worker and the browser actor put them there, and driving the page in headless Chromium."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from actors.review import make_app
from actors.review.quiet import QuietAppRunner
from contracts import telemetry
from contracts.events import ChatMessage
from contracts.ids import draft_id as make_draft_id
from contracts.ids import message_id
from standins.serve import ServedApp

ACCOUNT = "meetme-main"


def add_conversation(store, conversation_id: str, texts: list[str], *, account_id: str = ACCOUNT,
                     classification: str = "needs_reply", draft: str = "Thanks, sounds good!",
                     ) -> dict[str, Any]:
    """Store the conversation's messages and a pending draft for it; returns the draft doc."""
    msgs = [ChatMessage(message_id=message_id(account_id, conversation_id, f"s{i}", "alex", f"t{i}", t),
                        account_id=account_id, site="meetme", conversation_id=conversation_id,
                        site_message_id=f"s{i}", sender="alex", text=t, sent_at=f"2026-11-25T10:0{i % 10}:00Z")
            for i, t in enumerate(texts)]
    store.messages.insert(msgs)
    did = make_draft_id(account_id, conversation_id, msgs[-1].message_id if msgs else "none")
    store.drafts.insert({"_id": did, "account_id": account_id, "conversation_id": conversation_id,
                         "message_ids": [m.message_id for m in msgs], "classification": classification,
                         "text": draft})
    return store.drafts.get(did)


def serve(config, store) -> ServedApp:
    return ServedApp(make_app(config, store), runner_class=QuietAppRunner).start()  # as the desk runs


def desk_fixtures(review: dict | None = None):
    """The `config` and `desk` fixtures of a review test module: a config (with `review`
    overrides) whose process traces approvals, and the desk served on it over the test's store.
    Use as `config, desk = desk_fixtures({...})` at module level."""

    @pytest.fixture
    def config(make_config):
        cfg = make_config(app={"review": review} if review else None)
        telemetry.setup_from(cfg, "review-test")     # so approvals carry a trace context
        return cfg

    @pytest.fixture
    def desk(config, store):
        served = serve(config, store)
        yield served
        served.stop()

    return config, desk


def send_as_browser(store, draft_id: str) -> None:
    """What the browser actor does once it has sent an approved reply."""
    assert store.drafts.transition(draft_id, ("approved", "edited"), "sending") is not None
    assert store.drafts.transition(draft_id, "sending", "sent", site_message_id="m-1") is not None


CHROMIUM = "/usr/lib/chromium/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextmanager
def chromium() -> Iterator[Browser]:
    """The Debian Chromium, headless (one per test module: launching costs about a second)."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def sign_in(page: Page, token: str) -> None:
    page.get_by_label("Review token").fill(token)
    page.get_by_role("button", name="Connect").click()


class HeldRequests:
    """Requests to `pattern` held in the browser until `release()`, so a test can look at the page
    while the request is in flight (the spinner), then let it go through to the real server."""

    def __init__(self, page: Page, pattern: str):
        self.page = page
        self.pattern = pattern
        self.routes: list[Route] = []
        page.route(pattern, self._hold)

    def _hold(self, route: Route) -> None:
        self.routes.append(route)

    def wait(self, count: int = 1, timeout_ms: int = 5000) -> None:
        """Until `count` requests are held; page.wait_for_timeout lets Playwright dispatch them."""
        waited = 0
        while len(self.routes) < count and waited < timeout_ms:
            self.page.wait_for_timeout(10)
            waited += 10
        assert len(self.routes) == count, f"{len(self.routes)} requests to {self.pattern} held, wanted {count}"

    def release(self) -> None:
        """Send the held requests on and stop holding new ones."""
        for route in self.routes:
            route.continue_()
        self.page.unroute(self.pattern, self._hold)


def wait_in_inbox(page: Page, conversation_id: str, timeout_s: float = 60.0):
    """The inbox item of `conversation_id`'s draft, once the pipeline has made it: the inbox
    re-reads itself (app.review.inbox_poll_interval_s), so nobody presses Refresh."""
    item = page.locator(".draft-item").filter(has_text=conversation_id)
    expect(item).to_have_count(1, timeout=timeout_s * 1000)
    return item


def add_sent_reply(store, draft: dict[str, Any], site_message_id: str = "m-1") -> None:
    """What the browser session's next pass stores after sending: its own outgoing message."""
    account_id, conversation_id = draft["account_id"], draft["conversation_id"]
    store.messages.insert([ChatMessage(
        message_id=message_id(account_id, conversation_id, site_message_id, "me", "t-out", draft["text"]),
        account_id=account_id, site="meetme", conversation_id=conversation_id,
        site_message_id=site_message_id, sender="me", text=draft["text"],
        sent_at="2026-11-25T10:30:00Z", direction="out")])
