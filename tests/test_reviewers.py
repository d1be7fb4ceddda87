"""Several reviewers: named tokens (REVIEW_TOKENS / REVIEW_TOKENS_FILE; REVIEW_TOKEN alone is
`owner`), optionally restricted to accounts. Each decision records who took it: in MongoDB, in its
event and in the sheet; the desk shows who is signed in and who decided what."""
from __future__ import annotations

import json

import pytest
import ray
import requests
import yaml
from playwright.sync_api import expect

from actors.sheets.writer import SheetsWriter
from contracts.settings import ConfigError
from tests.review_helpers import add_conversation, chromium, serve, sign_in
from tests.test_hardening import _raw_get

ALICE, BOB, CAROL = "alice-token-0123456789abcdef", "bob-token-0123456789abcdef", "carol-token-0123456789ab"
REVIEWERS = {"reviewers": {"alice": {"accounts": ["a1"]}, "bob": {"accounts": ["a2"]}}}
ACCOUNTS = [{"id": "a1", "site": "classic"}, {"id": "a2", "site": "classic"}]


@pytest.fixture
def team(make_config, tmp_path, store):
    """alice reviews a1 (from REVIEW_TOKENS), bob a2 (from a secrets file), carol everything."""
    secrets = tmp_path / "reviewers.yaml"
    secrets.write_text(yaml.safe_dump({"bob": BOB, "carol": {"token": CAROL}}))
    cfg = make_config(app={"accounts": ACCOUNTS, "review": REVIEWERS}, REVIEW_TOKEN=None,
                      REVIEW_TOKENS=f"alice={ALICE}", REVIEW_TOKENS_FILE=str(secrets))
    desk = serve(cfg, store)
    drafts = {acct: [add_conversation(store, f"{acct}-c{i}", [f"hello {acct} {i}"], account_id=acct)
                     for i in range(2)] for acct in ("a1", "a2")}
    yield cfg, desk, drafts
    desk.stop()


def _api(desk, method, path, token, body=None):
    return requests.request(method, desk.url + path, json=body, timeout=10,
                            headers={"Authorization": f"Bearer {token}"})


def test_each_reviewer_sees_only_their_accounts(team):
    cfg, desk, drafts = team
    assert set(cfg.reviewers) == {"alice", "bob", "carol"}
    for token, name, accounts in ((ALICE, "alice", ["a1"]), (BOB, "bob", ["a2"]), (CAROL, "carol", ["a1", "a2"])):
        meta = _api(desk, "GET", "/api/meta", token).json()
        assert meta["reviewer"] == name and meta["accounts"] == accounts
        listed = _api(desk, "GET", "/api/drafts", token).json()["drafts"]
        assert sorted(d["id"] for d in listed) == sorted(d["_id"] for a in accounts for d in drafts[a])
    assert _api(desk, "GET", "/api/drafts?account=a2", ALICE).status_code == 403
    theirs = drafts["a2"][0]
    assert _api(desk, "GET", f"/api/drafts/{theirs['_id']}", ALICE).status_code == 404
    assert _api(desk, "GET", f"/api/conversations/a2/{theirs['conversation_id']}", ALICE).status_code == 404
    assert _api(desk, "POST", f"/api/drafts/{theirs['_id']}/approve", ALICE, {}).status_code == 404
    assert _api(desk, "POST", f"/api/drafts/{theirs['_id']}/reject", ALICE, {}).status_code == 404
    assert _api(desk, "GET", f"/api/drafts/{theirs['_id']}", BOB).status_code == 200


def test_wrong_and_non_ascii_tokens_get_401(team):
    _, desk, _ = team
    assert _api(desk, "GET", "/api/meta", ALICE[:-1] + "X").status_code == 401
    assert _api(desk, "GET", "/api/meta", "review-token-abcdef-123456").status_code == 401  # REVIEW_TOKEN unset
    assert _raw_get(desk.url, "/api/meta", "Bearer tök-alice-token-0123456".encode()) == 401
    assert _raw_get(desk.url, "/api/meta", b"Bearer " + ALICE.encode()[:-1] + b"\xe9") == 401


def test_decisions_record_their_reviewer_in_store_events_and_sheet(team, store, sheets, ray_session, make_config):
    cfg, desk, drafts = team
    a1, a2 = drafts["a1"][0], drafts["a2"][0]
    assert _api(desk, "POST", f"/api/drafts/{a1['_id']}/edit", ALICE, {"text": "See you!"}).json()["draft"]["decided_by"] == "alice"
    assert _api(desk, "POST", f"/api/drafts/{a2['_id']}/reject", BOB, {"reason": "spam"}).json()["draft"]["decided_by"] == "bob"
    late = _api(desk, "POST", f"/api/drafts/{a1['_id']}/approve", CAROL, {})
    assert late.status_code == 409 and "by alice" in late.json()["error"]
    assert store.drafts.get(a1["_id"])["decided_by"] == "alice"
    assert {(d["draft_id"], d["by"]) for d in store.drafts.decisions.find({})} == {(a1["_id"], "alice"), (a2["_id"], "bob")}
    events = [json.loads(r["body"]) for r in store.db["outbox"].find(
        {"routing_key": {"$in": ["draft.approved", "draft.rejected"]}})]
    assert {(e["draft_id"], e.get("approved_by") or e.get("rejected_by")) for e in events} == \
        {(a1["_id"], "alice"), (a2["_id"], "bob")}
    # the sheets writer logs those very events: the sender column holds each reviewer's name
    writer = SheetsWriter.remote(cfg.model_copy(update={"settings": cfg.settings.model_copy(
        update={"sheets_api_url": sheets.url})}))
    try:
        ray.get(writer.start.remote())
        ray.get(writer.add.remote(events))     # (start() may have re-derived them already)
        ray.get(writer.flush.remote())
    finally:
        ray.kill(writer)
    header, *rows = sheets.rows("replydesk")
    by_id = {r[0]: dict(zip(header, r)) for r in rows}
    assert by_id[f"draft.approved:{a1['_id']}"]["sender"] == "alice"
    assert by_id[f"draft.rejected:{a2['_id']}"]["sender"] == "bob"


def test_the_desk_shows_who_is_signed_in_and_who_decided(team, store):
    _, desk, drafts = team
    a2 = drafts["a2"][1]
    with chromium() as browser:
        page = browser.new_page()
        page.goto(desk.url + "/")
        sign_in(page, BOB)
        expect(page.locator("#reviewer")).to_have_text("bob")
        expect(page.locator(".draft-item")).to_have_count(2)
        page.locator(".draft-item").filter(has_text=a2["conversation_id"]).click()
        page.locator("#approve").click()
        expect(page.locator("#conv-body")).to_contain_text("by bob")
        page.locator("#f-status").select_option("approved")
        expect(page.locator(".draft-item").filter(has_text=a2["conversation_id"])).to_contain_text("by bob")
    assert store.drafts.get(a2["_id"])["decided_by"] == "bob"


def test_review_token_alone_is_owner_and_every_token_is_a_secret(make_config):
    cfg = make_config()
    assert list(cfg.reviewers) == ["owner"] and cfg.reviewers["owner"].accounts is None
    both = make_config(REVIEW_TOKENS=f"alice={ALICE}\nbob={BOB}")
    assert list(both.reviewers) == ["owner", "alice", "bob"]
    assert {ALICE, BOB, "review-token-abcdef-123456"} <= set(both.secret_values())


@pytest.mark.parametrize("env,app,expect", [
    ({"REVIEW_TOKENS": "alice"}, None, "REVIEW_TOKENS: entry 1 is not name=token"),
    ({"REVIEW_TOKENS": "alice=short"}, None, "REVIEW_TOKENS: the token of 'alice': too short"),
    ({"REVIEW_TOKENS": f"alice={ALICE},bob={ALICE}"}, None, "REVIEW_TOKENS: 'bob' and 'alice' share one token"),
    ({"REVIEW_TOKENS": f"owner={ALICE}"}, None, "REVIEW_TOKENS: reviewer 'owner' is named twice"),
    ({"REVIEW_TOKENS": f"al ice={ALICE}"}, None, "REVIEW_TOKENS: reviewer name 'al ice'"),
    ({"REVIEW_TOKENS": f"alice={ALICE}"}, {"review": {"reviewers": {"alice": {"accounts": ["nope"]}}}},
     "review.reviewers.alice.accounts: unknown account nope"),
    ({}, {"review": {"reviewers": {"dave": {}}}}, "review.reviewers: no token for dave"),
    ({"REVIEW_TOKEN": None}, None, "REVIEW_TOKEN: required when the review desk is enabled"),
    ({"REVIEW_TOKENS_FILE": "/nonexistent/reviewers.yaml"}, None, "REVIEW_TOKENS_FILE: /nonexistent/reviewers.yaml cannot be read"),
])
def test_bad_reviewer_settings_fail_at_start_naming_the_setting(make_config, env, app, expect):
    with pytest.raises(ConfigError) as err:
        make_config(app=app, **env)
    assert expect in str(err.value) and "\n" not in str(err.value)
    assert ALICE not in str(err.value)
