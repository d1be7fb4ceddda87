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


OTLP_SCRIPT = r"""
import sys
from contracts import telemetry
telemetry.setup("probe", otlp_endpoint=sys.argv[1], trace_file=sys.argv[2], secrets=("hunter2-secret-key",))
try:
    with telemetry.span("call hunter2-secret-key", message_id="m1") as s:
        s.set_attribute("http.url", "https://ai.example/v1?key=hunter2-secret-key")
        s.set_attribute("tags", ["a", "hunter2-secret-key"])
        raise RuntimeError("auth failed for hunter2-secret-key")
except RuntimeError:
    pass
telemetry.flush()
"""


def test_spans_sent_over_otlp_carry_no_configured_secret(tmp_path):
    """A real OTLP/HTTP receiver gets the span, its attributes, its exception event and its
    status with the secret masked, and so does the JSON-lines file (one mechanism for both)."""
    from aiohttp import web
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from standins.serve import ServedApp

    bodies: list[bytes] = []

    async def traces(request):
        bodies.append(await request.read())
        return web.Response(status=200, content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    with ServedApp(app) as receiver:
        r = subprocess.run([sys.executable, "-c", OTLP_SCRIPT, receiver.url, str(tmp_path / "spans.jsonl")],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr[-2000:]
    assert bodies, "no span reached the OTLP receiver"
    spans = [sp for body in bodies for rs in ExportTraceServiceRequest.FromString(body).resource_spans
             for ss in rs.scope_spans for sp in ss.spans]
    (sent,) = spans
    raw = b"".join(bodies)
    assert b"hunter2-secret-key" not in raw
    assert sent.name == "call **********"
    attrs = {a.key: a.value for a in sent.attributes}
    assert attrs["http.url"].string_value == "https://ai.example/v1?key=**********"
    assert [v.string_value for v in attrs["tags"].array_value.values] == ["a", "**********"]
    assert attrs["message.id"].string_value == "m1"
    (event,) = sent.events
    ev = {a.key: a.value.string_value for a in event.attributes}
    assert event.name == "exception" and ev["exception.message"] == "auth failed for **********"
    assert "RuntimeError" in ev["exception.stacktrace"]
    assert sent.status.message == "RuntimeError: auth failed for **********"
    from contracts.telemetry import read_spans
    (filed,) = read_spans(tmp_path / "spans.jsonl")
    assert "hunter2-secret-key" not in (tmp_path / "spans.jsonl").read_text()
    assert filed["name"] == "call **********"
    assert filed["attributes"]["http.url"] == "https://ai.example/v1?key=**********"
    assert filed["attributes"]["tags"] == str(("a", "**********"))
