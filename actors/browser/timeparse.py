"""Turn the time a chat page shows into an aware datetime, as the site spec says (`formats`).

Pure functions with the clock passed in (`now`, aware): the same page read twice gives the same
answer, and tests need no real clock. A value no format can parse is `None`: the caller reports it
(wrong data is worse than an error), it never falls back to the raw text.
"""
from __future__ import annotations

import re
import time as time_mod
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from contracts.sitespec import has_date

_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_AGO = re.compile(r"^(\d+)\s*(s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hr|hrs|hour|hours|"
                  r"d|day|days)\s+ago$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([ap]\.?m\.?)?$")
# MeetMe's inbox `data-timestamp`: epoch seconds with two three-digit fractions, `1723….254.205`
# (docs: /work/shared/meetme-evidence.md, "Inbox"). Read as seconds, milliseconds, microseconds
# (1723….254205): the first fraction is the usual one, the second only adds finer digits, so even
# were it a counter it would move the time by less than a millisecond.
_EPOCH_TWO_FRACTIONS = re.compile(r"^(\d+)\.(\d{3})\.(\d{3})$")


def parse_day(text: str, formats: list[str], now: datetime, tz: ZoneInfo) -> date | None:
    """A date header ("Today", "Yesterday", "Monday", "30 November 2026") as a calendar date."""
    value = " ".join(text.split())
    today = now.astimezone(tz).date()
    for fmt in formats:
        if fmt == "relative":
            day = _relative_day(value.lower(), today)
            if day is not None:
                return day
        elif fmt in ("iso8601", "epoch", "epoch_ms"):
            moment = _absolute(value, fmt, tz)
            if moment is not None:
                return moment.astimezone(tz).date()
        else:
            try:
                parsed = datetime.strptime(value, fmt)
            except ValueError:
                continue
            if "%Y" not in fmt and "%y" not in fmt:  # "30 November": the latest such day not after today
                try:
                    parsed = parsed.replace(year=today.year)
                    if parsed.date() > today:
                        parsed = parsed.replace(year=today.year - 1)
                except ValueError:
                    continue
            return parsed.date()
    return None


def parse_time(text: str, formats: list[str], now: datetime, tz: ZoneInfo,
               day: date | None = None) -> datetime | None:
    """A message time as an aware UTC datetime. `day` is the date of the nearest preceding date
    header (for a time of day); without one, the poll's date (or yesterday, if that would put the
    message in the future)."""
    return parse_time_of(text, formats, now, tz, day)[0]


def parse_time_of(text: str, formats: list[str], now: datetime, tz: ZoneInfo,
                  day: date | None = None) -> tuple[datetime | None, bool]:
    """parse_time, and whether the date was a guess (a time of day with no `day` given)."""
    value = " ".join(text.split())
    if not value:
        return None, False
    for fmt in formats:
        if fmt in ("iso8601", "epoch", "epoch_ms"):
            moment = _absolute(value, fmt, tz)
        elif fmt == "relative":
            moment = _relative(value.lower(), now, tz)
        elif fmt == "ago":
            moment = _ago(value.lower(), now)
        else:
            moment = _pattern(value, fmt, now, tz, day)
        if moment is not None:
            return moment.astimezone(timezone.utc), day is None and "%" in fmt and not has_date(fmt)
    return None, False


def _absolute(value: str, fmt: str, tz: ZoneInfo) -> datetime | None:
    if fmt == "iso8601":
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=tz)
    two = _EPOCH_TWO_FRACTIONS.match(value) if fmt == "epoch" else None
    if two:
        seconds, ms, us = (int(g) for g in two.groups())
        if seconds < 1e8:
            return None
        try:
            return datetime.fromtimestamp(seconds, timezone.utc) + timedelta(microseconds=ms * 1000 + us)
        except (OverflowError, OSError, ValueError):
            return None
    try:
        number = float(value)
    except ValueError:
        return None
    if fmt == "epoch_ms":
        number /= 1000
    if number < 1e8:  # before 1973: a year, a clock or a count, not an epoch time
        return None
    try:
        return datetime.fromtimestamp(number, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def _on_day(clock: time, day: date | None, now: datetime, tz: ZoneInfo) -> datetime:
    if day is not None:
        return datetime.combine(day, clock, tz)
    local_now = now.astimezone(tz)
    moment = datetime.combine(local_now.date(), clock, tz)
    if moment > local_now + timedelta(minutes=5):  # "23:58" read at 00:01 was yesterday
        moment -= timedelta(days=1)
    return moment


def _pattern(value: str, fmt: str, now: datetime, tz: ZoneInfo, day: date | None) -> datetime | None:
    try:
        parsed = datetime.strptime(value, fmt)
    except ValueError:
        if "%d" in fmt and "%Y" not in fmt and "%y" not in fmt:  # "29 Feb": parse it in a leap year
            try:
                parsed = datetime.strptime(f"2024 {value}", f"%Y {fmt}")
            except ValueError:
                return None
        else:
            return None
    today = now.astimezone(tz).date()
    if not has_date(fmt):
        return _on_day(parsed.time(), day, now, tz)
    if not any(f"%{d}" in fmt for d in "dmbBjUWxcGVyY"):  # only a weekday ("Mon 22:51")
        if "%a" not in fmt and "%A" not in fmt:
            return None
        back = (today.weekday() - time_mod.strptime(value, fmt).tm_wday) % 7  # datetime drops %a
        return datetime.combine(today - timedelta(days=back), parsed.time(), tz)
    if "%Y" not in fmt and "%y" not in fmt:  # "30 Nov 22:51": the latest such day, not in the future
        try:
            parsed = parsed.replace(year=today.year)
            if parsed.date() > today:
                parsed = parsed.replace(year=today.year - 1)
        except ValueError:  # 29 February of a year that has none
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed


def _relative_day(value: str, today: date) -> date | None:
    if value == "today":
        return today
    if value == "yesterday":
        return today - timedelta(days=1)
    if value in _WEEKDAYS:  # the latest such day before today
        back = (today.weekday() - _WEEKDAYS.index(value)) % 7 or 7
        return today - timedelta(days=back)
    return None


def _clock(text: str) -> time | None:
    m = _CLOCK.match(text.strip())
    if not m:
        return None
    hour, minute, second = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    if m.group(4):
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if m.group(4).startswith("p") else 0)
    if hour > 23 or minute > 59 or second > 59:
        return None
    return time(hour, minute, second)


def _ago(value: str, now: datetime) -> datetime | None:
    if value in ("just now", "now"):
        return now
    m = _AGO.match(value)
    if not m:
        return None
    return now - timedelta(seconds=int(m.group(1)) * _UNIT_S[m.group(2)[0]])


def _relative(value: str, now: datetime, tz: ZoneInfo) -> datetime | None:
    word, _, rest = value.partition(" ")
    day = _relative_day(word.rstrip(","), now.astimezone(tz).date())
    if day is None or not rest:
        return None  # a day with no time of day is not a message time
    clock = _clock(rest.removeprefix("at ").strip())
    return datetime.combine(day, clock, tz) if clock else None
