"""The review desk API, served for real (aiohttp on a socket) over the real SecantusDB store."""
from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
import pytest
import requests
import yaml

from actors.review import make_app
from actors.review.api import routes
from contracts.events import parse_event
from contracts.settings import ConfigError
from tests.review_helpers import (
    ACCOUNT,
    add_conversation,
    add_sent_reply,
    desk_fixtures,
    send_as_browser,
    serve,
)

HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=1">'


config, desk = desk_fixtures()


@pytest.fixture
def auth(config) -> dict[str, str]:
    return {"Authorization": f"Bearer {config.settings.review_token.get_secret_value()}"}


def _get(desk, path, auth, **kw):
    return requests.get(desk.url + path, headers={**auth, **kw.pop("headers", {})}, timeout=10, **kw)


def _post(desk, path, auth, body=None, **kw):
    return requests.post(desk.url + path, json=body, headers={**auth, **kw.pop("headers", {})},
                         timeout=10, **kw)


def test_list_filters_and_cursor_paging(desk, store, auth):
    made = [add_conversation(store, f"c{i}", [f"hello {i}"], account_id=("a1" if i % 2 else "a2"),
                             classification=("abusive" if i % 3 == 0 else "needs_reply"))
            for i in range(7)]
    store.drafts.transition(made[0]["_id"], "pending_review", "rejected")
    tie = made[2]["created_at"]              # drafts created in the same millisecond
    store.drafts.coll.update_many({"_id": {"$in": [d["_id"] for d in made[2:5]]}},
                                  {"$set": {"created_at": tie}})
    made = [store.drafts.get(d["_id"]) for d in made]
    pending = sorted(made[1:], key=lambda d: (d["created_at"], d["_id"]), reverse=True)

    r = _get(desk, "/api/drafts", auth)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert [d["id"] for d in body["drafts"]] == [d["_id"] for d in pending]
    assert body["next_cursor"] is None
    assert body["drafts"][0]["status"] == "pending_review"

    seen, cursor = [], None
    while True:
        page = _get(desk, "/api/drafts", auth, params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen += [d["id"] for d in page["drafts"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [d["_id"] for d in pending]

    a1 = _get(desk, "/api/drafts", auth, params={"account": "a1"}).json()["drafts"]
    assert {d["account_id"] for d in a1} == {"a1"} and len(a1) == 3
    abusive = _get(desk, "/api/drafts", auth, params={"classification": "abusive"}).json()["drafts"]
    assert [d["id"] for d in abusive] == [d["_id"] for d in pending if d["classification"] == "abusive"]
    assert len(abusive) == 2
    rejected = _get(desk, "/api/drafts", auth, params={"status": "rejected"}).json()["drafts"]
    assert [d["id"] for d in rejected] == [made[0]["_id"]]

    for params, word in (({"limit": "0"}, "limit"), ({"limit": "x"}, "limit"),
                         ({"classification": "nice"}, "classification"), ({"cursor": "!!"}, "cursor"),
                         ({"status": "lost"}, "status")):
        bad = _get(desk, "/api/drafts", auth, params=params)
        assert bad.status_code == 400 and word in bad.json()["error"], params


def test_conversation_shows_messages_and_latest_draft(desk, store, auth):
    d = add_conversation(store, "conv/with slash", ["hi there", "are you free?"], draft="Yes, I am.")
    r = _get(desk, f"/api/conversations/{ACCOUNT}/conv%2Fwith%20slash", auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [m["text"] for m in body["messages"]] == ["hi there", "are you free?"]
    assert body["draft"]["id"] == d["_id"] and body["draft"]["text"] == "Yes, I am."
    assert body["draft"]["status"] == "pending_review"
    assert [m["site_message_id"] for m in body["messages"]] == ["s0", "s1"]
    assert body["draft"]["site_message_id"] is None
    send_as_browser(store, store.drafts.transition(d["_id"], "pending_review", "approved")["_id"])
    add_sent_reply(store, store.drafts.get(d["_id"]))           # the page matches the two ids
    body = _get(desk, f"/api/conversations/{ACCOUNT}/conv%2Fwith%20slash", auth).json()
    assert body["draft"]["status"] == "sent" and body["draft"]["site_message_id"] == "m-1"
    assert (body["messages"][-1]["direction"], body["messages"][-1]["site_message_id"]) == ("out", "m-1")
    sent = _get(desk, "/api/drafts", auth, params={"status": "sent"}).json()["drafts"]
    assert [x["id"] for x in sent] == [d["_id"]]
    assert _get(desk, "/api/drafts", auth).json()["drafts"] == []
    meta = _get(desk, "/api/meta", auth).json()
    assert meta["inbox_poll_interval_ms"] == 5000 and "sent" in meta["statuses"]
    missing = _get(desk, f"/api/conversations/{ACCOUNT}/nope", auth)
    assert missing.status_code == 404 and missing.json() == {"error": "no such conversation"}


def test_approve_records_decision_and_queues_exactly_one_event(desk, store, auth, config):
    d = add_conversation(store, "c1", ["hello?"], draft="Hello back")
    r = _post(desk, f"/api/drafts/{d['_id']}/approve", auth)
    assert r.status_code == 200, r.text
    draft = r.json()["draft"]
    assert draft["status"] == "approved" and draft["decided_by"] == config.app.review.token_name
    assert "approved" in draft["times"]

    again = _post(desk, f"/api/drafts/{d['_id']}/approve", auth)
    assert again.status_code == 409
    assert "already approved by owner" in again.json()["error"]

    decisions = list(store.drafts.decisions.find({"draft_id": d["_id"]}))
    assert [(x["decision"], x["by"]) for x in decisions] == [("approved", "owner")]
    assert decisions[0]["at"] is not None
    rows = list(store.outbox.coll.find({"routing_key": "draft.approved"}))
    assert len(rows) == 1
    event = parse_event(rows[0]["body"])
    assert (event.draft_id, event.text, event.approved_by, event.account_id) == (d["_id"], "Hello back", "owner", ACCOUNT)
    assert event.idempotency_key == f"send:{d['_id']}"
    assert "traceparent" in rows[0]["headers"]

    status = _get(desk, f"/api/drafts/{d['_id']}", auth).json()["draft"]
    assert status["status"] == "approved"
    assert _get(desk, "/api/drafts/unknown-draft", auth).status_code == 404


def test_edit_and_approve_sends_the_new_text(desk, store, auth):
    d = add_conversation(store, "c1", ["hello?"], draft="AI text")
    for body, word in (({"text": "   "}, "text"), ({}, "text"), ({"text": 5}, "text"),
                       ({"text": "x" * 4001}, "too long")):
        bad = _post(desk, f"/api/drafts/{d['_id']}/edit", auth, body)
        assert bad.status_code == 400 and word in bad.json()["error"], body
    r = _post(desk, f"/api/drafts/{d['_id']}/edit", auth, {"text": "My own words"})
    assert r.status_code == 200, r.text
    draft = r.json()["draft"]
    assert (draft["status"], draft["text"], draft["original_text"]) == ("edited", "My own words", "AI text")
    rows = list(store.outbox.coll.find({"routing_key": "draft.approved"}))
    assert len(rows) == 1 and parse_event(rows[0]["body"]).text == "My own words"
    assert store.drafts.decisions.find_one({"draft_id": d["_id"]})["decision"] == "edited"


def test_reject_queues_no_send_only_the_rejection(desk, store, auth):
    d = add_conversation(store, "c1", ["buy crypto now"], classification="spam_or_scam")
    r = _post(desk, f"/api/drafts/{d['_id']}/reject", auth, {"reason": "  spam  "})
    assert r.status_code == 200
    assert (r.json()["draft"]["status"], r.json()["draft"]["reject_reason"]) == ("rejected", "spam")
    late = _post(desk, f"/api/drafts/{d['_id']}/approve", auth)
    assert late.status_code == 409 and "rejected" in late.json()["error"]
    queued = [json.loads(row["body"]) for row in store.outbox.coll.find({})]
    assert [(e["type"], e["rejected_by"], e["reason"]) for e in queued] == \
        [("draft.rejected", "owner", "spam")]                  # for the sheet; nothing to send
    assert store.drafts.decisions.find_one({"draft_id": d["_id"]})["reason"] == "spam"


async def test_concurrent_approvals_one_wins(desk, store, auth):
    drafts = [add_conversation(store, f"c{i}", ["hello?"], draft="drafted") for i in range(3)]

    async def post(session, path, body=None):
        async with session.post(desk.url + path, json=body, headers=auth) as r:
            return r.status, await r.json()

    async with aiohttp.ClientSession() as session:
        for d in drafts:
            base = f"/api/drafts/{d['_id']}"
            results = await asyncio.gather(post(session, base + "/approve"),
                                           post(session, base + "/edit", {"text": "edited"}),
                                           post(session, base + "/approve"),
                                           post(session, base + "/reject"))
            statuses = sorted(s for s, _ in results)
            assert statuses == [200, 409, 409, 409], results
            winner = next(b["draft"] for s, b in results if s == 200)
            assert all("no longer pending review" in b["error"] for s, b in results if s == 409)
            rows = list(store.outbox.coll.find({"_id": f"draft.approved:{d['_id']}"}))
            if winner["status"] == "rejected":
                assert rows == []
            else:
                assert len(rows) == 1 and parse_event(rows[0]["body"]).text == winner["text"]
            assert store.drafts.decisions.count_documents({"draft_id": d["_id"]}) == 1


def test_token_is_required(desk, auth, caplog):
    caplog.set_level(logging.INFO)
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"},
                    {"Authorization": "Basic " + auth["Authorization"].split()[1]}):
        r = requests.get(desk.url + "/api/drafts", headers=headers, timeout=10)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
        assert set(r.json()) == {"error"}
        assert requests.post(desk.url + "/api/drafts/x/approve", headers=headers, timeout=10).status_code == 401
    assert requests.get(desk.url + "/", timeout=10).status_code == 200          # the page holds no data
    assert requests.get(desk.url + "/api/openapi.yaml", timeout=10).status_code == 200
    assert _get(desk, "/api/drafts", auth).status_code == 200
    assert "wrong review token" in caplog.text                       # refused attempts are logged
    secret = auth["Authorization"].split()[1]
    assert secret not in caplog.text and "wrong-token-wrong-token" not in caplog.text


def test_origins(make_config, store, auth):
    cfg = make_config(app={"review": {"allowed_origins": ["https://desk.example.org"]}})
    desk = serve(cfg, store)
    try:
        evil = _get(desk, "/api/drafts", auth, headers={"Origin": "https://evil.example.com"})
        assert evil.status_code == 403 and "origin" in evil.json()["error"]
        assert "Access-Control-Allow-Origin" not in evil.headers
        pre = requests.options(desk.url + "/api/drafts/x/approve", timeout=10, headers={
            "Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"})
        assert pre.status_code == 403 and "Access-Control-Allow-Origin" not in pre.headers

        ok = _get(desk, "/api/drafts", auth, headers={"Origin": "https://desk.example.org"})
        assert ok.status_code == 200 and ok.headers["Access-Control-Allow-Origin"] == "https://desk.example.org"
        pre = requests.options(desk.url + "/api/drafts/x/approve", timeout=10, headers={
            "Origin": "https://desk.example.org", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert pre.status_code == 204 and "Authorization" in pre.headers["Access-Control-Allow-Headers"]
        same = _get(desk, "/api/drafts", auth, headers={"Origin": desk.url})
        assert same.status_code == 200 and "Access-Control-Allow-Origin" not in same.headers
    finally:
        desk.stop()


def test_oversized_body_is_413(make_config, store, auth):
    cfg = make_config(app={"review": {"max_body_bytes": 2048}})
    d = add_conversation(store, "c1", ["hi"])
    desk = serve(cfg, store)
    try:
        path = f"/api/drafts/{d['_id']}/edit"
        r = _post(desk, path, auth, {"text": "x" * 3000})
        assert r.status_code == 413 and "too large" in r.json()["error"]

        def chunks():                      # no Content-Length: capped while reading
            yield b'{"text": "'
            for _ in range(10):
                yield b"y" * 500
            yield b'"}'
        r = requests.post(desk.url + path, data=chunks(), timeout=10,
                          headers={**auth, "Content-Type": "application/json"})
        assert r.status_code == 413 and "too large" in r.json()["error"]
        assert store.drafts.get(d["_id"])["status"] == "pending_review"
    finally:
        desk.stop()


def test_hostile_text_is_returned_as_data(desk, store, auth):
    d = add_conversation(store, "c1", [HOSTILE], draft=HOSTILE + " & \"quotes\"")
    r = _get(desk, f"/api/conversations/{ACCOUNT}/c1", auth)
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    body = r.json()
    assert body["messages"][0]["text"] == HOSTILE
    assert body["draft"]["text"] == HOSTILE + " & \"quotes\""
    listed = _get(desk, "/api/drafts", auth).json()["drafts"]
    assert listed[0]["id"] == d["_id"] and listed[0]["text"].startswith(HOSTILE)
    page = requests.get(desk.url + "/", timeout=10)
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "<script>" not in page.text.split("</head>")[1]         # no inline script in the page
    js = requests.get(desk.url + "/static/app.js", timeout=10).text
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js and "document.write" not in js


def test_rate_limit_answers_429_with_retry_after(make_config, store, auth):
    cfg = make_config(app={"review": {"requests_per_minute": 5}})
    desk = serve(cfg, store)
    try:
        codes = [_get(desk, "/api/drafts", auth).status_code for _ in range(5)]
        assert codes == [200] * 5
        r = _get(desk, "/api/drafts", auth)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert "too many requests" in r.json()["error"]
        wrong = requests.get(desk.url + "/api/drafts", headers={"Authorization": "Bearer guess-guess-guess"}, timeout=10)
        assert wrong.status_code == 429                # token guessing is limited too
    finally:
        desk.stop()


def test_rate_limit_buckets_per_client_refill_and_forget_the_least_recent():
    from actors.review.ratelimit import TokenBuckets
    buckets = TokenBuckets(per_minute=60, max_clients=2)      # 1 a second, bursts of 60
    assert [buckets.take("a", now=0.0) for _ in range(60)] == [0.0] * 60
    assert buckets.take("a", now=0.0) == pytest.approx(1.0)    # empty: the next token in 1 s
    assert buckets.take("a", now=0.5) == pytest.approx(0.5)    # half refilled
    assert buckets.take("a", now=1.0) == 0.0
    assert buckets.take("b", now=1.0) == 0.0                   # every client has its own bucket
    buckets.take("c", now=1.0)                                 # a third client: "a" is forgotten
    assert buckets.take("a", now=1.0) == 0.0                   # ... and starts full again
    assert TokenBuckets.retry_after(0.2) == "1" and TokenBuckets.retry_after(1.5) == "2"


def test_errors_are_json_and_never_stack_traces(desk, store, auth):
    d = add_conversation(store, "c1", ["hi"])
    cases = [
        ("get", "/api/nothing-here", None, {}, 404),
        ("put", f"/api/drafts/{d['_id']}/approve", None, {}, 405),
        ("post", f"/api/drafts/{d['_id']}/edit", b"{not json", {"Content-Type": "application/json"}, 400),
        ("post", f"/api/drafts/{d['_id']}/edit", b"text=hi", {"Content-Type": "application/x-www-form-urlencoded"}, 415),
        ("post", f"/api/drafts/{d['_id']}/edit", b"[1]", {"Content-Type": "application/json"}, 400),
    ]
    for method, path, data, headers, code in cases:
        r = requests.request(method, desk.url + path, data=data, headers={**auth, **headers}, timeout=10)
        assert r.status_code == code, (path, r.text)
        assert r.headers["Content-Type"].startswith("application/json")
        assert set(r.json()) == {"error"} and "Traceback" not in r.text


def test_missing_or_weak_review_token_is_a_config_error(make_config, store):
    with pytest.raises(ConfigError, match="REVIEW_TOKEN: required"):
        make_app(make_config(REVIEW_TOKEN=None), store)
    with pytest.raises(ConfigError, match="REVIEW_TOKEN: too short") as err:
        make_app(make_config(REVIEW_TOKEN="short1"), store)
    assert "short1" not in str(err.value)


def test_openapi_describes_every_route(desk):
    r = requests.get(desk.url + "/api/openapi.yaml", timeout=10)
    assert r.headers["Content-Type"].startswith("application/yaml")
    spec = yaml.safe_load(r.text)
    assert spec["openapi"].startswith("3.")
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    from actors.review.accounts import routes as account_routes
    from actors.review.conversations import routes as conversation_routes
    from actors.review.export import routes as export_routes
    served = {(rt.path.replace("{conversation_id:.+}", "{conversation_id}"), rt.method.lower())
              for rt in [*routes, *account_routes, *conversation_routes, *export_routes]}
    assert served == documented


def test_review_desk_actor_serves_and_requeues_stranded_approvals(ray_session, make_config, store, auth):
    import ray

    from actors.review.server import ReviewDesk

    cfg = make_config(app={"review": {"port": 0}})
    stranded = add_conversation(store, "c9", ["hello?"], draft="approved before a crash")
    store.drafts.transition(stranded["_id"], "pending_review", "approved", decided_by="owner")
    desk = ReviewDesk.options(name=f"review:desk:{cfg.settings.namespace}").remote(cfg)
    try:
        info = ray.get(desk.start.remote(), timeout=60)
        assert info["url"].startswith("http://127.0.0.1:") and not info["url"].endswith(":0")
        assert info["requeued_sends"] == 1
        assert ray.get(desk.start.remote(), timeout=10)["url"] == info["url"]   # idempotent
        assert ray.get(desk.ping.remote(), timeout=10)["ok"] is True
        r = requests.get(info["url"] + "/api/drafts", params={"status": "approved"}, headers=auth, timeout=10)
        assert [d["id"] for d in r.json()["drafts"]] == [stranded["_id"]]
        rows = list(store.outbox.coll.find({"routing_key": "draft.approved"}))
        assert len(rows) == 1 and parse_event(rows[0]["body"]).text == "approved before a crash"
        ray.get(desk.stop.remote(), timeout=10)
        with pytest.raises(requests.ConnectionError):
            requests.get(info["url"] + "/", timeout=5)
    finally:
        ray.kill(desk)


def _self_signed(tmp_path) -> tuple[str, str]:
    """A certificate and key for 127.0.0.1 (PEM files), as an operator's CA would issue."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "review desk test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "desk.pem", tmp_path / "desk.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_review_desk_actor_serves_https_only_with_a_certificate(ray_session, make_config, store, auth,
                                                                tmp_path):
    import ray

    from actors.review.server import ReviewDesk

    cert, key = _self_signed(tmp_path)
    cfg = make_config(app={"review": {"port": 0, "tls_cert_file": cert, "tls_key_file": key}})
    add_conversation(store, "c-tls", ["hello over TLS?"])
    desk = ReviewDesk.options(name=f"review:desk:{cfg.settings.namespace}").remote(cfg)
    try:
        url = ray.get(desk.start.remote(), timeout=60)["url"]
        assert url.startswith("https://127.0.0.1:")
        r = requests.get(url + "/api/drafts", headers=auth, timeout=10, verify=cert)
        assert r.status_code == 200 and [d["conversation_id"] for d in r.json()["drafts"]] == ["c-tls"]
        assert r.headers["Strict-Transport-Security"] == "max-age=31536000"
        with pytest.raises(requests.exceptions.SSLError):       # an unknown certificate is refused
            requests.get(url + "/api/drafts", headers=auth, timeout=10)
        with pytest.raises(requests.ConnectionError):           # and plain HTTP is not served
            requests.get(url.replace("https://", "http://") + "/api/drafts", headers=auth, timeout=10)
    finally:
        ray.kill(desk)
