"""The supervisor as ops run it: `ray start --head` + `ray job submit -- python -m supervisor`
against a cluster of its own (CLI only: the shared in-process Ray of the test run is untouched),
with the stand-ins as the outside world and the real conf/replydesk.yaml."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from actors.store import Store
from contracts import settings
from contracts.telemetry import read_spans
from standins.stack import start_stack
from supervisor import runner
from tests.helpers import wait_for
from tests.raycli import start_head

ROOT = Path(__file__).resolve().parents[1]
EXCLUDES = [".venv", ".git", "artifacts", "var", ".pytest_cache", ".ruff_cache"]   # what a job's --working-dir upload leaves out

CONVERSATIONS = [
    ("c-ann", "Ann", "Hi! Do you like hiking? Any favourite trails?"),
    ("c-ben", "Ben", "Hello, what kind of music are you into?"),
    ("c-cleo", "Cleo", "Hey there, are you free for coffee on Saturday?"),
]
DURATION_S = 20


@pytest.fixture
def stack(monkeypatch, mongo_uri, rabbit_url):
    monkeypatch.setenv("MONGODB_URI", mongo_uri)  # the run's MongoDB-wire server, own database
    monkeypatch.setenv("RABBITMQ_URL", rabbit_url)
    s = start_stack("job" + uuid.uuid4().hex[:8])
    yield s
    Store(s.env["MONGODB_URI"], s.env["MONGODB_DB"]).db.client.drop_database(s.env["MONGODB_DB"])
    for k, v in s.env.items():
        monkeypatch.setenv(k, v)
    runner.decommission(settings.load())   # the job's queues and exchanges
    s.close()


@pytest.fixture
def head():
    h = start_head({"browser": 8}, num_cpus=2)
    yield h
    h.stop()


@pytest.mark.timeout(180)
def test_job_submit_runs_the_demo_flow(head, stack, tmp_path):
    site_ids = [stack.site.inject(conv, sender, text) for conv, sender, text in CONVERSATIONS]
    trace_file = tmp_path / "spans.jsonl"
    job_id = "replydesk-" + uuid.uuid4().hex[:8]
    runtime_env = {"env_vars": {**stack.env, "REPLYDESK_TRACE_FILE": str(trace_file)},
                   "excludes": EXCLUDES}

    submit = head.cli("job", "submit", "--no-wait", "--address", head.dashboard_url,
                      "--submission-id", job_id, "--working-dir", str(ROOT),
                      "--runtime-env-json", json.dumps(runtime_env),
                      "--", "python", "-m", "supervisor", "--duration", str(DURATION_S), timeout=150)
    assert submit.returncode == 0, submit.stdout + submit.stderr

    # while it runs, replydesk's Ray metrics show up on the node's metrics endpoint
    wanted_metrics = ("ray_replydesk_messages_seen_total", "ray_replydesk_queue_depth",
                      "ray_replydesk_events_consumed_total", "ray_replydesk_ai_latency_seconds")
    exported = wait_for(lambda: (text := head.metrics()) and all(m in text for m in wanted_metrics)
                        and text, timeout=DURATION_S + 20, interval=1.0,
                        what="replydesk metrics on the metrics endpoint")
    assert 'ray_replydesk_messages_seen_total{' in exported

    follow = head.cli("job", "logs", "--follow", "--address", head.dashboard_url, job_id, timeout=150)
    logs = follow.stdout + follow.stderr
    assert head.job(job_id)["status"] == "SUCCEEDED", logs[-4000:]
    for secret in ("MEETME_PASSWORD", "AI_API_KEY", "REVIEW_TOKEN"):
        assert stack.env[secret] not in logs, f"{secret} leaked into the job's logs"

    # the job's own last line: every child was running until shutdown, none failed
    final = json.loads(next(line for line in reversed(logs.splitlines()) if line.startswith('{"status"')))
    assert final["failed"] == [] and set(final["status"]) == {"running"}, final
    assert final["summary"]["messages"] == len(CONVERSATIONS)
    assert final["summary"]["outbox_unpublished"] == 0

    # every injected message stored once, one draft each waiting for a person, rows in the sheet
    store = Store(stack.env["MONGODB_URI"], stack.env["MONGODB_DB"])
    msgs = {m["site_message_id"]: m for m in store.messages.coll.find()}
    assert sorted(msgs) == sorted(site_ids)
    drafts = list(store.drafts.coll.find())
    assert sorted(d["conversation_id"] for d in drafts) == sorted(c for c, _, _ in CONVERSATIONS)
    assert all(d["status"] == "pending_review" for d in drafts)
    row_ids = [r[0] for r in stack.sheets.rows()[1:]]
    wanted = [m["_id"] for m in msgs.values()] + [d["_id"] for d in drafts]
    assert sorted(row_ids) == sorted(wanted)   # each exactly once

    # the job's actors traced the flow into the file the runtime env named
    spans = read_spans(trace_file)
    seen = [s for s in spans if s["name"] == "browser.message_seen"]
    assert len(seen) == len(CONVERSATIONS)
    assert {"browser.message_seen", "ai.draft", "sheets.add"} <= {s["name"] for s in spans}

    assert head.stop() == [], "Ray processes left behind after the head was stopped"
