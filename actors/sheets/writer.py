"""SheetsWriter: the one Ray actor that appends rows to the Google Sheet.

Correctness rests on MongoDB, not on the actor's memory:
- the buffer is only a cache: every row stands for a message, draft, decision or send already
  stored, so after a crash `start()` re-derives whatever the sheet lacks (rows with no
  `sheet_rows` entry);
- `sheet_rows` (unique row ids) is marked only after Google confirmed the append, and `start()`
  first reads the sheet's row-id column and marks what is there, which closes the window between
  an append and its mark; a write whose outcome is unknown (timeout, 5xx) triggers the same read
  before it is retried, so a row is never appended twice;
- a 429 / 5xx keeps the buffer and backs off with jitter (tenacity); the pacer keeps requests
  under app.sheets.max_writes_per_minute; one append carries a whole batch;
- appends pin their table to A1 (see TABLE_RANGE) and insert rows, so values a person typed
  around the log never move where rows land and the row-id column stays column A.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import gspread
import ray
import requests
from opentelemetry.trace import Link, SpanContext
from pydantic import ValidationError
from tenacity import (AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt,
                      wait_random_exponential)

from actors.sheets.derive import stored_rows
from actors.sheets.pacer import Pacer
from actors.sheets.rows import Row, RowMapper
from actors.sheets.worksheet import open_worksheet
from actors.store import AsyncStore
from contracts import metrics, telemetry
from contracts.errors import PermanentError
from contracts.settings import Config

log = logging.getLogger("replydesk.sheets")

MAX_LINKS = 128  # OpenTelemetry's default span link limit
# values.append looks for a "table" from the range it is given and appends after it, in its first
# column: given the whole sheet, a cell someone typed below or beside the log becomes that table and
# rows land there (shifted right, row ids out of column A, unseen by _reconcile). Pinned to the
# header's first cell, the table is the log itself, so rows always go to column A after its last row.
TABLE_RANGE = "A1"

ROWS_WRITTEN = metrics.counter("replydesk_sheets_rows_written", "Rows confirmed appended to the sheet")
REQUESTS = metrics.counter("replydesk_sheets_requests", "Sheets write requests by outcome", ("outcome",))
BUFFERED = metrics.gauge("replydesk_sheets_buffered", "Rows waiting to be written")


@dataclass
class Pending:
    row: Row
    link: SpanContext | None  # the `sheets.add` span this row arrived under


def _status(exc: BaseException) -> int | None:
    return exc.code if isinstance(exc, gspread.exceptions.APIError) else None


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: rate limited, server error, or the network failed."""
    code = _status(exc)
    if code is not None:
        return code in (408, 429) or code >= 500 or code == -1
    return isinstance(exc, (requests.ConnectionError, requests.Timeout))


@ray.remote(num_cpus=0)
class SheetsWriter:
    """Buffers message/draft rows and appends them in batches; see the module docstring."""

    def __init__(self, config: Config):
        telemetry.setup_from(config, "sheets-writer")
        self.config = config
        self.conf = config.app.sheets
        self.mapper = RowMapper(self.conf.columns)
        self.store = AsyncStore.from_config(config)
        self.pacer = Pacer(self.conf.max_writes_per_minute)
        self.buffer: dict[str, Pending] = {}     # row id -> pending row, in arrival order
        self.unmarked: set[str] = set()   # row ids appended to the sheet, not yet marked in MongoDB
        self.oldest: float | None = None          # monotonic time the oldest buffered row arrived
        self.ws: gspread.Worksheet | None = None
        self.ambiguous = False                    # last write failed with an unknown outcome
        self.lock = asyncio.Lock()
        self.wake = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.last_error: str | None = None
        self.counts = {"rows_written": 0, "requests": 0, "rate_limited": 0, "server_errors": 0,
                       "request_errors": 0,
                       "retries": 0, "duplicates_skipped": 0, "reconciled": 0, "rederived": 0,
                       "rejected": 0, "flush_failures": 0}

    # --- life cycle --------------------------------------------------------------------------

    async def start(self) -> dict[str, Any]:
        """Open the sheet (create worksheet + header when missing), reconcile, re-derive, and
        start the background flusher. Idempotent."""
        with telemetry.span("sheets.start", worksheet=self.conf.worksheet):
            await self.store.ensure_indexes()
            self.ws = await self._retry(open_worksheet, self.config, self.mapper, self.pacer)
            in_sheet = await self._retry(self._reconcile)
            with telemetry.span("sheets.rederive"):
                rederived = self._buffer(await self._missing_rows(), None)
            self.counts["rederived"] += rederived
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run(), name="sheets-flusher")
        log.info("sheets writer started", extra={"in_sheet": in_sheet, "rederived": rederived,
                                                 "worksheet": self.conf.worksheet})
        return {"worksheet": self.conf.worksheet, "rows_in_sheet": in_sheet, "rederived": rederived,
                "buffered": len(self.buffer)}

    async def stop(self) -> int:
        """Stop the background flusher and write what is buffered; returns rows written."""
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
            self.task = None
        return await self.flush() if self.ws is not None else 0

    async def ping(self) -> dict[str, Any]:
        return {"ok": self.ws is not None and (self.task is not None and not self.task.done()),
                "buffered": len(self.buffer), "last_error": self.last_error}

    async def stats(self) -> dict[str, Any]:
        return {**self.counts, "buffered": len(self.buffer), "last_error": self.last_error,
                "max_writes_per_minute": self.conf.max_writes_per_minute}

    # --- intake ------------------------------------------------------------------------------

    async def add(self, events: list[dict[str, Any]], carrier: dict[str, str] | None = None) -> int:
        """Buffer the rows of the events the sheet logs (see actors/sheets/rows.py; others are ignored).

        Rows already buffered or already in the sheet are skipped; returns how many were new.
        A malformed event is logged and counted, never fatal: its row comes back from MongoDB
        when the writer next starts."""
        rows: list[Row] = []
        for event in events:
            try:
                row = self.mapper.from_event(event)
            except (KeyError, TypeError, AttributeError, ValidationError) as exc:
                self.counts["rejected"] += 1
                log.error("sheets: cannot map event to a row",
                          extra={"event_id": str(event.get("event_id")) if isinstance(event, dict) else None,
                                 "event_type": str(event.get("type")) if isinstance(event, dict) else None,
                                 "error": f"{type(exc).__name__}: {exc}"})
                continue
            if row is not None:
                rows.append(row)
        if not rows:
            return 0
        with telemetry.span("sheets.add", carrier, rows=len(rows)) as s:
            new = await self._fresh(rows)
            return self._buffer(new, s.get_span_context())

    async def _fresh(self, rows: list[Row]) -> list[Row]:
        """Rows neither buffered nor already recorded as written."""
        candidates = {r.row_id: r for r in rows if r.row_id not in self.buffer
                      and r.row_id not in self.unmarked}
        done = await self.store.sheet_rows.present(list(candidates))
        self.counts["duplicates_skipped"] += len(rows) - len(candidates) + len(done)
        return [r for rid, r in candidates.items() if rid not in done]

    def _buffer(self, rows: list[Row], link: SpanContext | None) -> int:
        added = 0
        for r in rows:
            if r.row_id not in self.buffer and r.row_id not in self.unmarked:
                self.buffer[r.row_id] = Pending(r, link if link and link.is_valid else None)
                added += 1
        if added and self.oldest is None:
            self.oldest = time.monotonic()
        BUFFERED.set(len(self.buffer))
        if added:
            self.wake.set()
        return added

    # --- writing -----------------------------------------------------------------------------

    async def flush(self) -> int:
        """Append everything buffered, one request per batch; returns rows written.

        Raises (keeping the buffer) when the sheet stays unavailable after max_attempts."""
        if self.ws is None:
            raise RuntimeError("SheetsWriter.start() must succeed before flush()")
        written = 0
        async with self.lock:
            await self._mark_appended()
            while self.buffer:
                chunk = list(self.buffer.values())[:self.conf.max_rows_per_request]
                written += await self._write(chunk)
            self.oldest = None
        return written

    async def _write(self, chunk: list[Pending]) -> int:
        links = list({(p.link.trace_id, p.link.span_id): p.link
                      for p in chunk if p.link}.values())[:MAX_LINKS]
        with telemetry.tracer().start_as_current_span(
                "sheets.write", links=[Link(c) for c in links],
                attributes={"rows": len(chunk), "worksheet": self.conf.worksheet}) as s:
            done = await self.store.sheet_rows.present([p.row.row_id for p in chunk])
            if done:
                self._drop(done)
                chunk = [p for p in chunk if p.row.row_id not in done]
            chunk = await self._retry(self._append, chunk)
            ids = [p.row.row_id for p in chunk]
            # in the sheet now: out of the buffer before the mark, so a failed mark (MongoDB
            # down) never appends them again; the mark is retried by the next flush
            self.unmarked.update(ids)
            self._drop(set(ids))
            s.set_attribute("written", len(ids))
        self.counts["rows_written"] += len(ids)
        if ids:
            ROWS_WRITTEN.inc(len(ids))
        await self._mark_appended()
        return len(ids)

    async def _mark_appended(self) -> None:
        """Record in MongoDB the rows appended but not yet marked (raises while it is down)."""
        if self.unmarked:
            ids = sorted(self.unmarked)
            await self.store.sheet_rows.mark(ids)
            self.unmarked.difference_update(ids)

    async def _append(self, chunk: list[Pending]) -> list[Pending]:
        """One attempt: after an unknown-outcome failure, first learn what the sheet already has."""
        if self.ambiguous:
            await self._reconcile()
            chunk = [p for p in chunk if p.row.row_id in self.buffer]
            self.ambiguous = False
        if not chunk:
            return chunk
        await self.pacer.wait()
        self.counts["requests"] += 1
        try:  # gspread is synchronous (blocking HTTP): in a thread, the event loop stays free
            await asyncio.to_thread(self.ws.append_rows, [p.row.values for p in chunk],
                                    value_input_option="RAW", insert_data_option="INSERT_ROWS",
                                    table_range=TABLE_RANGE)
        except BaseException as exc:  # also cancellation: the thread's request may still land
            code = _status(exc)
            self.counts["rate_limited" if code == 429 else
                        "server_errors" if code and code >= 500 else "request_errors"] += 1
            REQUESTS.inc(tags={"outcome": str(code or type(exc).__name__)})
            self.ambiguous = code != 429  # a 429 was refused; anything else may have landed
            raise
        REQUESTS.inc(tags={"outcome": "ok"})
        return chunk

    def _drop(self, ids: set[str]) -> None:
        for rid in ids:
            self.buffer.pop(rid, None)
        BUFFERED.set(len(self.buffer))

    async def _run(self) -> None:
        """Background flusher: when batch_size rows wait, or the oldest has waited linger_s."""
        while True:
            if not self.buffer and not self.unmarked:
                self.wake.clear()
                await self.wake.wait()
                continue
            age = time.monotonic() - (self.oldest or time.monotonic())
            if self.buffer and len(self.buffer) < self.conf.batch_size and age < self.conf.linger_s:
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), self.conf.linger_s - age)
                except asyncio.TimeoutError:
                    pass
                continue
            try:
                await self.flush()
                self.last_error = None
            except Exception as exc:  # keep the buffer, wait, try again
                self.counts["flush_failures"] += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error("sheets flush failed; rows kept for the next attempt",
                          extra={"buffered": len(self.buffer), "error": self.last_error})
                await asyncio.sleep(self.conf.backoff_max_s)

    async def _retry(self, fn: Callable, *args: Any) -> Any:
        """Run `fn` (a coroutine function) with tenacity: exponential backoff, full jitter."""
        retrying = AsyncRetrying(
            retry=retry_if_exception(is_transient),
            wait=wait_random_exponential(multiplier=self.conf.backoff_initial_s,
                                         max=self.conf.backoff_max_s),
            stop=stop_after_attempt(self.conf.max_attempts),
            before_sleep=self._before_sleep, reraise=True)
        try:
            return await retrying(fn, *args)
        except gspread.exceptions.APIError as exc:
            if is_transient(exc):
                raise
            raise PermanentError(f"Sheets API refused the request: {exc}") from None

    def _before_sleep(self, state: RetryCallState) -> None:
        self.counts["retries"] += 1
        exc = state.outcome.exception() if state.outcome else None
        log.warning("sheets request failed; backing off", extra={
            "attempt": state.attempt_number, "error": f"{type(exc).__name__}: {exc}",
            "wait_s": round(state.next_action.sleep, 3) if state.next_action else None})

    # --- start-up ----------------------------------------------------------------------------

    async def _reconcile(self) -> int:
        """Mark every row id the sheet holds as written and drop those from the buffer."""
        assert self.ws is not None
        col = await asyncio.to_thread(self.ws.col_values, 1)  # gspread blocks on HTTP: a thread
        ids = [v for v in col[1:] if v]
        await self.store.sheet_rows.mark(ids)
        self.unmarked.difference_update(ids)
        before = len(self.buffer)
        self._drop(set(ids))
        self.counts["reconciled"] += before - len(self.buffer)
        return len(ids)

    async def _missing_rows(self) -> list[Row]:
        """Every row MongoDB stands for that has no sheet_rows entry: what a crash kept out of
        the sheet (or everything, for a sheet configured after the first messages)."""
        rows: list[Row] = []
        async for page in stored_rows(self.store, self.mapper):
            done = await self.store.sheet_rows.present([r.row_id for r in page])
            rows.extend(r for r in page if r.row_id not in done)
        return rows
