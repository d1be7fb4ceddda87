"""Sheets writer throughput: N rows through SheetsWriter (Ray actor, real HTTP to the Sheets v4
fake, real MongoDB-wire server) vs the naive one-request-per-row baseline, measured in the same
run.

Figures: rows per API request, write requests per minute (and the busiest 60 s window against
app.sheets.max_writes_per_minute), total time. The baseline appends row by row with gspread's
append_row against the same fake on a smaller N and is extrapolated (printed as such): under
Google's real quota (60 writes/min) its time is N minutes whatever the server speed.

    .venv/bin/python benchmarks/bench_sheets.py [--quick | --smoke] [--rows N]

`--smoke` (the test suite runs it): 150 rows, a baseline of 5, on the caller's Ray instance and
MONGODB_URI's server when there are; checks the figures and that every row landed once.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ray  # noqa: E402
import requests  # noqa: E402

from benchmarks.common import check, mongo_uri, ray_instance  # noqa: E402
from contracts.events import ChatMessage, MessageSeen  # noqa: E402
from contracts.ids import message_id  # noqa: E402
from standins.mongo import MongoServer  # noqa: E402
from standins.serve import ServedApp  # noqa: E402
from standins.sheetsfake import WRITE_ENDPOINTS, make_app  # noqa: E402

SHEET = "bench-sheet"


def environment(uri: str, sheets_url: str, db: str) -> None:
    os.environ.update({
        "RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:5672/%2F", "MONGODB_URI": uri,
        "MONGODB_DB": db, "REVIEW_TOKEN": "bench-review-token-123456", "GOOGLE_SHEET_ID": SHEET, "SHEETS_API_URL": sheets_url,
        "MEETME_USERNAME": "bench@example.com", "MEETME_PASSWORD": "bench-password",
        "AI_API_KEY": "sk-bench", "AI_API_URL": "http://127.0.0.1:9/",
        "REPLYDESK_NAMESPACE": "bench", "LOG_LEVEL": "WARNING"})
    os.environ.pop("REPLYDESK_TRACE_FILE", None)


def messages(n: int, prefix: str) -> list[ChatMessage]:
    return [ChatMessage(message_id=message_id("bench", f"{prefix}{i // 20}", f"s{i}", "alice", "t", "x"),
                        account_id="bench", site="meetme", conversation_id=f"{prefix}{i // 20}",
                        site_message_id=f"s{i}", sender="alice", sent_at=f"2026-01-01T00:00:{i % 60:02d}Z",
                        text=f"message {i}: " + "lorem ipsum " * 8) for i in range(n)]


def write_log(url: str) -> list[dict]:
    log = requests.get(url + "/_admin/requests", timeout=30).json()["log"]
    return [e for e in log if e["endpoint"] in WRITE_ENDPOINTS]


def busiest_minute(ts: list[float]) -> int:
    best, j = 0, 0
    for i, t in enumerate(ts):
        while ts[j] <= t - 60:
            j += 1
        best = max(best, i - j + 1)
    return best


def bench_writer(config, url: str, n: int) -> dict:
    from actors.sheets.writer import SheetsWriter
    from actors.store import Store
    store = Store.from_config(config)
    writer = SheetsWriter.remote(config)
    ray.get(writer.start.remote())
    before = len(write_log(url))
    msgs = messages(n, "w")
    t0 = time.monotonic()
    for i in range(0, n, 100):  # as the bus delivers them: stored first, then the event
        batch = msgs[i:i + 100]
        store.messages.insert(batch)
        ray.get(writer.add.remote([MessageSeen.of(m).model_dump(mode="json") for m in batch]))
    ray.get(writer.flush.remote())
    elapsed = time.monotonic() - t0
    writes = write_log(url)[before:]
    stats = ray.get(writer.stats.remote())
    ray.kill(writer)
    rows = requests.get(f"{url}/_admin/spreadsheets/{SHEET}/rows", params={"sheet": "replydesk"},
                        timeout=30).json()["rows"]
    ts = sorted(e["t"] for e in writes)
    return {"rows": stats["rows_written"], "requests": len(writes), "seconds": elapsed,
            "rows_in_sheet": len(rows) - 1, "busiest_minute": busiest_minute(ts),
            "span_s": (ts[-1] - ts[0]) if len(ts) > 1 else 0.0}


def bench_naive(config, url: str, n: int) -> dict:
    import gspread
    from actors.sheets.http import open_client
    sh = open_client(config).open_by_key(SHEET)
    ws = sh.add_worksheet("naive", rows=10, cols=9)
    t0 = time.monotonic()
    for m in messages(n, "n"):
        ws.append_row([m.message_id, "message", m.account_id, m.conversation_id, m.sender, m.sent_at,
                       m.text, "", "received"], value_input_option=gspread.utils.ValueInputOption.raw)
    return {"rows": n, "requests": n, "seconds": time.monotonic() - t0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="2,000 rows, baseline 50")
    p.add_argument("--smoke", action="store_true", help="150 rows, baseline 5, figures checked")
    p.add_argument("--rows", type=int)
    a = p.parse_args(argv)
    n = a.rows or (150 if a.smoke else 2000 if a.quick else 10_000)
    n_naive = 5 if a.smoke else 50 if a.quick else 300

    with contextlib.ExitStack() as ex:
        if a.smoke:   # any server will do: the suite's when it runs this
            uri = ex.enter_context(mongo_uri())
        else:
            tmp = ex.enter_context(tempfile.TemporaryDirectory())
            uri = ex.enter_context(MongoServer(Path(tmp) / "db")).uri
        fake = ex.enter_context(ServedApp(make_app()))
        db = "bench_sheets_" + uuid.uuid4().hex[:8]
        environment(uri, fake.url, db)
        requests.post(fake.url + "/_admin/spreadsheets", json={"id": SHEET}, timeout=10)
        from actors.store import Store
        from contracts.settings import load
        config = load()
        with ray_instance():
            naive = bench_naive(config, fake.url, n_naive)
            w = bench_writer(config, fake.url, n)
        Store.from_config(config).db.client.drop_database(db)

    conf = config.app.sheets
    naive_per_row = naive["seconds"] / naive["rows"]
    rpm = (w["requests"] - 1) / w["span_s"] * 60 if w["span_s"] else float("nan")
    print(f"config: batch_size={conf.batch_size} linger_s={conf.linger_s} "
          f"max_rows_per_request={conf.max_rows_per_request} "
          f"max_writes_per_minute={conf.max_writes_per_minute}")
    print(f"writer : {w['rows']} rows in {w['requests']} write requests "
          f"= {w['rows'] / max(w['requests'], 1):.0f} rows/request; {w['seconds']:.1f} s total; "
          f"{rpm:.0f} requests/min; busiest 60 s window {w['busiest_minute']} requests "
          f"(limit {conf.max_writes_per_minute}); rows in sheet {w['rows_in_sheet']}")
    print(f"naive  : {naive['rows']} rows, 1 row/request, {naive['seconds']:.2f} s measured "
          f"({naive_per_row * 1000:.1f} ms/request against the local fake)")
    print(f"naive extrapolated to {n} rows: {naive_per_row * n:.1f} s unthrottled on the fake; "
          f"{n / conf.max_writes_per_minute:.0f} min under the {conf.max_writes_per_minute}/min quota")
    quota_writer = w["requests"] / conf.max_writes_per_minute
    print(f"ratio  : {w['rows'] / max(w['requests'], 1):.0f}x fewer requests than naive; "
          f"under the quota the writer needs {quota_writer:.1f} min vs naive "
          f"{n / conf.max_writes_per_minute:.0f} min")
    ok = w["rows_in_sheet"] == n and w["busiest_minute"] <= conf.max_writes_per_minute
    print("goal   : >= 100 rows/request:", "MET" if w["rows"] / max(w["requests"], 1) >= 100 else "NOT MET",
          "| every row once, quota kept:", "YES" if ok else "NO")
    if a.smoke:
        check("bench_sheets", {
            "rows written": w["rows"], "rows in sheet": w["rows_in_sheet"], "write requests": w["requests"],
            "rows/request": w["rows"] / max(w["requests"], 1), "writer s": w["seconds"],
            "busiest minute": w["busiest_minute"], "naive ms/request": naive_per_row * 1000,
            **({"requests/min": rpm} if not math.isnan(rpm) else {})},
            {"rows written": (n, n), "rows in sheet": (n, n), "write requests": (1, n),
             "busiest minute": (1, conf.max_writes_per_minute)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
