"""Store insert throughput against its own MongoDB-wire server: `store.messages.insert` (pydantic
dump + duplicate-tolerant insert_many, journaled) vs raw `insert_many` of the same documents
(w=1 and j=true), measured in the same run; plus re-delivery (every message already stored);
and the client from an asyncio caller: the sync client in `asyncio.to_thread` vs pymongo's
`AsyncMongoClient`, same operations, same run (benchmarks/store_clients.py).

    .venv/bin/python benchmarks/bench_store.py [--quick | --smoke] [--docs N]

`--smoke` (the test suite runs it): 200 documents, on MONGODB_URI's server when set, and checks
every rate is a sane number and every document was stored.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pymongo import MongoClient, WriteConcern  # noqa: E402

from actors.store import Store  # noqa: E402
from benchmarks.common import check, mongo_uri  # noqa: E402
from actors.store.client import close_client  # noqa: E402
from contracts.events import ChatMessage  # noqa: E402
from contracts.ids import message_id  # noqa: E402
from standins.mongo import MongoServer  # noqa: E402
from benchmarks.store_clients import compare  # noqa: E402


def messages(n: int, tag: str) -> list[ChatMessage]:
    return [ChatMessage(message_id=message_id("bench", f"c{i // 20}", f"{tag}{i}", "alice", "t", "x"),
                        account_id="bench", site="meetme", conversation_id=f"c{i // 20}",
                        site_message_id=f"{tag}{i}", sender="alice", sent_at="2026-01-01T00:00:00Z",
                        text=f"message {i}: " + "lorem ipsum " * 8) for i in range(n)]


def docs_of(msgs: list[ChatMessage]) -> list[dict]:
    out = []
    for m in msgs:
        d = m.model_dump(mode="json")
        d["_id"], d["seq"] = m.message_id, m.seen_at.timestamp()
        out.append(d)
    return out


def timed(fn, batches) -> float:
    t0 = time.perf_counter()
    for b in batches:
        fn(b)
    return time.perf_counter() - t0


def chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="2,000 documents")
    p.add_argument("--smoke", action="store_true", help="200 documents, figures checked")
    p.add_argument("--docs", type=int)
    p.add_argument("--batch", type=int, default=100, help="messages per insert call (a page)")
    a = p.parse_args(argv)
    n = a.docs or (200 if a.smoke else 2000 if a.quick else 20_000)
    n_single = min(n, 20 if a.smoke else 500)

    rounds = 1 if a.quick or a.smoke else 3
    results: dict[str, list[float]] = {}
    tag = uuid.uuid4().hex[:8]
    with contextlib.ExitStack() as ex:
        if a.smoke:   # any server will do: the suite's when it runs this
            uri, own = ex.enter_context(mongo_uri()), False
        else:         # a fresh server of its own, as measured in the README
            tmp = ex.enter_context(tempfile.TemporaryDirectory())
            uri, own = ex.enter_context(MongoServer(Path(tmp) / "db")).uri, True
        raw_db = MongoClient(uri).get_database(f"bench_raw_{tag}")
        store = Store(uri, f"bench_store_{tag}")
        store.ensure_indexes()
        raw_w1 = raw_db.get_collection("messages", write_concern=WriteConcern(w=1))
        raw_j = raw_db.get_collection("messages_j", write_concern=WriteConcern(w=1, j=True))
        for coll in (raw_w1, raw_j):
            coll.create_index([("account_id", 1), ("conversation_id", 1), ("seq", 1)])

        def run(label: str, fn, batches, count: int) -> None:
            results.setdefault(label, []).append(count / timed(fn, batches))

        for r in range(rounds):  # interleaved rounds: a noisy neighbour hits every case alike
            run(f"raw insert_many w=1 (batch {a.batch})", lambda b: raw_w1.insert_many(b, ordered=False),
                chunks(docs_of(messages(n, f"r{r}-")), a.batch), n)
            run(f"raw insert_many j=true (batch {a.batch})", lambda b: raw_j.insert_many(b, ordered=False),
                chunks(docs_of(messages(n, f"j{r}-")), a.batch), n)
            msgs = messages(n, f"s{r}-")
            run(f"store.messages.insert (batch {a.batch})", store.messages.insert, chunks(msgs, a.batch), n)
            run(f"store.messages.insert re-delivery, all duplicates (batch {a.batch})",
                store.messages.insert, chunks(msgs, a.batch), n)
            run("store.messages.insert one at a time", store.messages.insert,
                chunks(messages(n_single, f"o{r}-"), 1), n_single)
        stored = store.messages.count()
        clients = compare(uri, 20 if a.smoke else 100 if a.quick else 300, 1 if a.smoke else rounds + 2)
        raw_db.client.drop_database(raw_db.name)
        raw_db.client.close()
        store.db.client.drop_database(store.db_name)
        if own:
            close_client(uri)

    labels = list(results)
    base = statistics.median(results[labels[0]])
    print(f"{n} messages x {rounds} interleaved rounds (median), server: secantusd-py (MongoDB wire); "
          "store writes are journaled")
    for label in labels:
        rate = statistics.median(results[label])
        print(f"{label:<62} {rate:>9,.0f} docs/s  ({rate / base:5.2f}x raw w=1)")
    if a.smoke:
        figures = {label: statistics.median(results[label]) for label in labels}
        check("bench_store", {**figures, **clients, "messages stored": stored},
              {**{label: (1e-9, 1e7) for label in labels},
               "messages stored": (rounds * (n + n_single),) * 2,
               "client comparison: documents stored per client": (1, 1)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
