"""The Sheets v4 fake speaks what gspread 6.2 sends, and its faults behave as documented; the
gspread client module reaches it by config and validates real-Google credentials files."""
from __future__ import annotations

import json

import gspread
import pytest

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
