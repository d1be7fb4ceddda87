"""Turn the time a chat page shows into an aware datetime, as the site spec says (`formats`).

Pure functions with the clock passed in (`now`, aware): the same page read twice gives the same
answer, and tests need no real clock. A value no format can parse is `None`: the caller reports it
(wrong data is worse than an error), it never falls back to the raw text.
"""
from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

_DATE_DIRECTIVES = set("dmbByYjUWaAcxGuV")  # a pattern with none of these is a time of day
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_AGO = re.compile(r"^(\d+)\s*(s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hr|hrs|hour|hours|"
                  r"d|day|days)\s+ago$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([ap]\.?m\.?)?$")


def has_date(pattern: str) -> bool:
    return any(f"%{d}" in pattern for d in _DATE_DIRECTIVES)


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
                parsed = parsed.replace(year=today.year)
                if parsed.date() > today:
                    parsed = parsed.replace(year=today.year - 1)
            return parsed.date()
    return None


def parse_time(text: str, formats: list[str], now: datetime, tz: ZoneInfo,
               day: date | None = None) -> datetime | None:
    """A message time as an aware UTC datetime. `day` is the date of the nearest preceding date
    header (for a time of day); without one, the poll's date (or yesterday, if that would put the
    message in the future)."""
    value = " ".join(text.split())
    if not value:
        return None
    for fmt in formats:
        if fmt in ("iso8601", "epoch", "epoch_ms"):
            moment = _absolute(value, fmt, tz)
        elif fmt == "relative":
            moment = _relative(value.lower(), now, tz)
        else:
            moment = _pattern(value, fmt, now, tz, day)
        if moment is not None:
            return moment.astimezone(timezone.utc)
    return None


def _absolute(value: str, fmt: str, tz: ZoneInfo) -> datetime | None:
    if fmt == "iso8601":
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=tz)
    try:
        number = float(value)
    except ValueError:
        return None
    if fmt == "epoch_ms":
        number /= 1000
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
        return None
    if not has_date(fmt):
        return _on_day(parsed.time(), day, now, tz)
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


def _relative(value: str, now: datetime, tz: ZoneInfo) -> datetime | None:
    if value in ("just now", "now"):
        return now
    m = _AGO.match(value)
    if m:
        unit = m.group(2)[0]
        return now - timedelta(seconds=int(m.group(1)) * _UNIT_S[unit])
    word, _, rest = value.partition(" ")
    day = _relative_day(word.rstrip(","), now.astimezone(tz).date())
    if day is None:
        return None
    if word.rstrip(",") == "today" and not rest:
        return None  # a day with no time of day: not a message time
    clock = _clock(rest.removeprefix("at ").strip()) if rest else None
    return datetime.combine(day, clock, tz) if clock else None
