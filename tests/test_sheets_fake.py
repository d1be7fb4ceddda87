"""The Sheets v4 fake speaks what gspread 6.2 sends and answers as Google does where gspread and
the writer look (table detection, grid, A1 quoting, errors); its faults behave as documented; the
gspread client module reaches it by config and validates real-Google credentials files."""
from __future__ import annotations

import json

import gspread
import pytest
import requests

from actors.sheets.http import load_credentials, open_client, redirecting_client
from contracts.errors import PermanentError


@pytest.fixture
def gc(make_config, sheets) -> gspread.Client:
    return open_client(make_config(SHEETS_API_URL=sheets.url))


def test_gspread_round_trip(gc, sheets):
    sh = gc.open_by_key(sheets.sheet_id)
    assert [w.title for w in sh.worksheets()] == ["Sheet1"]
    ws = sh.add_worksheet("It's a log", rows=5, cols=3)
    assert sh.worksheet("It's a log").id == ws.id
    ws.update([["row_id", "text"]], "A1")
    ws.append_rows([["r1", "=1+1"], ["r2", ""]], value_input_option="RAW")
    ws.append_rows([["r3", "x", "wide"]])
    assert ws.col_values(1) == ["row_id", "r1", "r2", "r3"]
    assert ws.row_values(4) == ["r3", "x", "wide"]
    assert ws.get_all_values() == [["row_id", "text", ""], ["r1", "=1+1", ""], ["r2", "", ""],
                                   ["r3", "x", "wide"]]
    assert ws.batch_get(["A1:B1", "C4"]) == [[["row_id", "text"]], [["wide"]]]
    ws.batch_update([{"range": "B3", "values": [["filled"]]}])
    assert sheets.rows("It's a log")[2] == ["r2", "filled"]
    meta = sh.fetch_sheet_metadata()
    assert meta["sheets"][1]["properties"]["gridProperties"]["rowCount"] >= 4
    with pytest.raises(gspread.exceptions.APIError) as info:
        sh.add_worksheet("It's a log", rows=1, cols=1)
    assert info.value.code == 400


def test_first_sheet_is_id_0_and_ranges_quote_titles_only_when_needed(gc, sheets):
    sh = gc.open_by_key(sheets.sheet_id)
    ws = sh.sheet1
    assert (ws.id, ws.row_count, ws.col_count) == (0, 1000, 26)   # a new spreadsheet's first sheet
    log = sh.add_worksheet("It's a log", rows=5, cols=3)
    assert log.id not in (0, 1) and log.index == 1
    ws.update([["a", "b"]], "A1")
    # gspread always quotes; Google answers bare titles bare and quotes the others, '' inside
    assert sh.values_get("Sheet1!A1:B1")["range"] == "Sheet1!A1:B1"
    assert sh.values_get("'Sheet1'!A1")["range"] == "Sheet1!A1"
    assert sh.values_get("A1:B1")["values"] == [["a", "b"]]                 # no title: first sheet
    assert sh.values_get("'It''s a log'")["range"] == "'It''s a log'!A1:C5"  # sized to the grid
    assert sh.values_get("Sheet1!A:C") == {"range": "Sheet1!A1:C1000", "majorDimension": "ROWS",
                                            "values": [["a", "b"]]}           # trailing cells trimmed
    assert sh.values_get("Sheet1!B:B", params={"majorDimension": "COLUMNS"})["values"] == [["b"]]
    with pytest.raises(gspread.exceptions.APIError, match="Unable to parse range"):
        sh.values_get("'No such sheet'!A1")


def api_error(fn, *args, **kwargs) -> dict:
    """The JSON body of the APIError a call raises."""
    with pytest.raises(gspread.exceptions.APIError) as info:
        fn(*args, **kwargs)
    return info.value.response.json()


def test_append_finds_the_table_as_google_does(gc, sheets):
    """values.append appends after the "table" it finds from the given range, in the table's
    first column: unpinned, a gap or a stray cell moves where rows land (what gspread users see,
    e.g. burnash/gspread#537 and #828); pinned to A1 the rows go under the table, in column A."""
    ws = gc.open_by_key(sheets.sheet_id).sheet1
    steps = [ws.append_row(["Test1", "", "Test2"]) for _ in range(3)]  # the whole sheet as range
    assert [s.get("tableRange") for s in steps] == [None, "Sheet1!C1", "Sheet1!E2"]
    assert [s["updates"]["updatedRange"] for s in steps] == ["Sheet1!A1:C1", "Sheet1!C2:E2",
                                                             "Sheet1!E3:G3"]
    ws.clear()
    ws.update([["id", "kind", "text"], ["r1", "message", "hi"], ["", "note", "typed by a person"],
               ["r2", "message", "yo"]], "A1")
    ws.update([["stray"]], "E4")       # beside the last row, one empty column away
    ws.update([["total"]], "B7")       # below the table, after two empty rows
    out = ws.append_rows([["r3", "message", "x"]])                       # unpinned
    assert out["updates"]["updatedRange"] == "Sheet1!B8:D8"              # under the total
    ws.batch_clear(["B8:D8"])

    def grid() -> int:  # the server's row count (gspread's own goes up on every append_rows)
        return gc.open_by_key(sheets.sheet_id).sheet1.row_count
    assert grid() == 1000
    out = ws.append_rows([["r3", "message", "x"], ["r4", "message", "y"]], table_range="A1",
                         insert_data_option="INSERT_ROWS")
    assert out["tableRange"] == "Sheet1!A1:C4"        # the row with an empty A is in the table
    assert out["updates"]["updatedRange"] == "Sheet1!A5:C6"
    assert ws.col_values(1) == ["id", "r1", "", "r2", "r3", "r4"]
    assert ws.acell("E4").value == "stray" and ws.acell("B9").value == "total"  # rows inserted
    assert grid() == 1002                                                      # the grid grew
    out = ws.append_rows([["r5", "message", "z"]], table_range="A1")           # OVERWRITE
    assert out["updates"]["updatedRange"] == "Sheet1!A7:C7" and grid() == 1002


def test_grid_limits_and_malformed_bodies_are_400s_with_googles_body(gc, sheets):
    sh = gc.open_by_key(sheets.sheet_id)
    ws = sh.add_worksheet("small", rows=3, cols=2)
    assert api_error(ws.update, [["x"]], "A4") == {"error": {
        "code": 400, "status": "INVALID_ARGUMENT",
        "message": "Range (small!A4) exceeds grid limits. Max rows: 3, max columns: 2"}}
    assert "exceeds grid limits" in api_error(ws.update, [["a", "b", "c"]], "A1")["error"]["message"]
    assert "exceeds grid limits" in api_error(ws.get, "A1:C1")["error"]["message"]
    ws.append_rows([["a", "b", "c"]] * 4)  # an append may go past the grid: rows/columns are added
    meta = sh.fetch_sheet_metadata()["sheets"][1]["properties"]["gridProperties"]
    assert meta == {"rowCount": 4, "columnCount": 3}
    base = f"{sheets.url}/v4/spreadsheets/{sheets.sheet_id}/values/small!A1"
    bad = [({"values": "nope"}, "Invalid value at 'data.values'"),
           ({"values": ["row"]}, "Invalid value at 'data.values[0]'"),
           ({"values": [["a", ["b"]]]}, "Invalid values[0][1]: list_value"),
           ({"values": [[{"a": 1}]]}, "Invalid values[0][0]: struct_value"),
           ({"rows": [["a"]]}, 'Invalid JSON payload received. Unknown name "rows"')]
    for body, message in bad:
        for method, url in (("post", base + ":append"), ("put", base)):
            r = requests.request(method, url, params={"valueInputOption": "RAW"}, json=body, timeout=10)
            err = r.json()["error"]
            assert (r.status_code, err["code"], err["status"]) == (400, 400, "INVALID_ARGUMENT"), body
            assert err["message"].startswith(message), (body, err)
    r = requests.post(base + ":append", params={"valueInputOption": "RAW"}, data="{oops", timeout=10)
    assert r.status_code == 400 and "Invalid JSON payload" in r.json()["error"]["message"]
    r = requests.post(base + ":append", json={"values": [["a"]]}, timeout=10)
    assert r.status_code == 400 and "valueInputOption" in r.json()["error"]["message"]
    r = requests.post(base + ":append", params={"valueInputOption": "RAW", "insertDataOption": "ADD"},
                      json={"values": [["a"]]}, timeout=10)
    assert r.json()["error"]["message"] == "Invalid value at 'insert_data_option' (TYPE_ENUM), \"ADD\""
    assert sheets.rows("small") == [["a", "b", "c"]] * 4       # nothing malformed was written


def test_clear_batch_clear_and_delete_sheet(gc, sheets):
    sh = gc.open_by_key(sheets.sheet_id)
    ws = sh.sheet1
    ws.update([["a", "b", "c"], ["d", "e", "f"]], "A1")
    assert sh.values_clear("Sheet1!B:B") == {"spreadsheetId": sheets.sheet_id,
                                             "clearedRange": "Sheet1!B1:B1000"}
    assert ws.batch_clear(["A2", "C1:C2"])["clearedRanges"] == ["Sheet1!A2", "Sheet1!C1:C2"]
    assert sheets.rows("Sheet1") == [["a"]]
    ws.clear()
    assert ws.get_all_values() == [[]] and sh.sheet1.row_count == 1000  # values go, the grid stays
    other = sh.add_worksheet("other", rows=2, cols=2)
    body = {"requests": [{"addSheet": {"properties": {"title": "third"}}},
                         {"deleteSheet": {"sheetId": 12345}}]}
    assert api_error(sh.batch_update, body)["error"]["message"] == \
        "Invalid requests[1].deleteSheet: No grid with id: 12345"
    assert [w.title for w in sh.worksheets()] == ["Sheet1", "other"]  # all or nothing
    sh.del_worksheet(ws)
    assert [(w.title, w.index) for w in sh.worksheets()] == [("other", 0)]
    assert "remove all the sheets" in api_error(sh.del_worksheet, other)["error"]["message"]


def test_unknown_spreadsheet_is_not_found(gc):
    with pytest.raises(gspread.SpreadsheetNotFound):
        gc.open_by_key("no-such-sheet")


def test_faults_and_request_log(gc, sheets):
    ws = gc.open_by_key(sheets.sheet_id).sheet1
    sheets.faults(next_429=2, endpoints=["values_append"])
    codes = []
    for i in range(3):
        try:
            ws.append_rows([[f"r{i}"]])
            codes.append(200)
        except gspread.exceptions.APIError as exc:
            codes.append(exc.code)
    assert codes == [429, 429, 200]
    sheets.faults(next_500_applied=1)
    with pytest.raises(gspread.exceptions.APIError):
        ws.append_rows([["landed"]])
    assert sheets.rows("Sheet1") == [["r2"], ["landed"]]  # the write took effect anyway
    sheets.faults(write_quota_per_minute=3)
    with pytest.raises(gspread.exceptions.APIError) as info:  # 2 successful writes + 1 = quota
        for _ in range(2):
            ws.append_rows([["q"]])
    assert info.value.code == 429 and "Quota exceeded" in str(info.value)
    log = sheets.requests()
    appends = [e for e in log["log"] if e["endpoint"] == "values_append"]
    assert log["counts"]["values_append"] == len(appends) == 6
    assert [e["status"] for e in appends] == [429, 429, 200, 500, 200, 429]
    assert all(isinstance(e["t"], float) for e in appends)


def test_fake_rejects_unknown_fault_keys(sheets):
    with pytest.raises(Exception):
        sheets.faults(ratio_418=1.0)


def test_redirect_only_touches_google_prefixes():
    cls = redirecting_client("http://127.0.0.1:1/")
    seen = []

    class Spy(cls):
        def __init__(self):
            self.timeout = None
            self.session = type("S", (), {"request": lambda _, **kw: seen.append(kw["url"]) or
                                          type("R", (), {"ok": True})()})()

    Spy().request("get", "https://sheets.googleapis.com/v4/spreadsheets/x")
    Spy().request("get", "https://www.googleapis.com/drive/v3/files")
    Spy().request("get", "https://example.org/other")
    assert seen == ["http://127.0.0.1:1/v4/spreadsheets/x", "http://127.0.0.1:1/drive/v3/files",
                    "https://example.org/other"]


def test_credentials_file_errors_are_clear_and_leak_nothing(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(PermanentError, match="GOOGLE_CREDENTIALS_FILE: .*nope.json is missing"):
        load_credentials(missing)
    bad = tmp_path / "bad.json"
    bad.write_text("not json -----BEGIN PRIVATE KEY----- secret")
    with pytest.raises(PermanentError, match="not valid JSON") as info:
        load_credentials(bad)
    assert "secret" not in str(info.value)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"type": "external_account_x", "private_key": "secret"}))
    with pytest.raises(PermanentError, match="expected 'service_account'") as info:
        load_credentials(wrong)
    assert "secret" not in str(info.value)
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"type": "service_account", "private_key": "secret"}))
    with pytest.raises(PermanentError, match="incomplete service_account") as info:
        load_credentials(partial)
    assert "secret" not in str(info.value)


def test_real_google_needs_a_readable_credentials_file(make_config, tmp_path):
    from contracts.settings import ConfigError
    with pytest.raises(ConfigError, match="GOOGLE_CREDENTIALS_FILE"):
        make_config(SHEETS_API_URL="", GOOGLE_CREDENTIALS_FILE=str(tmp_path / "absent.json"))
