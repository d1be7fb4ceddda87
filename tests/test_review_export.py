"""The desk's CSV download of the log (what a sheet would hold), served for real over the store."""
from __future__ import annotations

import csv
import io

import requests

from actors.sheets.rows import RowMapper
from tests.review_helpers import add_conversation, desk_fixtures

config, desk = desk_fixtures()


def test_log_csv_holds_the_sheet_rows_with_formulas_kept_as_text(desk, store, config):
    formula = '=HYPERLINK("http://evil.example/","click")'
    draft = add_conversation(store, "c-csv", [formula, "hello there"])
    auth = {"Authorization": f"Bearer {config.settings.review_token.get_secret_value()}"}
    assert requests.get(desk.url + "/api/log.csv", timeout=10).status_code == 401
    r = requests.get(desk.url + "/api/log.csv", headers=auth, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    assert r.headers["Content-Disposition"].startswith('attachment; filename="replydesk-log-')
    table = list(csv.reader(io.StringIO(r.text)))
    columns = config.app.sheets.columns
    assert table[0] == columns
    body = {row[0]: row for row in table[1:]}
    assert set(body) == {*draft["message_ids"], draft["_id"]}        # each message, the draft
    mapper = RowMapper(columns)
    want = {row.row_id: row.values for d in store.messages.coll.find() for row in [mapper.from_message_doc(d)]}
    text = columns.index("text")
    for row_id, values in want.items():                              # the sheet's own values...
        got = body[row_id]
        assert got[:text] + got[text + 1:] == values[:text] + values[text + 1:]
        # ...except that a spreadsheet would evaluate this cell: it stays text
        assert got[text] == ("'" + formula if values[text] == formula else values[text])
    times = [row[columns.index("time")] for row in table[1:]]
    assert times == sorted(times)                                    # oldest first


def test_a_sheet_configured_later_fills_from_the_beginning_with_the_csv_rows(make_config, sheets, store,
                                                                               ray_session):
    """Messages, a draft and a decision stored while no sheet was configured (only the CSV had
    them): the writer of a sheet configured later appends every one, the same rows as the CSV."""
    import ray

    from actors.review.decisions import Reviewer
    from actors.review.export import log_csv
    from actors.sheets.writer import SheetsWriter
    draft = add_conversation(store, "c-late", ["first", "second"])
    add_conversation(store, "c-later", ["hello"])
    store.sync(Reviewer(store.inline, "owner")).approve(draft["_id"])
    config = make_config(app={"sheets": {"linger_s": 0.1}}, SHEETS_API_URL=sheets.url)
    csv_rows = list(csv.reader(io.StringIO(store.run(log_csv(store.inline, config.app.sheets.columns, None)))))
    writer = SheetsWriter.remote(config)
    try:
        assert ray.get(writer.start.remote())["rederived"] == len(csv_rows) - 1
        ray.get(writer.flush.remote())
    finally:
        ray.kill(writer)
    in_sheet = sheets.rows("replydesk")
    assert in_sheet[0] == csv_rows[0]
    assert sorted(in_sheet[1:]) == sorted(csv_rows[1:])
