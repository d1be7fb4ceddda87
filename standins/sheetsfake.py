"""A small in-memory Google Sheets v4 server: the endpoints gspread 6.2 uses, plus an admin API.

No Sheets emulator exists, so tests and the demo point gspread here (SHEETS_API_URL). Beside the
Sheets endpoints it records every request with a timestamp (so tests can check the write rate the
writer keeps) and injects faults (429 / 500, by ratio or for the next N requests, and an optional
per-minute write quota like Google's) so retry behaviour is exercised against real HTTP.

Admin API (JSON):
  POST /_admin/reset                                   forget everything (spreadsheets, log, faults)
  POST /_admin/spreadsheets  {"id", "title"?, "sheets"?: [titles]}   create a spreadsheet
  GET  /_admin/spreadsheets/{id}/rows?sheet=TITLE      {"rows": [[...], ...]}
  GET  /_admin/requests                                {"counts": {endpoint: n}, "log": [...]}
  POST /_admin/faults {"ratio_429", "ratio_500", "next_429", "next_500", "next_500_applied",
                       "endpoints", "write_quota_per_minute", "seed"}  (omitted keys keep their value)
       next_500_applied: the write takes effect but the client gets a 500 (a lost response).

Run alone: `python -m standins.sheetsfake --port 8303`.
"""
from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from standins.admin import AdminClient

WRITE_ENDPOINTS = ("values_append", "values_update", "values_batch_update", "batch_update")
FAKE: web.AppKey["SheetsFake"] = web.AppKey("fake")
_CELL = re.compile(r"^([A-Za-z]*)(\d*)$")


class SheetsError(Exception):
    """An error answered in Google's JSON error shape."""

    def __init__(self, code: int, status: str, message: str, applied: bool = False):
        super().__init__(message)
        self.code, self.status, self.message = code, status, message
        self.applied = applied  # the request takes effect, but its answer is an error


@dataclass
class Worksheet:
    sheet_id: int
    title: str
    index: int
    row_count: int = 1000
    column_count: int = 26
    rows: list[list[Any]] = field(default_factory=list)

    def properties(self) -> dict[str, Any]:
        return {"sheetId": self.sheet_id, "title": self.title, "index": self.index,
                "sheetType": "GRID",
                "gridProperties": {"rowCount": self.row_count, "columnCount": self.column_count}}

    def last_data_row(self) -> int:
        """1-based number of the last row holding any value (0 when empty)."""
        for i in range(len(self.rows), 0, -1):
            if any(v not in ("", None) for v in self.rows[i - 1]):
                return i
        return 0

    def write(self, row: int, col: int, values: list[list[Any]]) -> None:
        """Write a block of values with its top-left cell at (row, col), both 1-based."""
        for i, vals in enumerate(values):
            r = row - 1 + i
            while len(self.rows) <= r:
                self.rows.append([])
            line = self.rows[r]
            need = col - 1 + len(vals)
            if len(line) < need:
                line.extend([""] * (need - len(line)))
            for j, v in enumerate(vals):
                line[col - 1 + j] = "" if v is None else v
        self.row_count = max(self.row_count, len(self.rows))
        self.column_count = max(self.column_count, max((len(r) for r in self.rows), default=0))


@dataclass
class Spreadsheet:
    id: str
    title: str
    sheets: list[Worksheet]
    next_sheet_id: int = 1

    def metadata(self) -> dict[str, Any]:
        return {"spreadsheetId": self.id,
                "properties": {"title": self.title, "locale": "en_US", "timeZone": "Etc/UTC"},
                "sheets": [{"properties": s.properties()} for s in self.sheets],
                "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{self.id}/edit"}

    def sheet(self, title: str | None) -> Worksheet:
        if title is None:
            return self.sheets[0]
        for s in self.sheets:
            if s.title == title:
                return s
        raise SheetsError(400, "INVALID_ARGUMENT", f"Unable to parse range: {title!r}")

    def add_sheet(self, title: str, rows: int = 1000, cols: int = 26) -> Worksheet:
        if any(s.title == title for s in self.sheets):
            raise SheetsError(400, "INVALID_ARGUMENT",
                              f'A sheet with the name "{title}" already exists.')
        ws = Worksheet(self.next_sheet_id, title, len(self.sheets), rows, cols)
        self.next_sheet_id += 1
        self.sheets.append(ws)
        return ws


@dataclass
class A1:
    """A parsed A1 range; bounds are 1-based and None when open."""
    sheet: str | None
    r1: int | None
    c1: int | None
    r2: int | None
    c2: int | None


def _col_number(letters: str) -> int:
    n = 0
    for ch in letters.upper():
        n = n * 26 + (ord(ch) - 64)
    return n


def _col_letters(n: int) -> str:
    s = ""
    while n:
        n, rem = divmod(n - 1, 26)
        s = chr(65 + rem) + s
    return s


def _cell(text: str) -> tuple[int | None, int | None]:
    m = _CELL.match(text)
    if not m or not (m.group(1) or m.group(2)):
        raise SheetsError(400, "INVALID_ARGUMENT", f"Unable to parse range: {text!r}")
    return (int(m.group(2)) if m.group(2) else None,
            _col_number(m.group(1)) if m.group(1) else None)


def parse_a1(rng: str) -> A1:
    """'Sheet'!A1:B2, Sheet!A:A, A1, 'It''s' ... as the Sheets API accepts them."""
    sheet: str | None = None
    rest = rng
    if rng.startswith("'"):
        i, name = 1, []
        while i < len(rng):
            if rng[i] == "'":
                if rng[i + 1:i + 2] == "'":
                    name.append("'")
                    i += 2
                    continue
                break
            name.append(rng[i])
            i += 1
        sheet, rest = "".join(name), rng[i + 1:]
        rest = rest[1:] if rest.startswith("!") else rest
    elif "!" in rng:
        sheet, rest = rng.split("!", 1)
    elif rng and not _CELL.match(rng.split(":")[0]):
        sheet, rest = rng, ""
    if not rest:
        return A1(sheet, None, None, None, None)
    a, _, b = rest.partition(":")
    r1, c1 = _cell(a)
    r2, c2 = _cell(b) if b else (r1, c1)
    return A1(sheet, r1, c1, r2, c2)


def _a1_text(title: str, r1: int, c1: int, r2: int, c2: int) -> str:
    quoted = "'" + title.replace("'", "''") + "'"
    return f"{quoted}!{_col_letters(c1)}{r1}:{_col_letters(c2)}{r2}"


class SheetsFake:
    """State of the fake: spreadsheets, request log and fault settings."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.spreadsheets: dict[str, Spreadsheet] = {}
        self.log: list[dict[str, Any]] = []
        self.faults: dict[str, Any] = {"ratio_429": 0.0, "ratio_500": 0.0, "next_429": 0,
                                       "next_500": 0, "next_500_applied": 0,
                                       "endpoints": list(WRITE_ENDPOINTS),
                                       "write_quota_per_minute": None}
        self.rng = random.Random(0)

    def spreadsheet(self, sid: str) -> Spreadsheet:
        ss = self.spreadsheets.get(sid)
        if ss is None:
            raise SheetsError(404, "NOT_FOUND", "Requested entity was not found.")
        return ss

    def fault_for(self, endpoint: str, now: float) -> SheetsError | None:
        """The injected error this request gets, if any (checked before the request runs)."""
        f = self.faults
        if endpoint not in f["endpoints"]:
            return None
        quota = f["write_quota_per_minute"]
        if quota and endpoint in WRITE_ENDPOINTS:
            recent = sum(1 for e in self.log if e["endpoint"] in WRITE_ENDPOINTS
                         and e.get("applied") and now - e["t"] < 60)
            if recent >= quota:
                return SheetsError(429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric "
                                   "'Write requests' and limit 'Write requests per minute per user'")
        if f["next_429"] > 0:
            f["next_429"] -= 1
            return SheetsError(429, "RESOURCE_EXHAUSTED", "Injected: too many requests")
        if f["next_500"] > 0:
            f["next_500"] -= 1
            return SheetsError(500, "INTERNAL", "Injected: internal error")
        if f["next_500_applied"] > 0:
            f["next_500_applied"] -= 1
            return SheetsError(500, "INTERNAL", "Injected: internal error after the write applied",
                               applied=True)
        roll = self.rng.random()
        if roll < f["ratio_429"]:
            return SheetsError(429, "RESOURCE_EXHAUSTED", "Injected: too many requests")
        if roll < f["ratio_429"] + f["ratio_500"]:
            return SheetsError(500, "INTERNAL", "Injected: internal error")
        return None

    # --- Sheets v4 operations -------------------------------------------------------------

    def values_get(self, ss: Spreadsheet, rng: str, major: str = "ROWS") -> dict[str, Any]:
        a = parse_a1(rng)
        ws = ss.sheet(a.sheet)
        r1, c1 = a.r1 or 1, a.c1 or 1
        r2 = a.r2 or max(len(ws.rows), 1)
        c2 = a.c2 or max((len(r) for r in ws.rows), default=1) or 1
        block = [[(line[c] if c < len(line) else "") for c in range(c1 - 1, c2)]
                 for line in (ws.rows[r - 1] if r - 1 < len(ws.rows) else [] for r in range(r1, r2 + 1))]
        if major == "COLUMNS":
            block = [list(col) for col in zip(*block)] if block else []
        block = [_rstrip(v) for v in block]
        while block and not block[-1]:
            block.pop()
        out: dict[str, Any] = {"range": _a1_text(ws.title, r1, c1, r2, c2), "majorDimension": major}
        if block:
            out["values"] = block
        return out

    def values_update(self, ss: Spreadsheet, rng: str, values: list[list[Any]],
                      major: str = "ROWS") -> dict[str, Any]:
        a = parse_a1(rng)
        ws = ss.sheet(a.sheet)
        if major == "COLUMNS":
            values = [list(r) for r in zip(*values)]
        r1, c1 = a.r1 or 1, a.c1 or 1
        ws.write(r1, c1, values)
        return _updated(ss.id, ws.title, r1, c1, values)

    def values_append(self, ss: Spreadsheet, rng: str, values: list[list[Any]]) -> dict[str, Any]:
        a = parse_a1(rng)
        ws = ss.sheet(a.sheet)
        c1 = a.c1 or 1
        start = ws.last_data_row() + 1
        table = _a1_text(ws.title, 1, c1, max(start - 1, 1), c1 + max((len(v) for v in values), default=1) - 1)
        ws.write(start, c1, values)
        return {"spreadsheetId": ss.id, "tableRange": table,
                "updates": _updated(ss.id, ws.title, start, c1, values)}

    def batch_update(self, ss: Spreadsheet, requests: list[dict[str, Any]]) -> dict[str, Any]:
        replies: list[dict[str, Any]] = []
        for req in requests:
            if "addSheet" in req:
                p = req["addSheet"].get("properties", {})
                grid = p.get("gridProperties", {})
                ws = ss.add_sheet(p.get("title") or f"Sheet{ss.next_sheet_id}",
                                  grid.get("rowCount", 1000), grid.get("columnCount", 26))
                replies.append({"addSheet": {"properties": ws.properties()}})
            elif "updateSheetProperties" in req:
                p = req["updateSheetProperties"]["properties"]
                ws = next((s for s in ss.sheets if s.sheet_id == p.get("sheetId")), None)
                if ws is None:
                    raise SheetsError(400, "INVALID_ARGUMENT", f"No grid with id: {p.get('sheetId')}")
                grid = p.get("gridProperties", {})
                ws.title = p.get("title", ws.title)
                ws.row_count = grid.get("rowCount", ws.row_count)
                ws.column_count = grid.get("columnCount", ws.column_count)
                replies.append({})
            else:
                raise SheetsError(400, "INVALID_ARGUMENT",
                                  f"The fake does not support request {sorted(req)}")
        return {"spreadsheetId": ss.id, "replies": replies}


def _rstrip(values: list[Any]) -> list[Any]:
    values = list(values)
    while values and values[-1] in ("", None):
        values.pop()
    return values


def _updated(sid: str, title: str, r1: int, c1: int, values: list[list[Any]]) -> dict[str, Any]:
    width = max((len(v) for v in values), default=0)
    return {"spreadsheetId": sid,
            "updatedRange": _a1_text(title, r1, c1, r1 + max(len(values), 1) - 1, c1 + max(width, 1) - 1),
            "updatedRows": len(values), "updatedColumns": width,
            "updatedCells": sum(len(v) for v in values)}


def _error(exc: SheetsError) -> web.Response:
    return web.json_response({"error": {"code": exc.code, "message": exc.message,
                                        "status": exc.status}}, status=exc.code)


def make_app() -> web.Application:
    fake = SheetsFake()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[FAKE] = fake

    def endpoint(name: str):
        """Wrap a handler: log it with a timestamp, inject faults, map errors to Google's shape."""
        def wrap(fn):
            async def handler(request: web.Request) -> web.Response:
                now = time.time()
                entry: dict[str, Any] = {"t": now, "endpoint": name, "method": request.method,
                                         "path": request.path}
                fake.log.append(entry)
                try:
                    fault = fake.fault_for(name, now)
                    if fault is not None and not fault.applied:
                        raise fault
                    body = await request.json() if request.body_exists else {}
                    result = fn(request, fake.spreadsheet(request.match_info["sid"]), body)
                    entry["applied"] = True
                    if fault is not None:
                        raise fault
                    entry["status"] = 200
                    entry["rows"] = len(body.get("values", [])) if isinstance(body, dict) else 0
                    return web.json_response(result)
                except SheetsError as exc:
                    entry["status"] = exc.code
                    return _error(exc)
            return handler
        return wrap

    @endpoint("get_spreadsheet")
    def get_spreadsheet(request, ss, body):
        return ss.metadata()

    @endpoint("values_get")
    def values_get(request, ss, body):
        return fake.values_get(ss, request.match_info["rng"], request.query.get("majorDimension", "ROWS"))

    @endpoint("values_batch_get")
    def values_batch_get(request, ss, body):
        major = request.query.get("majorDimension", "ROWS")
        return {"spreadsheetId": ss.id,
                "valueRanges": [fake.values_get(ss, r, major) for r in request.query.getall("ranges", [])]}

    @endpoint("values_append")
    def values_append(request, ss, body):
        return fake.values_append(ss, request.match_info["rng"], body.get("values", []))

    @endpoint("values_update")
    def values_update(request, ss, body):
        return fake.values_update(ss, request.match_info["rng"], body.get("values", []),
                                  body.get("majorDimension", "ROWS"))

    @endpoint("values_batch_update")
    def values_batch_update(request, ss, body):
        responses = [fake.values_update(ss, d["range"], d.get("values", []),
                                        d.get("majorDimension", "ROWS")) for d in body.get("data", [])]
        return {"spreadsheetId": ss.id, "responses": responses,
                "totalUpdatedRows": sum(r["updatedRows"] for r in responses),
                "totalUpdatedCells": sum(r["updatedCells"] for r in responses)}

    @endpoint("batch_update")
    def batch_update(request, ss, body):
        return fake.batch_update(ss, body.get("requests", []))

    async def admin_reset(request: web.Request) -> web.Response:
        fake.reset()
        return web.json_response({"ok": True})

    async def admin_create(request: web.Request) -> web.Response:
        body = await request.json()
        sid = body["id"]
        ss = Spreadsheet(sid, body.get("title", sid), [])
        for title in body.get("sheets", ["Sheet1"]):
            ss.add_sheet(title)
        fake.spreadsheets[sid] = ss
        return web.json_response(ss.metadata())

    async def admin_rows(request: web.Request) -> web.Response:
        try:
            ss = fake.spreadsheet(request.match_info["sid"])
            ws = ss.sheet(request.query.get("sheet"))
        except SheetsError as exc:
            return _error(exc)
        return web.json_response({"title": ws.title, "rows": [_rstrip(r) for r in ws.rows]})

    async def admin_requests(request: web.Request) -> web.Response:
        counts: dict[str, int] = {}
        for e in fake.log:
            counts[e["endpoint"]] = counts.get(e["endpoint"], 0) + 1
        return web.json_response({"counts": counts, "log": fake.log})

    async def admin_faults(request: web.Request) -> web.Response:
        body = await request.json()
        unknown = set(body) - set(fake.faults) - {"seed"}
        if unknown:
            return web.json_response({"error": f"unknown fault keys {sorted(unknown)}"}, status=400)
        if "seed" in body:
            fake.rng.seed(body.pop("seed"))
        fake.faults.update(body)
        return web.json_response(fake.faults)

    sid = r"{sid:[^/:]+}"
    rng = r"{rng:[^/]+}"
    app.router.add_get(f"/v4/spreadsheets/{sid}", get_spreadsheet)
    app.router.add_post(f"/v4/spreadsheets/{sid}:batchUpdate", batch_update)
    app.router.add_get(f"/v4/spreadsheets/{sid}/values:batchGet", values_batch_get)
    app.router.add_post(f"/v4/spreadsheets/{sid}/values:batchUpdate", values_batch_update)
    app.router.add_post(f"/v4/spreadsheets/{sid}/values/{rng}:append", values_append)
    app.router.add_get(f"/v4/spreadsheets/{sid}/values/{rng}", values_get)
    app.router.add_put(f"/v4/spreadsheets/{sid}/values/{rng}", values_update)
    app.router.add_post("/_admin/reset", admin_reset)
    app.router.add_post("/_admin/spreadsheets", admin_create)
    app.router.add_get("/_admin/spreadsheets/{sid}/rows", admin_rows)
    app.router.add_get("/_admin/requests", admin_requests)
    app.router.add_post("/_admin/faults", admin_faults)
    return app


class SheetsAdmin(AdminClient):
    """Client for the fake's admin API; `.url` is what SHEETS_API_URL should be set to."""

    def __init__(self, url: str, sheet_id: str):
        super().__init__(url)
        self.sheet_id = sheet_id

    def reset(self) -> None:
        self._call("POST", "/reset", {})

    def create(self, sheet_id: str | None = None, sheets: list[str] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"id": sheet_id or self.sheet_id}
        if sheets is not None:
            body["sheets"] = sheets
        return self._call("POST", "/spreadsheets", body)

    def rows(self, worksheet: str = "replydesk", sheet_id: str | None = None) -> list[list[Any]]:
        return self._call("GET", f"/spreadsheets/{sheet_id or self.sheet_id}/rows",
                          params={"sheet": worksheet})["rows"]

    def requests(self) -> dict[str, Any]:
        """{"counts": {endpoint: n}, "log": [{"t", "endpoint", "status", "rows", ...}]}"""
        return self._call("GET", "/requests")

    def faults(self, **settings: Any) -> dict[str, Any]:
        """ratio_429, ratio_500, next_429, next_500, endpoints, write_quota_per_minute, seed."""
        return self._call("POST", "/faults", settings)


if __name__ == "__main__":
    from standins.serve import main
    main(make_app, "sheetsfake", 8303)
