"""Tracing (OpenTelemetry) and structured JSON logs carrying the trace id.

Every process (driver, each Ray actor) calls `setup()` once. Context crosses Ray calls and AMQP
messages as a W3C `traceparent` carrier dict (`inject()` / `extract()`).
Exporters: OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set; a JSON-lines file when
REPLYDESK_TRACE_FILE is set (tests and the demo read it); otherwise tracing is off.
"""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (BatchSpanProcessor, SimpleSpanProcessor, SpanExporter,
                                            SpanExportResult)
from opentelemetry.trace import Status
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

_PROPAGATOR = TraceContextTextMapPropagator()
_lock = threading.Lock()
_configured: str | None = None
_secrets: set[str] = set()


class JsonFileSpanExporter(SpanExporter):
    """Appends one JSON object per finished span to a file shared by all processes on the node
    (set up behind `RedactingSpanExporter`, like every exporter)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def export(self, spans: "list[ReadableSpan]") -> SpanExportResult:
        lines = []
        for s in spans:
            ctx = s.get_span_context()
            lines.append(json.dumps({
                "name": s.name,
                "trace_id": format(ctx.trace_id, "032x"),
                "span_id": format(ctx.span_id, "016x"),
                "parent_id": format(s.parent.span_id, "016x") if s.parent else None,
                "service": s.resource.attributes.get("service.name"),
                "start": s.start_time, "end": s.end_time,
                "status": s.status.status_code.name,
                "attributes": {k: (v if isinstance(v, (str, int, float, bool)) else str(v))
                               for k, v in (s.attributes or {}).items()},
            }))
        with self._lock, open(self.path, "a", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:  # nothing buffered
        return None


class RedactingSpanExporter(SpanExporter):
    """Hands the wrapped exporter copies of the spans with every registered secret masked in the
    name, the attributes, the events (an exception's message and stack) and the status text, so a
    secret that reached a span never leaves the process (OTLP, or any exporter)."""

    def __init__(self, inner: SpanExporter):
        self.inner = inner

    def export(self, spans: "list[ReadableSpan]") -> SpanExportResult:
        return self.inner.export([redact_span(s) for s in spans] if _secrets else spans)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return _redact(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_redact_value(v) for v in value)
    return value


def _redact_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: _redact_value(v) for k, v in (attributes or {}).items()}


def redact_span(span: ReadableSpan) -> ReadableSpan:
    """A copy of `span` with every registered secret masked (the span itself is left alone)."""
    status = span.status
    if status.description:
        status = Status(status.status_code, _redact(status.description))
    return ReadableSpan(
        name=_redact(span.name), context=span.get_span_context(), parent=span.parent,
        resource=span.resource, attributes=_redact_attributes(span.attributes),
        events=[Event(_redact(e.name), _redact_attributes(e.attributes), e.timestamp) for e in span.events],
        links=span.links, kind=span.kind, status=status, start_time=span.start_time,
        end_time=span.end_time, instrumentation_scope=span.instrumentation_scope)


def read_spans(path: Path | str) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def register_secret(value: str | None) -> None:
    """Belt and braces: a registered secret value is masked in any log line that contains it."""
    if value and len(value) >= 4:
        _secrets.add(value)


def redact(text: str) -> str:
    """`text` with every registered secret masked (for anything shown to a person)."""
    return _redact(text)


def _redact(text: str) -> str:
    for s in _secrets:
        if s in text:
            text = text.replace(s, "**********")
    return text


class JsonFormatter(_BaseJsonFormatter):
    """One JSON object per line (python-json-logger): ts, level, service, logger, msg, the trace and
    span ids of the current span, every `extra` field (non-JSON values as text), `exc` with the
    traceback; the whole line with every registered secret masked."""

    def __init__(self, service: str):
        super().__init__("%(message)s", rename_fields={"message": "msg", "exc_info": "exc"},
                         static_fields={"service": service}, json_default=str, json_ensure_ascii=False)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        log_data["ts"] = datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
        log_data["level"] = record.levelname.lower()
        log_data["logger"] = record.name
        super().add_fields(log_data, record, message_dict)
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            log_data["trace_id"] = format(ctx.trace_id, "032x")
            log_data["span_id"] = format(ctx.span_id, "016x")

    def format(self, record: logging.LogRecord) -> str:
        return _redact(super().format(record))


def setup(service: str, *, trace_file: Path | str | None = None, otlp_endpoint: str | None = None,
          log_level: str = "INFO", secrets: tuple[str | None, ...] = ()) -> None:
    """Configure logging and tracing for this process (idempotent)."""
    global _configured
    for s in secrets:
        register_secret(s)
    with _lock:
        if _configured is not None:
            return
        _configured = service
        handler = _log_handler(service)
        handler.setFormatter(JsonFormatter(service))
        root = logging.getLogger()
        for h in list(root.handlers):
            root.removeHandler(h)
        root.addHandler(handler)
        root.setLevel(log_level.upper())
        for noisy in ("pika", "urllib3", "asyncio", "aiohttp.access"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        _install_excepthooks()

        trace_file = trace_file or os.environ.get("REPLYDESK_TRACE_FILE")
        otlp_endpoint = otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        if not (trace_file or otlp_endpoint):
            return
        provider = TracerProvider(resource=Resource.create({"service.name": service,
                                                            "service.namespace": "replydesk"}))
        if trace_file:
            provider.add_span_processor(SimpleSpanProcessor(RedactingSpanExporter(
                JsonFileSpanExporter(Path(trace_file)))))
        if otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            provider.add_span_processor(BatchSpanProcessor(RedactingSpanExporter(
                OTLPSpanExporter(endpoint=otlp_endpoint.rstrip("/") + "/v1/traces"))))
        trace.set_tracer_provider(provider)


LOG_DIR_ENV = "REPLYDESK_LOG_DIR"


def _log_handler(service: str) -> logging.Handler:
    """stderr, or with REPLYDESK_LOG_DIR set (the quiet demo console) the file
    `<dir>/<service>.jsonl`, appended to by every process of that service (line by line)."""
    log_dir = os.environ.get(LOG_DIR_ENV)
    if not log_dir:
        return logging.StreamHandler(sys.stderr)
    path = Path(log_dir) / f"{service.replace('/', '_').replace(':', '_')}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    return logging.FileHandler(path, encoding="utf-8")


def _install_excepthooks() -> None:
    """The global error handler: anything unhandled, in any thread, is logged as one JSON line
    with its stack and trace id before the default behaviour runs."""
    crash_log = logging.getLogger("replydesk.unhandled")
    previous_sys, previous_thread = sys.excepthook, threading.excepthook

    def on_exception(exc_type, exc, tb):
        if not issubclass(exc_type, KeyboardInterrupt):
            crash_log.critical("unhandled exception", exc_info=(exc_type, exc, tb))
        previous_sys(exc_type, exc, tb)

    def on_thread_exception(args):
        crash_log.critical("unhandled exception in thread",
                           exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
                           extra={"thread_name": args.thread.name if args.thread else None})
        previous_thread(args)

    sys.excepthook = on_exception
    threading.excepthook = on_thread_exception


def setup_from(config: Any, service: str) -> None:
    """setup() from a contracts.settings.Config."""
    s = config.settings
    setup(service, trace_file=s.trace_file, otlp_endpoint=s.otel_endpoint, log_level=s.log_level,
          secrets=tuple(config.secret_values()))


@functools.lru_cache(maxsize=None)
def tracer(name: str = "replydesk") -> trace.Tracer:
    """Cached: get_tracer is costly per span, and the proxy it returns follows a provider set later."""
    return trace.get_tracer(name)


def inject() -> dict[str, str]:
    """The current trace context as a carrier dict (for Ray call arguments and AMQP headers)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier


def extract(carrier: Mapping[str, Any] | None) -> otel_context.Context:
    return _PROPAGATOR.extract({k: str(v) for k, v in (carrier or {}).items()})


# One name per concept on every span, whichever module sets it (keyword arguments can't hold dots).
ATTRIBUTE_NAMES = {"account": "account.hash", "account_hash": "account.hash",
                   "conversation_id": "conversation.id", "message_id": "message.id",
                   "event_id": "event.id", "draft_id": "draft.id", "routing_key": "messaging.routing_key",
                   "consumer": "messaging.consumer", "site": "site.name"}


def attributes(**kw: Any) -> dict[str, Any]:
    """Span attributes under their canonical names; None values dropped."""
    return {ATTRIBUTE_NAMES.get(k, k): v for k, v in kw.items() if v is not None}


@contextlib.contextmanager
def span(name: str, carrier: Mapping[str, Any] | None = None, *, root: bool = False,
         **attrs: Any) -> Iterator[trace.Span]:
    """A span: a new trace when `root`, else a child of `carrier`'s context when given, else of
    the current context. Common keywords (account, conversation_id, message_id, event_id...) get
    their dotted names."""
    ctx = otel_context.Context() if root else (extract(carrier) if carrier else None)
    # start_span + use_span is what start_as_current_span does, without its two extra layers of
    # generator context managers (the proxy tracer's and the real one's): a third less per span
    with trace.use_span(tracer().start_span(name, context=ctx, attributes=attributes(**attrs)),
                        end_on_exit=True) as s:
        yield s


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def flush() -> None:
    provider = trace.get_tracer_provider()
    if hasattr(provider, "force_flush"):
        provider.force_flush()
