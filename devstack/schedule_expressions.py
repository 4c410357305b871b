"""EventBridge Scheduler's expressions: ``at(...)``, ``rate(...)`` and ``cron(...)``.

Parsed as AWS parses them (time zones by ``zoneinfo`` with AWS's daylight-saving
rules) and walked for the occurrences in a span of time; the local scheduler
(``devstack.clock``) decides with them what fires during a tick.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime; a naive one is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class ScheduleError(ValueError):
    """A schedule expression the local scheduler cannot (or AWS would not) evaluate."""


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(f"unknown time zone {name!r}") from exc


@dataclass(frozen=True)
class At:
    """``at(yyyy-mm-ddThh:mm:ss)`` in a time zone."""

    when: datetime  # aware, UTC


@dataclass(frozen=True)
class Rate:
    """``rate(value unit)``."""

    period: timedelta


_MONTHS = {
    m: i
    for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1
    )
}
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], 1)}
# name, lowest, highest, names
_CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minutes", 0, 59, {}),
    ("hours", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 1, 7, _DAYS),
    ("year", 1970, 2199, {}),
)


@dataclass(frozen=True)
class Cron:
    """A six-field ``cron(min hour dom month dow year)`` in a time zone.

    Supported: ``*``, ``?``, numbers, names (JAN, MON), lists, ranges and
    ``/`` steps. ``L``, ``W`` and ``#`` raise ``ScheduleError`` rather than
    being misread.
    """

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int] | None  # day of month; None: "?"
    months: frozenset[int]
    weekdays: frozenset[int] | None  # 1 = Sunday, as in AWS; None: "?"
    years: frozenset[int]
    zone: ZoneInfo

    def occurrences(self, after: datetime, until: datetime) -> Iterator[datetime]:
        """Each run in (after, until], in order, as aware UTC datetimes."""
        first = utc(after).astimezone(self.zone).date()
        last = utc(until).astimezone(self.zone).date()
        day = first
        while day <= last:
            if self._runs_on(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        at = _local_time(day, hour, minute, self.zone)
                        if at is not None and after < at <= until:
                            yield at
            day += timedelta(days=1)

    def _runs_on(self, day: date) -> bool:
        if day.year not in self.years or day.month not in self.months:
            return False
        if self.days is not None and day.day not in self.days:
            return False
        # Python: Monday is 0; AWS: Sunday is 1.
        return self.weekdays is None or (day.weekday() + 1) % 7 + 1 in self.weekdays


def _local_time(day: date, hour: int, minute: int, zone: ZoneInfo) -> datetime | None:
    """The UTC instant of a wall-clock time, or None where that time does not exist."""
    naive = datetime(day.year, day.month, day.day, hour, minute)
    aware = naive.replace(tzinfo=zone)  # fold=0: the first of two ambiguous times
    instant = aware.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != naive:
        return None  # skipped by a spring-forward transition
    return instant


def _cron_field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    def number(token: str) -> int:
        value = names.get(token.upper()) if token.isalpha() else None
        if value is None:
            if not token.isdigit():
                raise ScheduleError(f"cron {name}: {token!r} is not supported locally")
            value = int(token)
        if not low <= value <= high:
            raise ScheduleError(f"cron {name}: {value} is outside {low}-{high}")
        return value

    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() else None
        if step_text and (step is None or step < 1):
            raise ScheduleError(f"cron {name}: bad step in {part!r}")
        if base == "*":
            start, end = low, high
        elif "-" in base:
            start_text, end_text = base.split("-", 1)
            start, end = number(start_text), number(end_text)
        else:
            start = number(base)
            end = high if step else start
        if start > end:
            raise ScheduleError(f"cron {name}: empty range {part!r}")
        values.update(range(start, end + 1, step or 1))
    return frozenset(values)


def _cron(fields_text: str, zone: ZoneInfo) -> Cron:
    fields = fields_text.split()
    if len(fields) != 6:
        raise ScheduleError(f"cron() needs six fields, got {len(fields)}: {fields_text!r}")
    day_text, weekday_text = fields[2], fields[4]
    # AWS: exactly one of day-of-month and day-of-week is "?".
    if (day_text == "?") == (weekday_text == "?"):
        raise ScheduleError("cron(): exactly one of day-of-month and day-of-week must be '?'")
    parsed: list[frozenset[int] | None] = []
    for text, (name, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        parsed.append(None if text == "?" else _cron_field(text, name, low, high, names))
    minutes, hours, days, months, weekdays, years = parsed
    if minutes is None or hours is None or months is None or years is None:
        raise ScheduleError("cron(): '?' is allowed only in day-of-month and day-of-week")
    return Cron(minutes, hours, days, months, weekdays, years, zone)


_EXPRESSION = re.compile(r"^\s*(at|rate|cron)\((.*)\)\s*$")
_RATE_UNITS = {
    "minute": timedelta(minutes=1),
    "minutes": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "hours": timedelta(hours=1),
    "day": timedelta(days=1),
    "days": timedelta(days=1),
}


def parse_expression(expression: str, timezone: str | None = None) -> At | Rate | Cron:
    """Parse a Scheduler ``ScheduleExpression`` evaluated in ``timezone`` (default UTC)."""
    match = _EXPRESSION.match(expression or "")
    if match is None:
        raise ScheduleError(f"not a schedule expression: {expression!r}")
    kind, body = match.groups()
    zone = _zone(timezone)
    if kind == "at":
        try:
            local = datetime.strptime(body.strip(), "%Y-%m-%dT%H:%M:%S")
        except ValueError as exc:
            raise ScheduleError(f"at() needs yyyy-mm-ddThh:mm:ss: {expression!r}") from exc
        return At(local.replace(tzinfo=zone).astimezone(UTC))
    if kind == "rate":
        parts = body.split()
        if len(parts) != 2 or not parts[0].isdigit() or parts[1] not in _RATE_UNITS:
            raise ScheduleError(f"rate() needs 'value minute(s)|hour(s)|day(s)': {expression!r}")
        if int(parts[0]) < 1:
            raise ScheduleError(f"rate() needs a positive value: {expression!r}")
        return Rate(int(parts[0]) * _RATE_UNITS[parts[1]])
    return _cron(body, zone)


# ---------------------------------------------------------------- the tick


def next_rate(anchor: datetime, period: timedelta, after: datetime) -> datetime:
    """The first ``anchor + k * period`` (k >= 1) later than ``after``."""
    if after < anchor:
        return anchor + period
    return anchor + ((after - anchor) // period + 1) * period


def last_rate(anchor: datetime, period: timedelta, until: datetime) -> datetime:
    """The last ``anchor + k * period`` (k >= 1) at or before ``until``."""
    return anchor + max(1, (until - anchor) // period) * period
