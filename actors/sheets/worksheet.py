"""Opening the sheet log's worksheet: the spreadsheet, the worksheet (created when missing) and its
header row (written when empty, checked against app.sheets.columns otherwise).

gspread is synchronous (blocking HTTP), so each of its calls runs in a thread (`asyncio.to_thread`)
to keep the writer actor's event loop free.
"""
from __future__ import annotations

import asyncio

import gspread

from actors.sheets.http import open_client
from actors.sheets.pacer import Pacer
from actors.sheets.rows import RowMapper
from contracts.errors import PermanentError
from contracts.settings import Config


async def open_worksheet(config: Config, mapper: RowMapper, pacer: Pacer) -> gspread.Worksheet:
    """The configured worksheet, created with its header row when missing. Both creations
    are writes, so they go through the pacer like appends."""
    conf = config.app.sheets
    sheet_id = config.settings.google_sheet_id
    try:
        # gspread is synchronous: building the client and opening the spreadsheet block on HTTP
        sheet = await asyncio.to_thread(lambda: open_client(config).open_by_key(sheet_id))
    except gspread.SpreadsheetNotFound:
        raise PermanentError(f"GOOGLE_SHEET_ID: spreadsheet {sheet_id!r} not found (or not "
                             "shared with these credentials)") from None
    except PermissionError:
        raise PermanentError("GOOGLE_SHEET_ID: the credentials may not open this spreadsheet; "
                             "share it with the service account") from None
    try:
        ws = await asyncio.to_thread(sheet.worksheet, conf.worksheet)  # gspread blocks: a thread
    except gspread.WorksheetNotFound:
        await pacer.wait()
        # gspread blocks: a thread
        ws = await asyncio.to_thread(sheet.add_worksheet, conf.worksheet, 1000, len(conf.columns))
    header = await asyncio.to_thread(ws.row_values, 1)  # gspread blocks: a thread
    if not header:
        await pacer.wait()
        # gspread blocks: a thread
        await asyncio.to_thread(ws.update, [mapper.header()], "A1", value_input_option="RAW")
    elif header != mapper.header():
        raise PermanentError(f"worksheet {conf.worksheet!r} has header {header}, but "
                             f"app.sheets.columns is {mapper.header()}: fix one of them")
    return ws
