"""Site times as the site spec's `formats` describe them, with the clock passed in; message
identity that never merges two messages; the site spec's own validation."""
from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest
import yaml

from actors.browser.extract import Reader, Seen, identify
from actors.browser.timeparse import parse_day, parse_time
from contracts.settings import ROOT
from contracts.sitespec import SiteConf

UTC = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 12, 2, 9, 30, tzinfo=timezone.utc)  # a Wednesday


def iso(dt):
    return dt.isoformat() if dt else None


@pytest.mark.parametrize("text,formats,expect", [
    ("2026-12-01T22:51:07Z", ["iso8601"], "2026-12-01T22:51:07+00:00"),
    ("2026-12-01T22:51:07+01:00", ["iso8601"], "2026-12-01T21:51:07+00:00"),
    ("1764629467", ["epoch"], "2025-12-01T22:51:07+00:00"),
    ("1764629467000", ["epoch_ms"], "2025-12-01T22:51:07+00:00"),
    ("1764629467.254", ["epoch"], "2025-12-01T22:51:07.254000+00:00"),
    # MeetMe's data-timestamp (meetme-evidence.md): seconds, milliseconds, microseconds
    ("1764629467.254.205", ["epoch"], "2025-12-01T22:51:07.254205+00:00"),
    ("1764629467.000.001", ["epoch"], "2025-12-01T22:51:07.000001+00:00"),
    ("1764629467.254.20", ["epoch"], None),                              # not that form: refused
    ("1764629467.254.205.1", ["epoch"], None),
    ("2026.254.205", ["epoch"], None),                                   # not an epoch time
    ("1764629467.254.205", ["epoch_ms"], None),                          # the form is seconds'
    ("01.12.2026 22:51", ["%d.%m.%Y %H:%M"], "2026-12-01T22:51:00+00:00"),
    ("  08:15 ", ["%H:%M"], "2026-12-02T08:15:00+00:00"),                # today
    ("23:58", ["%H:%M"], "2026-12-01T23:58:00+00:00"),                   # would be the future: yesterday
    ("Yesterday 22:51", ["relative"], "2026-12-01T22:51:00+00:00"),
    ("today at 9:05 am", ["relative"], "2026-12-02T09:05:00+00:00"),
    ("Monday 8:00 PM", ["relative"], "2026-11-30T20:00:00+00:00"),
    ("5 min ago", ["ago"], "2026-12-02T09:25:00+00:00"),
    ("just now", ["ago"], "2026-12-02T09:30:00+00:00"),
    ("22:51", ["iso8601", "%H:%M"], "2026-12-01T22:51:00+00:00"),        # the first that parses wins
    ("garbage", ["iso8601", "%H:%M", "relative"], None),
    ("30 Nov 10:00", ["%d %b %H:%M"], "2026-11-30T10:00:00+00:00"),       # no year: never 1900
    ("24 Dec 10:00", ["%d %b %H:%M"], "2025-12-24T10:00:00+00:00"),       # ... nor the future
    ("29 Feb 10:00", ["%d %b %H:%M"], None),                             # no such day this year
    ("Mon 22:51", ["%a %H:%M"], "2026-11-30T22:51:00+00:00"),             # the weekday counts
    ("Wed 08:00", ["%a %H:%M"], "2026-12-02T08:00:00+00:00"),
    ("2026", ["epoch", "%Y"], "2026-01-01T00:00:00+00:00"),              # not 1970
    ("5 min ago", ["relative"], None),                                   # that is `ago`
    ("", ["iso8601"], None),
    ("Today", ["relative"], None),                                       # a day is not a time
])
def test_message_times(text, formats, expect):
    assert iso(parse_time(text, formats, NOW, UTC)) == expect


def test_time_of_day_on_the_header_date_and_in_the_site_zone():
    day = parse_day("Monday, 30 November 2026", ["relative", "%A, %d %B %Y"], NOW, UTC)
    assert day == date(2026, 11, 30)
    assert iso(parse_time("22:51", ["%H:%M"], NOW, UTC, day)) == "2026-11-30T22:51:00+00:00"
    # the site shows Berlin time: 22:51 there is 21:51 UTC
    assert iso(parse_time("22:51", ["%H:%M"], NOW, BERLIN, day)) == "2026-11-30T21:51:00+00:00"
    assert parse_day("Yesterday", ["relative"], NOW, UTC) == date(2026, 12, 1)
    assert parse_day("today", ["relative"], NOW, UTC) == date(2026, 12, 2)
    assert parse_day("Wednesday", ["relative"], NOW, UTC) == date(2026, 11, 25)  # a week ago
    assert parse_day("30 November", ["%d %B"], NOW, UTC) == date(2026, 11, 30)
    assert parse_day("24 December", ["%d %B"], NOW, UTC) == date(2025, 12, 24)  # not in the future
    assert parse_day("Someday", ["relative", "%d %B"], NOW, UTC) is None


def _seen(sender, text, minute, direction="in", site_id=None):
    return Seen(site_id=site_id, sender=sender, text=text, direction=direction,
                sent_at=datetime(2026, 12, 2, 9, minute, tzinfo=timezone.utc))


def test_identical_messages_in_one_minute_get_distinct_stable_ids():
    page = [_seen("Al", "ok", 1), _seen("Al", "ok", 1), _seen("Al", "hi", 1), _seen("Al", "ok", 1)]
    ids = [m.message_id for m in identify("a", "meetme", "c1", page)]
    assert len(set(ids)) == 4
    assert ids == [m.message_id for m in identify("a", "meetme", "c1", list(page))]  # re-read
    # read with more context in front (older pages), the same messages keep their ids
    longer = [_seen("Al", "earlier", 0)] + page
    assert [m.message_id for m in identify("a", "meetme", "c1", longer)][1:] == ids
    # the site's own id wins when there is one; the content key is there either way
    with_ids = identify("a", "meetme", "c1", [_seen("Al", "ok", 1, site_id="m7")])
    assert with_ids[0].message_id == "a:c1:m7" and with_ids[0].content_key.startswith("h")


def test_every_shipped_site_spec_validates_and_a_bad_one_is_refused():
    for path in [*(ROOT / "conf" / "sites").glob("*.yaml"), *(ROOT / "standins" / "sites").glob("*.yaml")]:
        spec = SiteConf.model_validate(yaml.safe_load(path.read_text()))
        assert spec.name == path.stem
        Reader(spec)
    good = yaml.safe_load((ROOT / "standins" / "sites" / "classic.yaml").read_text())
    bad = {**good, "elements": {**good["elements"], "message_direction": {"outgoing": [".out"]}}}
    with pytest.raises(ValueError, match="message_direction: needs both 'outgoing' and 'incoming'"):
        SiteConf.model_validate(bad)
    missing = {**good, "elements": {k: v for k, v in good["elements"].items() if k != "message_time"}}
    with pytest.raises(ValueError, match="elements.message_time: required"):
        SiteConf.model_validate(missing)
    with pytest.raises(ValueError, match="unknown elements"):
        SiteConf.model_validate({**good, "elements": {**good["elements"], "mesage": {"selectors": ["x"]}}})
    with pytest.raises(ValueError, match="must be 'text' or '@attribute'"):
        SiteConf.model_validate({**good, "elements": {**good["elements"],
                                                      "message_time": {"selectors": ["t"], "from": ["datetime"]}}})


def test_a_spec_without_ids_needs_times_that_read_the_same_on_every_poll():
    good = yaml.safe_load((ROOT / "standins" / "sites" / "aria.yaml").read_text())  # no message_id
    els = good["elements"]
    with pytest.raises(ValueError, match="format 'ago' needs a message_id"):
        SiteConf.model_validate({**good, "elements": {**els, "message_time": {**els["message_time"],
                                                                              "formats": ["ago"]}}})
    no_headers = {k: v for k, v in els.items() if k != "date_header"}
    with pytest.raises(ValueError, match="need a date_header element or a message_id"):
        SiteConf.model_validate({**good, "elements": no_headers})
    # with site ids the time is no part of identity: allowed
    SiteConf.model_validate({**good, "elements": {**no_headers, "message_id": {"selectors": [":scope"]}}})


def _shapes(*items):
    return [_seen(sender, text, minute, direction) for sender, text, minute, direction in items]


def test_send_anchor_is_unique_and_never_formed_again_by_the_reply():
    from actors.browser.anchors import after_anchor, anchor as anchor_of
    spec = SiteConf.model_validate(yaml.safe_load((ROOT / "standins" / "sites" / "classic.yaml").read_text()))
    page = _shapes(("Al", "ready?", 0, "in"), ("me", "ok", 1, "out"), ("me", "ok", 1, "out"), ("me", "ok", 1, "out"))
    anchor = anchor_of(page, "ok", spec.anchor_messages)
    assert len(anchor) == 4  # three "ok" alone would be formed again by the fourth
    after_send = page + _shapes(("me", "ok", 1, "out"))
    assert [m.text for m in after_anchor(after_send, anchor)] == ["ok"]
    # an anchor that repeats on the page proves nothing
    loop = _shapes(("Al", "hi", 2, "in"), ("me", "ok", 2, "out"), ("Al", "hi", 2, "in"), ("me", "ok", 2, "out"))
    assert after_anchor(loop, [list(m.shape) for m in loop[:2]]) is None
    assert after_anchor(loop, []) == loop  # an empty conversation: all is after
