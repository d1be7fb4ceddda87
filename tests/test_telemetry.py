"""Structured logs carry the trace id; unhandled errors are logged; span attributes are canonical."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import logging, threading, sys
from contracts import telemetry
telemetry.setup("probe", trace_file=sys.argv[1])
log = logging.getLogger("probe")
with telemetry.span("outer", account="h1", message_id="m1", event_id="e1") as s:
    log.info("inside", extra={"conversation_id": "c1"})
    carrier = telemetry.inject()
with telemetry.span("child", carrier):
    pass
with telemetry.span("fresh", root=True):
    pass
def boom():
    raise ValueError("kaput in a thread")
t = threading.Thread(target=boom, name="worker-x"); t.start(); t.join()
"""


def test_logs_spans_and_unhandled_errors(tmp_path):
    spans_file = tmp_path / "spans.jsonl"
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(spans_file)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    lines = [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]
    inside = next(line for line in lines if line["msg"] == "inside")
    assert inside["service"] == "probe" and inside["level"] == "info"
    assert inside["conversation_id"] == "c1" and len(inside["trace_id"]) == 32
    crash = next(line for line in lines if line["logger"] == "replydesk.unhandled")
    assert crash["level"] == "critical" and crash["thread_name"] == "worker-x"
    assert "kaput in a thread" in crash["exc"]

    from contracts.telemetry import read_spans
    spans = {s["name"]: s for s in read_spans(spans_file)}
    outer, child, fresh = spans["outer"], spans["child"], spans["fresh"]
    assert outer["attributes"] == {"account.hash": "h1", "message.id": "m1", "event.id": "e1"}
    assert outer["trace_id"] == inside["trace_id"]
    assert child["trace_id"] == outer["trace_id"] and child["parent_id"] == outer["span_id"]
    assert fresh["parent_id"] is None and fresh["trace_id"] != outer["trace_id"]
