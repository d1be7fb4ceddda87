"""Backup CLI: dump a populated database, restore it elsewhere with types and indexes intact."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta

import pytest
from bson import Int64

from actors.store import Store
from contracts.events import ChatMessage, MessageSeen
from contracts.ids import message_id
from tests.fixtures.infra import ROOT


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "actors.store.backup", *args], cwd=ROOT,
                          env=dict(os.environ), capture_output=True, text=True, timeout=120)


def populate(store: Store) -> None:
    msgs = [ChatMessage(message_id=message_id("a", "c", f"s{i}", "bob", "t", f"m{i}"), account_id="a",
                        site="meetme", conversation_id="c", site_message_id=f"s{i}", sender="bob",
                        sent_at="t", text=f"m{i} ✓ <b>") for i in range(1500)]
    store.messages.insert(msgs)
    store.drafts.insert({"_id": "d1", "account_id": "a", "conversation_id": "c", "text": "hi",
                         "n": Int64(2**40)})
    store.drafts.transition("d1", "pending_review", "approved", approved_by="owner")
    store.outbox.add([MessageSeen.of(msgs[0])], {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"})
    store.sheet_rows.mark([m.message_id for m in msgs[:10]])


def snapshot(store: Store) -> dict:
    return {name: (list(store.db[name].find().sort("_id", 1)),
                   sorted((n, [tuple(k) for k in s["key"]], bool(s.get("unique")))
                          for n, s in store.db[name].index_information().items()))
            for name in sorted(store.db.list_collection_names())}


def test_dump_and_restore_round_trip(make_config, store, tmp_path):
    populate(store)
    out = tmp_path / "dump"
    r = cli("dump", "--out", str(out))
    assert r.returncode == 0, r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["collections"]["messages"]["count"] == 1500

    target = Store(store.uri, store.db_name + "_restored")
    try:
        r = cli("restore", "--from", str(out), "--db", target.db_name)
        assert r.returncode == 0, r.stderr
        assert snapshot(target) == snapshot(store)
        d = target.drafts.get("d1")
        assert isinstance(d["approved_at"], datetime) and d["approved_at"].utcoffset() == timedelta(0)
        assert isinstance(d["n"], int) and d["n"] == 2**40
        assert target.drafts.transition("d1", "pending_review", "approved") is None  # status kept

        r = cli("restore", "--from", str(out), "--db", target.db_name)  # re-run: nothing doubled
        assert r.returncode == 0 and "0 inserted" in r.stdout, r.stdout + r.stderr
        assert snapshot(target) == snapshot(store)
    finally:
        target.db.client.drop_database(target.db_name)


def test_restore_refuses_corrupt_or_incomplete_dumps(store, tmp_path):
    populate(store)
    out = tmp_path / "dump"
    assert cli("dump", "--out", str(out)).returncode == 0
    r = cli("dump", "--out", str(out))
    assert r.returncode == 2 and "already holds a dump" in r.stderr

    with open(out / "drafts.jsonl", "a") as f:
        f.write('{"_id": "forged"}\n')
    r = cli("restore", "--from", str(out), "--db", store.db_name + "_x")
    assert r.returncode == 2 and "drafts.jsonl does not match its checksum" in r.stderr
    (out / "manifest.json").unlink()
    r = cli("restore", "--from", str(out), "--db", store.db_name + "_x")
    assert r.returncode == 2 and "no manifest.json" in r.stderr
    assert store.db_name + "_x" not in store.db.client.list_database_names()


def test_missing_environment_is_a_clear_error(tmp_path, monkeypatch):
    for k in ("MONGODB_URI", "RABBITMQ_URL"):
        monkeypatch.delenv(k, raising=False)
    r = cli("dump", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "MONGODB_URI" in r.stderr and "Traceback" not in r.stderr


@pytest.fixture(autouse=True)
def _env(make_config):
    """make_config() exports the test's environment (MONGODB_URI, MONGODB_DB...) for the CLI."""
    make_config()
