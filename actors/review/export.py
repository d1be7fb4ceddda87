"""`GET /api/log.csv`: the log a sheet would hold, as a CSV download, derived from MongoDB with
the sheet's own mapping (actors/sheets/derive.py), in the configured columns, oldest first. It
is how the log is read when no sheet is configured (GOOGLE_SHEET_ID unset); a reviewer limited
to some accounts gets only their rows.

A cell a spreadsheet would evaluate (starting with = + - @, a tab or a carriage return) is
written with a leading apostrophe, so chat text such as "=HYPERLINK(...)" stays text when the
file is opened (the sheet itself gets the same guarantee from valueInputOption=RAW).

The rows are read with the AsyncStore on the desk's loop (`stored_rows`, the walk the sheets
writer re-derives with)."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timezone

from aiohttp import web

from actors.sheets.derive import stored_rows
from actors.sheets.rows import Row, RowMapper
from actors.store import AsyncStore

routes = web.RouteTableDef()
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _safe(cell: str) -> str:
    return "'" + cell if cell.startswith(FORMULA_START) else cell


async def log_csv(store: AsyncStore, columns: list[str], accounts: list[str] | None) -> str:
    """The whole log as CSV text: a header, then every row, oldest first."""
    rows: list[Row] = [r async for page in stored_rows(store, RowMapper(columns), accounts) for r in page]
    if "time" in columns:
        at = columns.index("time")
        rows.sort(key=lambda r: r.values[at])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows([_safe(v) for v in r.values] for r in rows)
    return out.getvalue()


@routes.get("/api/log.csv")
async def download_log(request: web.Request) -> web.Response:
    from actors.review.api import CONFIG, STORE, _reviewer
    config = request.app[CONFIG]
    who = _reviewer(request)
    text = await log_csv(request.app[STORE], config.app.sheets.columns,
                         None if who.accounts is None else list(who.accounts))
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return web.Response(text=text, content_type="text/csv", charset="utf-8", headers={
        "Content-Disposition": f'attachment; filename="replydesk-log-{stamp}.csv"'})
