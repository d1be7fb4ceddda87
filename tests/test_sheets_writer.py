"""SheetsWriter against the Sheets v4 fake and the MongoDB-wire server: no row lost, none doubled."""
from __future__ import annotations

import collections
import time

import pytest
import ray

from actors.sheets.http import open_client
from actors.sheets.writer import SheetsWriter
from contracts.errors import PermanentError, root_cause
from actors.review.decisions import Reviewer, approved_event, rejected_event
from actors.store.drafts import SENDABLE
from contracts.events import ChatMessage, ChildFailed, DraftCreated, MessageSeen, ReplySent
from contracts.ids import draft_id, message_id
from contracts.telemetry import read_spans

pytestmark = pytest.mark.timeout(120)

FAST = {"batch_size": 50, "linger_s": 0.1, "max_writes_per_minute": 600,
        "backoff_initial_s": 0.02, "backoff_max_s": 0.3, "max_attempts": 40}


@pytest.fixture
def cfg(make_config, sheets, ray_session):
    def make(**sheets_conf):
        return make_config(app={"sheets": {**FAST, **sheets_conf}}, SHEETS_API_URL=sheets.url)
    return make


@pytest.fixture
def writers():
    """Writers started by a test, killed at its end."""
    started: list = []

    def new(config):
        w = SheetsWriter.remote(config)
        started.append(w)
        return w
    yield new
    for w in started:
        ray.kill(w)


def make_messages(n: int, conv: str = "c1", start: int = 0) -> list[ChatMessage]:
    return [ChatMessage(message_id=message_id("acct", conv, f"s{i}", "alice", f"t{i}", f"hi {i}"),
                        account_id="acct", site="meetme", conversation_id=conv,
                        site_message_id=f"s{i}", sender="alice", sent_at=f"t{i}", text=f"hi {i}")
            for i in range(start, start + n)]


def stored_events(store, n: int) -> list[dict]:
    """n messages (+ one draft) stored in MongoDB, and their events as JSON dicts."""
    msgs = make_messages(n)
    store.messages.insert(msgs)
    d = DraftCreated.make(draft_id=draft_id("acct", "c1", msgs[-1].message_id), account_id="acct",
                          conversation_id="c1", message_ids=[msgs[-1].message_id],
                          classification="needs_reply", text="=HYPERLINK(\"x\") hello")
    store.drafts.insert({"_id": d.draft_id, "account_id": "acct", "conversation_id": "c1",
                         "message_ids": d.message_ids, "classification": d.classification,
                         "text": d.text})
    return [MessageSeen.of(m).model_dump(mode="json") for m in msgs] + [d.model_dump(mode="json")]


def row_ids(sheets) -> list[str]:
    rows = sheets.rows("replydesk")
    assert rows[0][0] == "row_id", rows[:1]
    return [r[0] for r in rows[1:]]


def assert_once(sheets, events: list[dict]) -> None:
    ids = row_ids(sheets)
    dup = [k for k, v in collections.Counter(ids).items() if v > 1]
    assert not dup, f"rows written twice: {dup[:5]}"
    want = {e["message"]["message_id"] if e["type"] == "message.seen" else e["draft_id"] for e in events}
    assert set(ids) == want, f"missing {len(want - set(ids))}, extra {len(set(ids) - want)}"


def test_missing_worksheet_and_header_are_created_once(cfg, sheets, writers):
    config = cfg()
    w = writers(config)
    info = ray.get(w.start.remote())
    assert info["rows_in_sheet"] == 0
    assert sheets.rows("replydesk") == [config.app.sheets.columns]
    ray.get(w.start.remote())  # idempotent: no second worksheet, no second header
    assert sheets.rows("replydesk") == [config.app.sheets.columns]


def test_header_mismatch_is_a_clear_error(cfg, sheets, writers):
    config = cfg()
    ws = open_client(config).open_by_key(config.settings.google_sheet_id).add_worksheet("replydesk", 10, 3)
    ws.update([["row_id", "something", "else"]], "A1")
    with pytest.raises(Exception) as info:
        ray.get(writers(config).start.remote())
    err = root_cause(info.value)
    assert isinstance(err, PermanentError) and "app.sheets.columns" in str(err)


def test_same_events_three_times_and_after_restart_written_once(cfg, sheets, store, writers):
    config = cfg()
    w = writers(config)
    ray.get(w.start.remote())
    events = stored_events(store, 120)
    for _ in range(2):  # the store is the first gate: storing the same messages again adds nothing
        stored_events(store, 120)
    assert store.messages.count() == 120 and store.drafts.count() == 1
    added = [ray.get(w.add.remote(events)) for _ in range(3)]
    assert added[0] == len(events) and added[1:] == [0, 0]
    ignored = ChildFailed.make(child="ai:0", kind="ai", account_id=None, error="boom",
                               at=1.0).model_dump(mode="json")      # the sheet does not log it
    assert ray.get(w.add.remote([{"type": "message.seen", "event_id": "bad"}, ignored])) == 0
    assert ray.get(w.stats.remote())["rejected"] == 1  # logged with its event id, not fatal
    ray.get(w.flush.remote())
    assert_once(sheets, events)
    assert ray.get(w.add.remote(events)) == 0  # already in the sheet: never buffered again
    ray.kill(w)
    w2 = writers(config)
    assert ray.get(w2.start.remote())["rederived"] == 0
    assert ray.get(w2.add.remote(events)) == 0
    ray.get(w2.flush.remote())
    assert_once(sheets, events)
    draft_row = next(r for r in sheets.rows("replydesk") if r[1] == "draft")
    assert draft_row[6].startswith("=HYPERLINK")  # RAW: stored as text, never a formula


def test_killed_writer_loses_no_buffered_row(cfg, sheets, store, writers):
    config = cfg(batch_size=100_000, linger_s=600)  # nothing flushes by itself
    w = writers(config)
    ray.get(w.start.remote())
    events = stored_events(store, 300)
    assert ray.get(w.add.remote(events)) == len(events)
    assert ray.get(w.stats.remote())["buffered"] == len(events)
    ray.kill(w)
    assert row_ids(sheets) == []
    w2 = writers(cfg())
    assert ray.get(w2.start.remote())["rederived"] == len(events)
    ray.get(w2.flush.remote())
    assert_once(sheets, events)


def decided(store) -> list[dict]:
    """Two drafts: one edited-and-approved then sent, one rejected; the events of all three steps."""
    events = stored_events(store, 2)
    first = events[-1]["draft_id"]
    second = draft_id("acct", "c1", "other")
    store.drafts.insert({"_id": second, "account_id": "acct", "conversation_id": "c1",
                         "message_ids": [], "classification": "spam_or_scam", "text": "no"})
    reviewer = store.sync(Reviewer(store.inline, "desk-alice"))
    approved = approved_event(reviewer.approve(first, text="See you at 8?"))
    rejected = rejected_event(reviewer.reject(second, "looks like a scam"))
    store.drafts.transition(first, SENDABLE, "sending")
    store.sends.record(idempotency_key=approved.idempotency_key, draft_id=first, account_id="acct",
                       conversation_id="c1", site_message_id="site-77", text=approved.text)
    store.drafts.transition(first, "sending", "sent", site_message_id="site-77")
    sent = ReplySent.make(draft_id=first, account_id="acct", conversation_id="c1",
                          idempotency_key=approved.idempotency_key, site_message_id="site-77",
                          text=approved.text)
    return [*events, *(e.model_dump(mode="json") for e in (approved, rejected, sent))]


def decision_rows(sheets) -> dict[str, list[str]]:
    """row id -> [kind, sender, text, status] of the decision and reply rows."""
    cols = ["row_id", "kind", "sender", "text", "status"]
    header, *rows = sheets.rows("replydesk")
    at = [header.index(c) for c in cols]
    return {r[0]: [r[i] if i < len(r) else "" for i in at[1:]] for r in rows
            if r[at[1]] in ("decision", "reply")}


def wanted_decisions(events: list[dict]) -> dict[str, list[str]]:
    first, second = events[2]["draft_id"], draft_id("acct", "c1", "other")
    return {f"draft.approved:{first}": ["decision", "desk-alice", "See you at 8?", "approved"],
            f"draft.rejected:{second}": ["decision", "desk-alice", "looks like a scam", "rejected"],
            f"reply.sent:{first}": ["reply", "", "See you at 8?", "sent"]}


def test_decision_and_send_events_are_logged_with_reviewer_and_text(cfg, sheets, store, writers):
    w = writers(cfg())
    assert ray.get(w.start.remote())["rederived"] == 0    # nothing stored yet
    events = decided(store)
    assert ray.get(w.add.remote(events)) == len(events)
    assert ray.get(w.add.remote(events[-3:])) == 0         # redelivered: not buffered again
    ray.get(w.flush.remote())
    assert decision_rows(sheets) == wanted_decisions(events)
    assert sorted(row_ids(sheets)) == sorted(set(row_ids(sheets)))


def test_decisions_and_sends_a_crash_kept_out_are_rederived_alike(cfg, sheets, store, writers):
    config = cfg(batch_size=100_000, linger_s=600)        # nothing flushes by itself
    events = decided(store)
    w = writers(config)
    ray.get(w.start.remote())
    ray.kill(w)                                           # killed with every row still buffered
    assert row_ids(sheets) == []
    w2 = writers(config)
    assert ray.get(w2.start.remote())["rederived"] == len(events) + 1   # + the 2nd draft's row
    assert ray.get(w2.add.remote(events)) == 0            # the event path maps to the same ids
    ray.get(w2.flush.remote())
    assert decision_rows(sheets) == wanted_decisions(events)
    ids = row_ids(sheets)
    assert len(ids) == len(set(ids)) == len(events) + 1


def test_crash_between_append_and_mark_does_not_double(cfg, sheets, store, writers):
    config = cfg()
    w = writers(config)
    ray.get(w.start.remote())
    events = stored_events(store, 80)
    ray.get(w.add.remote(events))
    ray.get(w.flush.remote())
    ray.kill(w)
    store.sheet_rows.coll.delete_many({})  # the marks never made it: the crash window
    w2 = writers(config)
    info = ray.get(w2.start.remote())
    assert info["rows_in_sheet"] == len(events) and info["rederived"] == 0
    ray.get(w2.flush.remote())
    assert_once(sheets, events)
    assert store.sheet_rows.count() == len(events)


def test_lost_response_after_applied_write_does_not_double(cfg, sheets, store, writers):
    config = cfg()
    w = writers(config)
    ray.get(w.start.remote())
    events = stored_events(store, 60)
    sheets.faults(next_500_applied=1, endpoints=["values_append"])
    ray.get(w.add.remote(events))
    ray.get(w.flush.remote())
    assert_once(sheets, events)
    assert ray.get(w.stats.remote())["reconciled"] == len(events)


def test_429_storm_keeps_rows_and_rate(cfg, sheets, store, writers):
    per_minute = 600
    config = cfg(batch_size=40, max_writes_per_minute=per_minute)
    w = writers(config)
    ray.get(w.start.remote())
    events = stored_events(store, 500)
    sheets.faults(ratio_429=0.5, ratio_500=0.1, endpoints=["values_append"], seed=7)
    for i in range(0, len(events), 100):
        ray.get(w.add.remote(events[i:i + 100]))
    ray.get(w.flush.remote())
    sheets.faults(ratio_429=0.0, ratio_500=0.0)
    assert_once(sheets, events)

    log = sheets.requests()["log"]
    writes = sorted(e["t"] for e in log if e["endpoint"] in ("values_append", "values_update",
                                                                "batch_update"))
    statuses = collections.Counter(e["status"] for e in log if e["endpoint"] == "values_append")
    assert statuses[429] > 0 and statuses[200] > 0, statuses
    interval = 60.0 / per_minute
    # Google's quota is a count per minute, which is what is checked (as the server saw the
    # requests); a minimum gap between arrivals would only measure this machine's load
    for i, t in enumerate(writes):  # any 60 s window (scaled: any 6 s) holds at most the quota
        assert sum(1 for u in writes[i:] if u - t < interval * 10) <= 10 + 1
    stats = ray.get(w.stats.remote())
    assert stats["rate_limited"] == statuses[429] and stats["buffered"] == 0


def test_linger_flushes_in_background_and_trace_reaches_sheet(cfg, sheets, store, writers):
    config = cfg(batch_size=1000, linger_s=0.2)
    w = writers(config)
    ray.get(w.start.remote())
    events = stored_events(store, 5)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    ray.get(w.add.remote(events, {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}))
    deadline = time.monotonic() + 20
    while len(sheets.rows("replydesk")) < len(events) + 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert_once(sheets, events)
    ray.get(w.stop.remote())
    spans = read_spans(config.settings.trace_file)
    adds = [s for s in spans if s["name"] == "sheets.add" and s["trace_id"] == trace_id]
    assert adds and adds[0]["parent_id"] == "00f067aa0ba902b7"
    assert any(s["name"] == "sheets.write" for s in spans)


def test_sheet_not_found_is_a_clear_error(cfg, sheets, writers, make_config):
    config = make_config(app={"sheets": FAST}, SHEETS_API_URL=sheets.url, GOOGLE_SHEET_ID="nope")
    with pytest.raises(Exception) as info:
        ray.get(writers(config).start.remote())
    err = root_cause(info.value)
    assert isinstance(err, PermanentError) and "GOOGLE_SHEET_ID" in str(err)


def test_cells_a_person_typed_never_shift_or_double_rows(cfg, sheets, store, writers):
    """values.append appends after the "table" it finds from its range (see the fake): given the
    whole sheet, a value typed below the log would take the rows. The writer pins its table to A1,
    so rows stay in column A under the log whatever a person typed around it (a row with an empty
    column A, a cell beside the last row, a total below), and the row-id column it reads back
    still tells after a lost answer or a crash what the sheet holds."""
    config = cfg()
    w = writers(config)
    ray.get(w.start.remote())
    events = stored_events(store, 30)            # 30 messages and a draft, all stored
    ray.get(w.add.remote(events[:10]))
    ray.get(w.flush.remote())
    ws = open_client(config).open_by_key(config.settings.google_sheet_id).worksheet("replydesk")
    ws.resize(cols=14)                                                   # a person widens it ...
    note = ["", "", "", "", "", "", "note typed by a person"]
    ws.update([note], "A12")                                             # ... a row, no id in A
    ws.update([["beside"]], "M11")                                       # ... by the last row
    ws.update([["total: 10"]], "C15")                                    # ... and a total below
    probe = ws.append_rows([["probe"]])          # unpinned, Google's table would be C15
    assert probe["updates"]["updatedRange"] == "replydesk!C16"
    ws.batch_clear(["C16"])

    sheets.faults(next_500_applied=1, endpoints=["values_append"])  # written, but the answer lost
    ray.get(w.add.remote(events[10:20]))
    ray.get(w.flush.remote())
    assert ray.get(w.stats.remote())["reconciled"] == 10           # found by id in column A
    ray.kill(w)
    store.sheet_rows.coll.delete_many({})        # and a crash lost every mark
    w2 = writers(config)
    info = ray.get(w2.start.remote())
    assert (info["rows_in_sheet"], info["rederived"]) == (20, len(events) - 20)
    ray.get(w2.flush.remote())

    rows = sheets.rows("replydesk")
    assert rows[0] == config.app.sheets.columns
    log_rows = rows[1:11] + rows[12:12 + len(events) - 10]
    assert all(r[0] and r[1] in ("message", "draft") for r in log_rows)  # id in A, kind in B
    ids = [r[0] for r in log_rows]
    assert len(ids) == len(set(ids)) == len(events)                    # none twice, none missing
    assert rows[10][12] == "beside" and rows[11] == note               # the person's cells stay
    assert rows[12 + len(events) - 10:] == [[], [], ["", "", "total: 10"]]  # moved down, intact


def test_rows_appended_while_mongodb_goes_down_are_never_appended_again(make_config, sheets, tmp_path):
    """Google took the rows, then the database died before they were marked (MongoDB SIGKILLed
    right after the append): the next flush records them, and neither it nor a redelivery of the
    same events appends them again. The writer runs in this process so the outage lands exactly
    between the append and its mark."""
    import asyncio

    from pymongo.errors import PyMongoError

    from actors.store import Store
    from standins.mongo import MongoServer
    server = MongoServer(storage=tmp_path / "db").start()
    try:
        config = make_config(app={"sheets": FAST}, SHEETS_API_URL=sheets.url, MONGODB_URI=server.uri)
        store = Store.from_config(config)
        events = stored_events(store, 30)
        writer = SheetsWriter.__ray_actor_class__(config)     # the plain class, in-process

        async def scenario() -> None:
            await writer.start()
            await writer.add(events)
            real = writer.ws.append_rows

            def append_then_database_dies(*args, **kwargs):
                out = real(*args, **kwargs)
                server.stop(kill=True)
                return out
            writer.ws.append_rows = append_then_database_dies
            with pytest.raises(PyMongoError):
                await writer.flush()
            writer.ws.append_rows = real
            assert len(row_ids(sheets)) == len(events)     # in the sheet, not yet recorded
            server.start()
            await writer.flush()
            assert await writer.add(events) == 0           # a redelivery finds them written
            await writer.flush()
        asyncio.run(scenario())
        assert_once(sheets, events)
        assert store.sheet_rows.count() == len(events)
    finally:
        server.close()
