"""Review desk list endpoints: p50/p99 latency over HTTP vs the raw store query, 10,000 drafts
and 100,000 conversations.

Baselines measured in the same run on the same data:
  raw page   -- Drafts.page() called directly (the query the endpoint runs), so endpoint/raw is
                the cost of HTTP + auth + JSON;
  naive list -- Drafts.list(): one sort+skip+limit query, what paging would cost without the
                time-window scan (see Drafts.page).
The conversations view (GET /api/conversations) over N conversation summaries, against:
  raw page   -- Summaries.page()/search() called directly (the query the endpoint runs);
  naive sort -- one find().sort(last_at).limit(51) over the matching summaries, what the page
                would cost without the time-window scan.
Run: .venv/bin/python benchmarks/bench_review.py [--quick | --smoke] [--drafts N] [--conversations N]

`--smoke` (the test suite runs it): 500 drafts, 400 conversations, 5 requests per scenario, on
MONGODB_URI's server when set; checks every latency is a sane number.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import requests
from pymongo import MongoClient
from pymongo.errors import PyMongoError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.review import make_app  # noqa: E402
from actors.store import Store  # noqa: E402
from actors.store.inline import Inline, run_inline  # noqa: E402
from actors.store.inserts import insert_new  # noqa: E402
from actors.store.summaries import Summaries  # noqa: E402
from benchmarks.common import check, mongo_uri  # noqa: E402
from contracts import settings  # noqa: E402
from contracts.events import utcnow  # noqa: E402
from standins.serve import ServedApp  # noqa: E402

ACCOUNTS = ["acc-a", "acc-b", "acc-c", "acc-d"]
CLASSES = ["needs_reply", "no_reply_needed", "spam_or_scam", "abusive"]


def config(uri: str, token: str, db: str):
    env = {"RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:5672/%2F", "MONGODB_URI": uri,
           "MONGODB_DB": db, "GOOGLE_SHEET_ID": "bench", "SHEETS_API_URL": "http://127.0.0.1:9/",
           "MEETME_USERNAME": "bench", "MEETME_PASSWORD": "bench-password", "AI_API_KEY": "bench-key",
           "AI_API_URL": "http://127.0.0.1:9/", "REVIEW_TOKEN": token}
    os.environ.update(env)
    cfg = settings.load()
    review = cfg.app.review.model_copy(update={"requests_per_minute": 10**9})
    return cfg.model_copy(update={"app": cfg.app.model_copy(update={"review": review})})


def seed(store: Store, n: int) -> None:
    """n drafts spread over 30 days (about 14 an hour), two thirds pending review."""
    now = utcnow()
    step = timedelta(days=30) / n
    docs = [{"_id": f"d{i:07d}", "account_id": ACCOUNTS[i % 4], "conversation_id": f"c{i % 2000}",
             "classification": CLASSES[(i // 4) % 4], "text": f"draft reply number {i} " * 4,
             "message_ids": [f"m{i}"], "status": "pending_review" if i % 3 else "sent",
             "created_at": now - step * i} for i in range(n)]
    for k in range(0, n, 2000):     # duplicate-tolerant: a retried batch may have landed already
        run_inline(insert_new(Inline(store.drafts.coll), docs[k:k + 2000]))


FIRST = ["Alice", "Bob", "Chloe", "Dmitri", "Eva", "Farid", "Greta", "Hugo", "Ines", "Jonas"]
STATES = ["answered"] * 50 + ["draft"] * 20 + ["no_reply_needed"] * 10 + ["spam_or_scam"] * 8 + \
    ["closed"] * 6 + ["abusive"] * 3 + ["sending"] * 2 + ["ai_failed"]


def seed_conversations(store: Store, n: int) -> None:
    """n conversation summaries (as the write path keeps them) spread over 30 days, 4 accounts,
    1 in 100 ai_failed."""
    from actors.store.summaries import index_words
    now = utcnow()
    step = timedelta(days=30) / n
    docs = []
    for i in range(n):
        contact = f"{FIRST[i % 10]} {FIRST[(i // 10) % 10]}son{i % 997}"
        text = f"message {i} about the weekend plan number {i % 300}"
        docs.append({"_id": f"{ACCOUNTS[i % 4]}:conv{i:07d}", "account_id": ACCOUNTS[i % 4],
                     "conversation_id": f"conv{i:07d}", "contact": contact, "state": STATES[i % 100],
                     "last_text": text, "last_direction": "in", "last_seq": 3, "unread": i % 3,
                     "last_at": now - step * i, "words": index_words(contact, text)})
    store.summaries.coll.drop_index("words_last")   # built once at the end: faster than per insert
    for k in range(0, n, 5000):
        run_inline(insert_new(Inline(store.summaries.coll), docs[k:k + 5000]))
    t0 = time.perf_counter()
    slow = MongoClient(store.uri, socketTimeoutMS=None, tz_aware=True)   # a long index build
    try:
        run_inline(Summaries(Inline(slow[store.db_name])).ensure_indexes())
    finally:
        slow.close()
    print(f"words index built in {time.perf_counter() - t0:.1f} s")


def bench_conversations(store: Store, desk: ServedApp, http: requests.Session, reps: int,
                        figures: dict[str, float]) -> None:
    summaries = store.summaries
    last = summaries.page(accounts=None, state=None, limit=200)[-1]
    cursor = base64.urlsafe_b64encode(json.dumps([last["last_at"].isoformat(), last["_id"]]).encode()).decode()
    scenarios = [
        ("first page", {}, {}, {}),
        ("account", {"account": "acc-b"}, {"accounts": ["acc-b"]}, {"account_id": "acc-b"}),
        ("state=ai_failed", {"state": "ai_failed"}, {"state": "ai_failed"}, {"state": "ai_failed"}),
        ("account+state", {"account": "acc-c", "state": "spam_or_scam"},
         {"accounts": ["acc-c"], "state": "spam_or_scam"}, {"account_id": "acc-c", "state": "spam_or_scam"}),
        ("page 5 (cursor)", {"cursor": cursor}, {"before": (last["last_at"], last["_id"])},
         {"last_at": {"$lt": last["last_at"]}}),
        ("search contact", {"q": "greta hu"}, {"term": "greta hu"}, {"words": "greta"}),
        ("search word", {"q": "weekend"}, {"term": "weekend"}, {"words": "weekend"}),
    ]
    print(f"\nconversations view: {summaries.coll.estimated_document_count()} summaries; {reps} requests "
          f"each, limit=50; times in ms")
    print(f"{'scenario':18} {'endpoint p50':>12} {'p99':>7} {'raw page p50':>13} {'p99':>7} "
          f"{'naive sort p50':>15}")
    for name, params, kw, naive_q in scenarios:
        def call(params=params):
            r = http.get(desk.url + "/api/conversations", params={"limit": 50, **params})
            assert r.status_code == 200, r.text
            assert r.json()["conversations"], f"{name}: the endpoint listed no conversations"
        ep = timed(call, reps)
        if "term" in kw:
            raw = timed(lambda kw=kw: summaries.search(kw["term"], accounts=None, state=None, limit=51)[0], reps)
        else:
            raw = timed(lambda kw=kw: summaries.page(limit=51, **{"accounts": None, "state": None, **kw}), reps)
        naive = timed(lambda q=naive_q: list(summaries.coll.find(q).sort("last_at", -1).limit(51)),
                      max(3, reps // 20))
        print(f"{name:18} {pct(ep, .5):12.1f} {pct(ep, .99):7.1f} {pct(raw, .5):13.1f} {pct(raw, .99):7.1f} "
              f"{pct(naive, .5):15.1f}")
        figures.update({f"conversations {name} endpoint p50 ms": pct(ep, .5),
                        f"conversations {name} raw p50 ms": pct(raw, .5)})


def bench_drafts(store: Store, desk: ServedApp, http: requests.Session, reps: int, page: int,
                 figures: dict[str, float]) -> None:
    # page `page` of the unfiltered inbox: the cursor the endpoint hands out after page-1 pages
    cursor, after = None, None
    for _ in range(page - 1):
        body = http.get(desk.url + "/api/drafts", params={"limit": 50, **({"cursor": cursor} if cursor else {})}).json()
        cursor = body["next_cursor"]
    last = store.drafts.page(limit=50 * (page - 1))[-1]
    after = (last["created_at"], last["_id"])

    scenarios = [
        ("first page", {}, {}),
        ("account", {"account": "acc-b"}, {"account_id": "acc-b"}),
        ("classification", {"classification": "abusive"}, {"classification": "abusive"}),
        ("account+class", {"account": "acc-c", "classification": "spam_or_scam"},
         {"account_id": "acc-c", "classification": "spam_or_scam"}),
        (f"page {page} (cursor)", {"cursor": cursor}, {"after": after}),
        ("status=sent", {"status": "sent"}, {"status": "sent"}),
    ]
    print(f"\n{reps} requests each, limit=50, sequential keep-alive client; times in ms")
    print(f"{'scenario':18} {'endpoint p50':>12} {'p99':>7} {'raw page p50':>13} {'p99':>7} "
          f"{'ratio p50':>9} {'naive list p50':>15}")
    for name, params, kw in scenarios:
        def call(params=params):
            r = http.get(desk.url + "/api/drafts", params={"limit": 50, **params})
            assert r.status_code == 200, r.text
            assert r.json()["drafts"], f"{name}: the endpoint listed no drafts"
        ep = timed(call, reps)
        raw = timed(lambda kw=kw: store.drafts.page(limit=51, **kw), reps)
        list_kw = {k: v for k, v in kw.items() if k != "after"}
        skip = 50 * (page - 1) if "after" in kw else 0
        naive = timed(lambda: store.drafts.list(limit=50, skip=skip, **list_kw), max(5, reps // 10))
        print(f"{name:18} {pct(ep, .5):12.1f} {pct(ep, .99):7.1f} {pct(raw, .5):13.1f} "
              f"{pct(raw, .99):7.1f} {pct(ep, .5) / pct(raw, .5):9.2f} {pct(naive, .5):15.1f}")
        figures.update({f"{name} endpoint p50 ms": pct(ep, .5), f"{name} raw p50 ms": pct(raw, .5)})


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))] * 1000


def timed(fn, n: int) -> list[float]:
    fn()                                                    # warm-up
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions (about 20 s)")
    p.add_argument("--smoke", action="store_true", help="500 drafts, 5 requests each, figures checked")
    p.add_argument("--drafts", type=int, default=None)
    p.add_argument("--conversations", type=int, default=None)
    p.add_argument("--only", choices=("drafts", "conversations"), default=None,
                   help="run one of the two parts")
    a = p.parse_args(argv)
    conversations = a.conversations or (400 if a.smoke else 100_000)
    reps = 5 if a.smoke else 30 if a.quick else 200
    drafts = a.drafts or (500 if a.smoke else 10_000)
    page = max(2, min(20, drafts // 50))   # the deep page measured: 20 in the full run
    token = secrets.token_urlsafe(24)
    figures: dict[str, float] = {}
    with mongo_uri() as uri:
        cfg = config(uri, token, "bench_review_" + uuid.uuid4().hex[:8])
        store = Store.from_config(cfg)
        store.ensure_indexes()
        if a.only != "conversations":
            t0 = time.perf_counter()
            seed(store, drafts)
            print(f"seeded {drafts} drafts in {time.perf_counter() - t0:.1f} s "
                  f"({store.drafts.count({'status': 'pending_review'})} pending)")
        desk = ServedApp(make_app(cfg, store)).start()
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {token}"
        try:
            if a.only != "conversations":
                bench_drafts(store, desk, http, reps, page, figures)
            if a.only != "drafts":
                t0 = time.perf_counter()
                seed_conversations(store, conversations)
                print(f"\nseeded {conversations} conversation summaries in {time.perf_counter() - t0:.1f} s")
                bench_conversations(store, desk, http, reps if a.smoke else max(30, reps // 2), figures)
        finally:
            desk.stop()
            try:        # a throwaway server goes with its directory anyway
                store.db.client.drop_database(store.db_name)
            except PyMongoError as exc:
                print(f"could not drop {store.db_name}: {exc}")
    if a.smoke:
        check("bench_review", figures, {k: (1e-6, 10_000) for k in figures})
    return 0


if __name__ == "__main__":
    sys.exit(main())
