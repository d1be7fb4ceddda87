"""A small in-memory Google Sheets v4 server: the endpoints gspread 6.2 uses, plus an admin API.

No Sheets emulator exists, so tests and the demo point gspread here (SHEETS_API_URL). It follows
Google where gspread and the writer look (Sheets API v4 reference, spreadsheets.values.* and
spreadsheets.batchUpdate):

- the first sheet of a spreadsheet has sheetId 0; sheets added later get random ids, as Google's;
  a sheet is a grid (rowCount x columnCount, 1000 x 26 unless asked otherwise);
- A1 ranges: a sheet title is quoted in answers only when it needs it (`Sheet1!A1:B2`,
  `'My sheet'!A1`, quotes doubled inside); quoted and unquoted titles are both accepted;
- `values.get` of an unbounded range (`Sheet1`, `Sheet1!A:C`, `A5:B`) is sized to the grid in
  its `range`, trailing empty rows and cells are left out of `values`; a range outside the grid
  is a 400 "exceeds grid limits", and so is a write (update, batchUpdate) that would not fit;
- `values.append` looks for a "table" from the input range: the last non-empty cell of the range
  (row by row) and the region around it bounded by empty rows and columns. Values go to the row
  after that table, starting in its first column, so a stray cell moves where an unpinned append
  lands, exactly the behaviour gspread users report (`table_range="A1"` pins it). With no data in
  the range, values go to its top-left cell. `insertDataOption=INSERT_ROWS` inserts whole rows
  there (rows below move down, the grid grows); `OVERWRITE` (the default) writes over the cells,
  growing the grid only past its end;
- `values.clear` / `values.batchClear` empty cells and keep the grid; `batchUpdate` knows
  addSheet, deleteSheet and updateSheetProperties and is atomic;
- a malformed body (not JSON, `values` not a list of lists, a cell that is a list or an object,
  an unknown valueInputOption ...) is a 400 INVALID_ARGUMENT with Google's error body:
  `{"error": {"code": 400, "message": ..., "status": "INVALID_ARGUMENT"}}`; a null cell in a
  write leaves that cell unchanged.

Beside the Sheets endpoints it records every request with a timestamp (so tests can check the
write rate the writer keeps) and injects faults (429 / 500, by ratio or for the next N requests,
and an optional per-minute write quota like Google's) so retry behaviour is exercised against real
HTTP.

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

import copy
import json
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from standins.admin import AdminClient

WRITE_ENDPOINTS = ("values_append", "values_update", "values_batch_update", "values_clear",
                   "values_batch_clear", "batch_update")
FAKE: web.AppKey["SheetsFake"] = web.AppKey("fake")
CELL_LIMIT = 10_000_000          # cells per spreadsheet, all sheets together
DEFAULT_ROWS, DEFAULT_COLS = 1000, 26
_CELL = re.compile(r"^([A-Za-z]*)(\d*)$")
_PLAIN_TITLE = re.compile(r"^[^\W\d]\w*$")                 # letters, digits, _; no leading digit
_LOOKS_LIKE_REF = re.compile(r"^([A-Za-z]{1,3}\d+|[Rr]\d*[Cc]\d*)$")  # "AB12", "R1C1": quoted
VALUE_INPUT = ("RAW", "USER_ENTERED")
INSERT_DATA = ("OVERWRITE", "INSERT_ROWS")
DIMENSIONS = ("ROWS", "COLUMNS")
RENDER = ("FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA")


class SheetsError(Exception):
    """An error answered in Google's JSON error shape."""

    def __init__(self, code: int, status: str, message: str, applied: bool = False):
        super().__init__(message)
        self.code, self.status, self.message = code, status, message
        self.applied = applied  # the request takes effect, but its answer is an error


def invalid(message: str) -> SheetsError:
    return SheetsError(400, "INVALID_ARGUMENT", message)


def _empty(v: Any) -> bool:
    return v is None or v == ""


# --- A1 notation ----------------------------------------------------------------------------

def quote_title(title: str) -> str:
    """A sheet title as Google writes it in a range: bare when it can be, else single-quoted."""
    if _PLAIN_TITLE.match(title) and not _LOOKS_LIKE_REF.match(title):
        return title
    return "'" + title.replace("'", "''") + "'"


def _col_number(letters: str) -> int:
    n = 0
    for ch in letters.upper():
        n = n * 26 + (ord(ch) - 64)
    return n


def col_letters(n: int) -> str:
    s = ""
    while n:
        n, rem = divmod(n - 1, 26)
        s = chr(65 + rem) + s
    return s


def a1_text(title: str, r1: int, c1: int, r2: int, c2: int) -> str:
    """`Sheet1!A1:B2`, or `Sheet1!A1` for a single cell."""
    ref = f"{col_letters(c1)}{r1}"
    if (r1, c1) != (r2, c2):
        ref += f":{col_letters(c2)}{r2}"
    return f"{quote_title(title)}!{ref}"


@dataclass
class A1:
    """A parsed A1 range; bounds are 1-based and None when open (`A:B`, `1:2`, `A5:B`)."""
    sheet: str | None
    ref: str                       # the part after "!" as given ("" for a whole sheet)
    r1: int | None = None
    c1: int | None = None
    r2: int | None = None
    c2: int | None = None


def _cell(text: str, rng: str) -> tuple[int | None, int | None]:
    """(row, column) of "B7", "B" or "7"; columns go up to ZZZ, rows start at 1."""
    m = _CELL.match(text)
    letters, digits = (m.group(1), m.group(2)) if m else ("", "")
    if not (letters or digits) or len(letters) > 3 or (digits and int(digits) == 0):
        raise invalid(f"Unable to parse range: {rng}")
    return (int(digits) if digits else None, _col_number(letters) if letters else None)


def _parse_ref(ref: str, rng: str) -> tuple[int | None, int | None, int | None, int | None]:
    a, colon, b = ref.partition(":")
    r1, c1 = _cell(a, rng)
    if not colon:
        if r1 is None or c1 is None:      # "B" or "5" alone is not a range
            raise invalid(f"Unable to parse range: {rng}")
        return r1, c1, r1, c1
    r2, c2 = _cell(b, rng)
    if (r1 is None) != (r2 is None) and (c1 is None or c2 is None):
        raise invalid(f"Unable to parse range: {rng}")   # "A:5", "1:B"
    if r1 is not None and r2 is not None and r1 > r2:
        r1, r2 = r2, r1
    if c1 is not None and c2 is not None and c1 > c2:
        c1, c2 = c2, c1
    return r1, c1, r2, c2


def parse_a1(rng: str, titles: list[str] | None = None) -> A1:
    """`'My sheet'!A1:B2`, `Sheet1!A:A`, `A1`, `'It''s'`, `Sheet1` ... as the Sheets API takes them.

    A bare word is a sheet title when a sheet has that title (`titles`), else a cell reference."""
    rng = rng.strip()
    if not rng:
        raise invalid("Unable to parse range: ")
    if rng.startswith("'"):
        i, name = 1, []
        while True:
            if i >= len(rng):
                raise invalid(f"Unable to parse range: {rng}")
            if rng[i] == "'":
                if rng[i + 1:i + 2] == "'":
                    name.append("'")
                    i += 2
                    continue
                break
            name.append(rng[i])
            i += 1
        sheet, rest = "".join(name), rng[i + 1:]
        if rest and not rest.startswith("!"):
            raise invalid(f"Unable to parse range: {rng}")
        ref = rest[1:]
    elif "!" in rng:
        sheet, ref = rng.rsplit("!", 1)
    elif titles is not None and rng in titles:
        sheet, ref = rng, ""
    else:
        sheet, ref = None, rng
    if not ref:
        if sheet is None:
            raise invalid(f"Unable to parse range: {rng}")
        return A1(sheet, "")
    r1, c1, r2, c2 = _parse_ref(ref, rng)
    return A1(sheet, ref, r1, c1, r2, c2)


# --- the model ------------------------------------------------------------------------------

@dataclass
class Worksheet:
    sheet_id: int
    title: str
    index: int
    row_count: int = DEFAULT_ROWS
    column_count: int = DEFAULT_COLS
    rows: list[list[Any]] = field(default_factory=list)   # data; grid cells past it are empty

    def properties(self) -> dict[str, Any]:
        return {"sheetId": self.sheet_id, "title": self.title, "index": self.index,
                "sheetType": "GRID",
                "gridProperties": {"rowCount": self.row_count, "columnCount": self.column_count}}

    def value(self, r: int, c: int) -> Any:
        if r - 1 < len(self.rows):
            line = self.rows[r - 1]
            if c - 1 < len(line):
                return line[c - 1]
        return ""

    def any_in_row(self, r: int, c1: int, c2: int) -> bool:
        if r < 1 or r > len(self.rows):
            return False
        line = self.rows[r - 1]
        return any(not _empty(v) for v in line[max(c1, 1) - 1:c2])

    def any_in_col(self, c: int, r1: int, r2: int) -> bool:
        if c < 1:
            return False
        return any(c - 1 < len(line) and not _empty(line[c - 1])
                   for line in self.rows[max(r1, 1) - 1:r2])

    def last_cell(self, r1: int, c1: int, r2: int, c2: int) -> tuple[int, int] | None:
        """The last non-empty cell of the block, row by row (bottom row first, rightmost)."""
        for r in range(min(r2, len(self.rows)), r1 - 1, -1):
            line = self.rows[r - 1]
            for c in range(min(c2, len(line)), c1 - 1, -1):
                if not _empty(line[c - 1]):
                    return r, c
        return None

    def region(self, r: int, c: int) -> tuple[int, int, int, int]:
        """The table around (r, c): grown while a neighbouring row or column (diagonals
        included) holds a value, i.e. the block bounded by empty rows and columns."""
        top, left, bottom, right = r, c, r, c
        changed = True
        while changed:
            changed = False
            while self.any_in_row(bottom + 1, left - 1, right + 1):
                bottom += 1
                changed = True
            while top > 1 and self.any_in_row(top - 1, left - 1, right + 1):
                top -= 1
                changed = True
            while right < self.column_count and self.any_in_col(right + 1, top - 1, bottom + 1):
                right += 1
                changed = True
            while left > 1 and self.any_in_col(left - 1, top - 1, bottom + 1):
                left -= 1
                changed = True
        return top, left, bottom, right

    def write(self, row: int, col: int, values: list[list[Any]]) -> int:
        """Write a block with its top-left cell at (row, col), both 1-based; None leaves a cell
        as it is. The block must fit the grid. Returns the number of cells written."""
        cells = 0
        for i, vals in enumerate(values):
            r = row - 1 + i
            if not any(v is not None for v in vals):
                continue
            while len(self.rows) <= r:
                self.rows.append([])
            line = self.rows[r]
            need = col - 1 + len(vals)
            if len(line) < need:
                line.extend([""] * (need - len(line)))
            for j, v in enumerate(vals):
                if v is not None:
                    line[col - 1 + j] = v
                    cells += 1
        self._trim(self.rows[row - 1:row - 1 + len(values)])
        return cells

    def clear(self, r1: int, c1: int, r2: int, c2: int) -> None:
        for line in self.rows[r1 - 1:r2]:
            for c in range(c1 - 1, min(c2, len(line))):
                line[c] = ""
        self._trim(self.rows[r1 - 1:r2])

    def insert_rows(self, at: int, n: int) -> None:
        """Insert n empty rows before row `at` (1-based); the grid grows by n."""
        if at - 1 < len(self.rows):
            self.rows[at - 1:at - 1] = [[] for _ in range(n)]
        self.row_count += n

    def resize(self, rows: int, cols: int) -> None:
        self.row_count, self.column_count = rows, cols
        del self.rows[rows:]
        for line in self.rows:
            del line[cols:]
        self._trim()

    def _trim(self, lines: list[list[Any]] | None = None) -> None:
        """Drop trailing empty cells of `lines` (default: every row), then trailing empty rows."""
        for line in self.rows if lines is None else lines:
            while line and _empty(line[-1]):
                line.pop()
        while self.rows and not self.rows[-1]:
            self.rows.pop()


@dataclass
class Spreadsheet:
    id: str
    title: str
    sheets: list[Worksheet]

    def __post_init__(self) -> None:
        self.ids = random.Random(f"sheet-ids:{self.id}")

    def metadata(self) -> dict[str, Any]:
        return {"spreadsheetId": self.id,
                "properties": {"title": self.title, "locale": "en_US", "timeZone": "Etc/UTC"},
                "sheets": [{"properties": s.properties()} for s in self.sheets],
                "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{self.id}/edit"}

    def titles(self) -> list[str]:
        return [s.title for s in self.sheets]

    def sheet(self, title: str | None, rng: str) -> Worksheet:
        if title is None:
            return self.sheets[0]
        for s in self.sheets:
            if s.title == title:
                return s
        raise invalid(f"Unable to parse range: {rng}")

    def by_id(self, sheet_id: Any) -> Worksheet:
        for s in self.sheets:
            if s.sheet_id == sheet_id:
                return s
        raise invalid(f"No grid with id: {sheet_id}")

    def cells(self) -> int:
        return sum(s.row_count * s.column_count for s in self.sheets)

    def check_cells(self, extra: int = 0) -> None:
        if self.cells() + extra > CELL_LIMIT:
            raise invalid("This action would increase the number of cells in the workbook above "
                          f"the limit of {CELL_LIMIT} cells.")

    def add_sheet(self, title: str | None = None, rows: int = DEFAULT_ROWS, cols: int = DEFAULT_COLS,
                  sheet_id: int | None = None, index: int | None = None) -> Worksheet:
        """The first sheet gets id 0 (as in a new Google spreadsheet); later ones a random id."""
        if title is None:
            n = len(self.sheets) + 1
            while f"Sheet{n}" in self.titles():
                n += 1
            title = f"Sheet{n}"
        if not isinstance(title, str) or not title.strip():
            raise invalid("Sheet names must be non-empty.")
        if title in self.titles():
            raise invalid(f'A sheet with the name "{title}" already exists. '
                          "Please enter another name.")
        if not (isinstance(rows, int) and isinstance(cols, int)) or rows < 1 or cols < 1:
            raise invalid("Sheet grid must have at least one row and one column.")
        taken = {s.sheet_id for s in self.sheets}
        if sheet_id is None:
            sheet_id = 0 if not self.sheets else self.ids.randint(1, 2**31 - 1)
            while sheet_id in taken:
                sheet_id = self.ids.randint(1, 2**31 - 1)
        elif not isinstance(sheet_id, int) or sheet_id < 0:
            raise invalid(f"Invalid sheetId: {sheet_id}")
        elif sheet_id in taken:
            raise invalid(f"Duplicate sheet ID: {sheet_id}")
        self.check_cells(rows * cols)
        ws = Worksheet(sheet_id, title, 0, rows, cols)
        at = len(self.sheets) if index is None else max(0, min(int(index), len(self.sheets)))
        self.sheets.insert(at, ws)
        self._reindex()
        return ws

    def delete_sheet(self, sheet_id: Any) -> None:
        ws = self.by_id(sheet_id)
        if len(self.sheets) == 1:
            raise invalid("You can't remove all the sheets in a document.")
        self.sheets.remove(ws)
        self._reindex()

    def _reindex(self) -> None:
        for i, s in enumerate(self.sheets):
            s.index = i


@dataclass
class Bounds:
    """A range resolved against its sheet: 1-based, inclusive, clipped to the grid."""
    ws: Worksheet
    r1: int
    c1: int
    r2: int
    c2: int
    single: bool          # the range named one cell ("A1"): a write anchor, not a limit

    def text(self) -> str:
        return a1_text(self.ws.title, self.r1, self.c1, self.r2, self.c2)


def _render(v: Any, option: str) -> Any:
    """A stored value as values.get answers it (FORMATTED_VALUE renders numbers and booleans)."""
    if option == "UNFORMATTED_VALUE" or option == "FORMULA":
        return v
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (int, float)):
        return str(v)
    return v


def _rstrip(values: list[Any]) -> list[Any]:
    values = list(values)
    while values and _empty(values[-1]):
        values.pop()
    return values


def check_values(values: Any, where: str) -> list[list[Any]]:
    """A ValueRange's `values`: a list of rows, each a list of strings, numbers, booleans or null."""
    if values is None:
        return []
    if not isinstance(values, list):
        raise invalid(f"Invalid value at '{where}' (type.googleapis.com/google.protobuf.ListValue), "
                      f"{json.dumps(values)}")
    for i, row in enumerate(values):
        if not isinstance(row, list):
            raise invalid(f"Invalid value at '{where}[{i}]' "
                          f"(type.googleapis.com/google.protobuf.ListValue), {json.dumps(row)}")
        for j, cell in enumerate(row):
            if isinstance(cell, list):
                raise invalid(f"Invalid values[{i}][{j}]: list_value {{\n}}")
            if isinstance(cell, dict):
                raise invalid(f"Invalid values[{i}][{j}]: struct_value {{\n}}")
    return values


def _check_enum(value: Any, allowed: tuple[str, ...], name: str, default: str) -> str:
    if value is None:
        return default
    if value not in allowed:
        raise invalid(f"Invalid value at '{name}' (TYPE_ENUM), \"{value}\"")
    return value


def value_range(body: Any, where: str, allowed: set[str]) -> tuple[list[list[Any]], str, Any]:
    """Validate a ValueRange object: (values, majorDimension, range)."""
    if not isinstance(body, dict):
        raise invalid(f"Invalid value at '{where}' (type.googleapis.com/google.apps.sheets.v4."
                      f"ValueRange), {json.dumps(body)}")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise invalid(f'Invalid JSON payload received. Unknown name "{unknown[0]}" at \'{where}\': '
                      "Cannot find field.")
    values = check_values(body.get("values"), f"{where}.values")
    major = _check_enum(body.get("majorDimension"), DIMENSIONS, f"{where}.major_dimension", "ROWS")
    return values, major, body.get("range")


VALUE_RANGE_FIELDS = {"range", "majorDimension", "values"}


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

    # --- ranges -----------------------------------------------------------------------------

    def resolve(self, ss: Spreadsheet, rng: Any) -> Bounds:
        """A range against its sheet's grid: open ends sized to the grid; a bound past the grid
        is Google's 400 "exceeds grid limits"."""
        if not isinstance(rng, str):
            raise invalid(f"Unable to parse range: {rng}")
        a = parse_a1(rng, ss.titles())
        ws = ss.sheet(a.sheet, rng)
        if ((a.r1 or 1) > ws.row_count or (a.r2 or 1) > ws.row_count
                or (a.c1 or 1) > ws.column_count or (a.c2 or 1) > ws.column_count):
            shown = quote_title(ws.title) + ("!" + a.ref if a.ref else "")
            raise invalid(f"Range ({shown}) exceeds grid limits. Max rows: {ws.row_count}, "
                          f"max columns: {ws.column_count}")
        single = a.ref != "" and a.r1 == a.r2 and a.c1 == a.c2 and ":" not in a.ref
        return Bounds(ws, a.r1 or 1, a.c1 or 1, a.r2 or ws.row_count, a.c2 or ws.column_count,
                      single)

    # --- Sheets v4 operations ---------------------------------------------------------------

    def values_get(self, ss: Spreadsheet, rng: str, major: str | None = None,
                   render: str | None = None) -> dict[str, Any]:
        major = _check_enum(major, DIMENSIONS, "major_dimension", "ROWS")
        render = _check_enum(render, RENDER, "value_render_option", "FORMATTED_VALUE")
        b = self.resolve(ss, rng)
        ws = b.ws
        block = [[_render(ws.value(r, c), render) for c in range(b.c1, b.c2 + 1)]
                 for r in range(b.r1, min(b.r2, len(ws.rows)) + 1)]
        if major == "COLUMNS":
            block = [list(col) for col in zip(*block)] if block else []
        block = [_rstrip(v) for v in block]
        while block and not block[-1]:
            block.pop()
        out: dict[str, Any] = {"range": b.text(), "majorDimension": major}
        if block:
            out["values"] = block
        return out

    def _update_plan(self, ss: Spreadsheet, rng: Any, values: list[list[Any]],
                     major: str) -> tuple[Bounds, list[list[Any]]]:
        """Where a values.update writes, checked against the range and the grid (no change yet)."""
        b = self.resolve(ss, rng)
        if major == "COLUMNS":
            width = max((len(v) for v in values), default=0)
            values = [[col[i] if i < len(col) else None for col in values] for i in range(width)]
        height, width = len(values), max((len(v) for v in values), default=0)
        if not b.single:
            if height > b.r2 - b.r1 + 1:
                raise invalid(f"Requested writing within range [{rng}], but tried writing to row "
                              f"[{b.r1 + height - 1}]")
            if width > b.c2 - b.c1 + 1:
                raise invalid(f"Requested writing within range [{rng}], but tried writing to "
                              f"column [{col_letters(b.c1 + width - 1)}]")
        if b.r1 + height - 1 > b.ws.row_count or b.c1 + width - 1 > b.ws.column_count:
            shown = a1_text(b.ws.title, b.r1, b.c1, b.r1 + max(height, 1) - 1, b.c1 + max(width, 1) - 1)
            raise invalid(f"Range ({shown}) exceeds grid limits. Max rows: {b.ws.row_count}, "
                          f"max columns: {b.ws.column_count}")
        return b, values

    def values_update(self, ss: Spreadsheet, rng: str, values: list[list[Any]],
                      major: str = "ROWS") -> dict[str, Any]:
        b, values = self._update_plan(ss, rng, values, major)
        cells = b.ws.write(b.r1, b.c1, values)
        return _updated(ss.id, b.ws.title, b.r1, b.c1, values, cells)

    def values_batch_update(self, ss: Spreadsheet, data: Any) -> list[dict[str, Any]]:
        if not isinstance(data, list):
            raise invalid(f"Invalid value at 'data' (type.googleapis.com/google.protobuf.ListValue), "
                          f"{json.dumps(data)}")
        plans = []
        for i, d in enumerate(data):  # all checked before any is written: the batch is atomic
            values, major, rng = value_range(d, f"data[{i}]", VALUE_RANGE_FIELDS)
            plans.append(self._update_plan(ss, rng, values, major))
        return [_updated(ss.id, b.ws.title, b.r1, b.c1, values, b.ws.write(b.r1, b.c1, values))
                for b, values in plans]

    def values_append(self, ss: Spreadsheet, rng: str, values: list[list[Any]], major: str = "ROWS",
                      insert: str | None = None) -> dict[str, Any]:
        insert = _check_enum(insert, INSERT_DATA, "insert_data_option", "OVERWRITE")
        b = self.resolve(ss, rng)
        ws = b.ws
        if major == "COLUMNS":
            width = max((len(v) for v in values), default=0)
            values = [[col[i] if i < len(col) else None for col in values] for i in range(width)]
        out: dict[str, Any] = {"spreadsheetId": ss.id}
        seed = ws.last_cell(b.r1, b.c1, b.r2, b.c2)
        if seed is None:                 # no table: the values go to the range's first cell
            row, col = b.r1, b.c1
        else:
            top, left, bottom, right = ws.region(*seed)
            out["tableRange"] = a1_text(ws.title, top, left, bottom, right)
            row, col = bottom + 1, left
        height, width = len(values), max((len(v) for v in values), default=0)
        grow_rows = height if insert == "INSERT_ROWS" else max(0, row + height - 1 - ws.row_count)
        grow_cols = max(0, col + width - 1 - ws.column_count)
        ss.check_cells(grow_rows * (ws.column_count + grow_cols) + grow_cols * ws.row_count)
        if insert == "INSERT_ROWS":
            ws.insert_rows(row, height)
        else:
            ws.row_count += grow_rows
        ws.column_count += grow_cols
        cells = ws.write(row, col, values)
        out["updates"] = _updated(ss.id, ws.title, row, col, values, cells)
        return out

    def values_clear(self, ss: Spreadsheet, rng: str) -> str:
        b = self.resolve(ss, rng)
        b.ws.clear(b.r1, b.c1, b.r2, b.c2)
        return b.text()

    def batch_update(self, ss: Spreadsheet, requests: Any) -> dict[str, Any]:
        """addSheet, deleteSheet, updateSheetProperties; all or nothing, as Google applies them."""
        if not isinstance(requests, list):
            raise invalid("Invalid value at 'requests' (type.googleapis.com/google.protobuf."
                          f"ListValue), {json.dumps(requests)}")
        saved = copy.deepcopy(ss.sheets), copy.deepcopy(ss.ids)
        try:
            return {"spreadsheetId": ss.id,
                    "replies": [self._request(ss, i, req) for i, req in enumerate(requests)]}
        except SheetsError:
            ss.sheets, ss.ids = saved
            raise

    def _request(self, ss: Spreadsheet, i: int, req: Any) -> dict[str, Any]:
        if not isinstance(req, dict) or len(req) != 1:
            raise invalid(f"Invalid requests[{i}]: " + ("No request set." if not req else
                                                       "Exactly one kind of request is allowed."))
        kind, body = next(iter(req.items()))
        if not isinstance(body, dict) or not isinstance(body.get("properties", {}), dict):
            raise invalid(f"Invalid value at 'requests[{i}].{kind}', {json.dumps(body)}")
        try:
            if kind == "addSheet":
                p = body.get("properties", {})
                grid = p.get("gridProperties", {})
                ws = ss.add_sheet(p.get("title"), grid.get("rowCount", DEFAULT_ROWS),
                                  grid.get("columnCount", DEFAULT_COLS), p.get("sheetId"), p.get("index"))
                return {"addSheet": {"properties": ws.properties()}}
            if kind == "deleteSheet":
                ss.delete_sheet(body.get("sheetId"))
                return {}
            if kind == "updateSheetProperties":
                p = body.get("properties", {})
                ws = ss.by_id(p.get("sheetId"))
                if "title" in p and p["title"] != ws.title:
                    if p["title"] in ss.titles():
                        raise invalid(f'A sheet with the name "{p["title"]}" already exists. '
                                      "Please enter another name.")
                    ws.title = p["title"]
                grid = p.get("gridProperties", {})
                rows, cols = grid.get("rowCount", ws.row_count), grid.get("columnCount", ws.column_count)
                if (rows, cols) != (ws.row_count, ws.column_count):
                    ss.check_cells(rows * cols - ws.row_count * ws.column_count)
                    ws.resize(rows, cols)
                if "index" in p:
                    ss.sheets.remove(ws)
                    ss.sheets.insert(max(0, min(int(p["index"]), len(ss.sheets))), ws)
                    ss._reindex()
                return {}
        except SheetsError as exc:
            raise invalid(f"Invalid requests[{i}].{kind}: {exc.message}") from None
        raise invalid(f"Invalid requests[{i}]: the fake does not support {kind!r}")


def _updated(sid: str, title: str, r1: int, c1: int, values: list[list[Any]],
             cells: int) -> dict[str, Any]:
    height, width = len(values), max((len(v) for v in values), default=0)
    out: dict[str, Any] = {"spreadsheetId": sid, "updatedRange": a1_text(
        title, r1, c1, r1 + max(height, 1) - 1, c1 + max(width, 1) - 1)}
    if cells:
        out.update(updatedRows=sum(1 for v in values if any(x is not None for x in v)),
                   updatedColumns=width, updatedCells=cells)
    return out


def _error(exc: SheetsError) -> web.Response:
    return web.json_response({"error": {"code": exc.code, "message": exc.message,
                                        "status": exc.status}}, status=exc.code)


async def _body(request: web.Request) -> Any:
    if not request.body_exists:
        return {}
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise invalid("Invalid JSON payload received. Unexpected token.") from None
    if not isinstance(body, dict):
        raise invalid(f"Invalid JSON payload received. Expected an object, got {type(body).__name__}.")
    return body


def _value_input(request: web.Request, given: Any = None) -> str:
    option = request.query.get("valueInputOption") if given is None else given
    if option is None:
        raise invalid("'valueInputOption' is required but not specified")
    return _check_enum(option, VALUE_INPUT, "value_input_option", "RAW")


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
                    body = await _body(request)
                    result = fn(request, fake.spreadsheet(request.match_info["sid"]), body)
                    entry["applied"] = True
                    if fault is not None:
                        raise fault
                    entry["status"] = 200
                    entry["rows"] = len(body.get("values") or [])
                    return web.json_response(result)
                except SheetsError as exc:
                    entry["status"] = exc.code
                    return _error(exc)
            return handler
        return wrap

    def with_values(result: dict[str, Any], request: web.Request, ss: Spreadsheet) -> dict[str, Any]:
        """includeValuesInResponse=true: the written cells, read back."""
        if request.query.get("includeValuesInResponse") == "true" and "updatedRange" in result:
            result["updatedData"] = fake.values_get(ss, result["updatedRange"],
                                                    render=request.query.get("responseValueRenderOption"))
        return result

    @endpoint("get_spreadsheet")
    def get_spreadsheet(request, ss, body):
        return ss.metadata()

    @endpoint("values_get")
    def values_get(request, ss, body):
        return fake.values_get(ss, request.match_info["rng"], request.query.get("majorDimension"),
                               request.query.get("valueRenderOption"))

    @endpoint("values_batch_get")
    def values_batch_get(request, ss, body):
        major, render = request.query.get("majorDimension"), request.query.get("valueRenderOption")
        return {"spreadsheetId": ss.id,
                "valueRanges": [fake.values_get(ss, r, major, render)
                                for r in request.query.getall("ranges", [])]}

    @endpoint("values_append")
    def values_append(request, ss, body):
        _value_input(request)
        values, major, _ = value_range(body, "data", VALUE_RANGE_FIELDS)
        result = fake.values_append(ss, request.match_info["rng"], values, major,
                                    request.query.get("insertDataOption"))
        with_values(result["updates"], request, ss)
        return result

    @endpoint("values_update")
    def values_update(request, ss, body):
        _value_input(request)
        values, major, _ = value_range(body, "data", VALUE_RANGE_FIELDS)
        return with_values(fake.values_update(ss, request.match_info["rng"], values, major),
                           request, ss)

    @endpoint("values_batch_update")
    def values_batch_update(request, ss, body):
        _value_input(request, body.get("valueInputOption"))
        responses = fake.values_batch_update(ss, body.get("data", []))
        return {"spreadsheetId": ss.id, "responses": responses,
                "totalUpdatedRows": sum(r.get("updatedRows", 0) for r in responses),
                "totalUpdatedColumns": max((r.get("updatedColumns", 0) for r in responses), default=0),
                "totalUpdatedCells": sum(r.get("updatedCells", 0) for r in responses),
                "totalUpdatedSheets": len({r["updatedRange"].rsplit("!", 1)[0] for r in responses})}

    @endpoint("values_clear")
    def values_clear(request, ss, body):
        return {"spreadsheetId": ss.id, "clearedRange": fake.values_clear(ss, request.match_info["rng"])}

    @endpoint("values_batch_clear")
    def values_batch_clear(request, ss, body):
        ranges = body.get("ranges", [])
        if not isinstance(ranges, list):
            raise invalid("Invalid value at 'ranges' (type.googleapis.com/google.protobuf.ListValue), "
                          f"{json.dumps(ranges)}")
        for r in ranges:  # all resolved before any is cleared
            fake.resolve(ss, r)
        return {"spreadsheetId": ss.id, "clearedRanges": [fake.values_clear(ss, r) for r in ranges]}

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
            title = request.query.get("sheet")
            ws = ss.sheet(title, title or "")
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
    app.router.add_post(f"/v4/spreadsheets/{sid}/values:batchClear", values_batch_clear)
    app.router.add_post(f"/v4/spreadsheets/{sid}/values/{rng}:append", values_append)
    app.router.add_post(f"/v4/spreadsheets/{sid}/values/{rng}:clear", values_clear)
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
