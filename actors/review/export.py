"""`GET /api/log.csv`: the log a sheet would hold, as a CSV download, derived from MongoDB with
the sheet's own mapping (actors/sheets/derive.py), in the configured columns, oldest first. It
is how the log is read when no sheet is configured (GOOGLE_SHEET_ID unset); a reviewer limited
to some accounts gets only their rows.

A cell a spreadsheet would evaluate (starting with = + - @, a tab or a carriage return) is
written with a leading apostrophe, so chat text such as "=HYPERLINK(...)" stays text when the
file is opened (the sheet itself gets the same guarantee from valueInputOption=RAW).

The rows are read with the AsyncStore on the desk's loop. `stored_rows` walks the same sources
with the same mapping as actors/sheets/derive.py (which the sheets writer runs synchronously,
through the Store bridge); once the writer is on AsyncStore, derive.py can be this one."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Callable

from aiohttp import web

from actors.sheets.rows import Row, RowMapper
from actors.store import AsyncStore

routes = web.RouteTableDef()
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _safe(cell: str) -> str:
    return "'" + cell if cell.startswith(FORMULA_START) else cell


async def stored_rows(store: AsyncStore, mapper: RowMapper,
                      accounts: list[str] | None = None) -> AsyncIterator[list[Row]]:
    """Pages of rows, source by source in _id order; `accounts`: only theirs (None: all).
    Outgoing messages have no row of their own (their send has), as on the event path."""
    m = mapper
    sources: list[tuple[Any, Callable[[dict], list[Row]]]] = [
        (store.messages.coll, lambda d: [] if d.get("direction") == "out" else [m.from_message_doc(d)]),
        (store.drafts.coll, m.draft_rows),
        (store.sends.coll, lambda d: [m.from_send_doc(d)]),
        (store.conversations.coll,
         lambda d: [r] if (r := m.from_classification_doc(d)) is not None else []),
    ]
    for coll, to_rows in sources:
        async for docs in store.sheet_rows.pages(coll):
            yield [r for d in docs if accounts is None or d.get("account_id") in accounts
                   for r in to_rows(d)]


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
