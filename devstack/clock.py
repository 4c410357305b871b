"""Local time: a settable clock, EventBridge Scheduler expressions, and the tick.

The local stack never lets wall-clock time decide anything. ``LocalClock`` is
the process's clock while a stack runs (``bootstrap.set_clock``); it stands
still until it is moved:

- ``clock.set(t)`` jumps to ``t`` and fires nothing;
- ``stack.tick(t)`` walks to ``t`` and, at each due moment in order, sets the
  clock there, runs the TTL reaper, fires what is due and drains the events
  that caused (``LocalScheduler.tick``).

What fires, read through the emulator's Scheduler API (the template's
recurring schedules are put there by ``gaps.create_template_schedules``):

- one-time ``at(...)`` schedules that are ENABLED, target a function of this
  stack and are due by ``to`` and have not fired; a time already past when
  the tick starts fires at the tick's start (late rather than never: an
  expiry must not be skipped). After firing, ``ActionAfterCompletion: DELETE``
  deletes the schedule; otherwise it stays and never fires again;
- ``rate(...)`` and ``cron(...)`` schedules: every occurrence in
  (clock at the tick's start, ``to``]. A ``rate()`` more often than daily is
  coalesced when a tick spans more than two days: it fires only at its last
  occurrence in each 24 hours counted back from ``to`` (the sweep is
  idempotent; hundreds of identical runs would only slow the tick down).
  ``cron()`` is never coalesced: each daily run fires.

Deliberate differences from EventBridge Scheduler (documented, not gaps of
the emulator): firing is exact to the second (AWS: within the minute); a
``rate()`` schedule's first run is one period after the clock first saw it
(or its StartDate), not at creation; a failed invocation is retried twice at
once, as Lambda's asynchronous retries would (AWS: after about 1 and 2
minutes); time zones follow ``zoneinfo`` with AWS's daylight-saving rules: a
cron time that does not exist (spring forward) is skipped, one that exists
twice (fall back) fires once.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from devstack.runtime import LocalRuntime, RunReport

log = logging.getLogger(__name__)


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime; a naive one is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class LocalClock:
    """The stack's controllable time: stands still until ``set`` or ``advance`` moves it."""

    def __init__(self, at: datetime | None = None) -> None:
        self._now = utc(at) if at is not None else datetime.now(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, to: datetime) -> None:
        """Jump to ``to`` (either direction) without firing anything."""
        with self._lock:
            self._now = utc(to)

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by ``delta`` without firing anything; the new time."""
        with self._lock:
            self._now += delta
            return self._now

    def __repr__(self) -> str:
        return f"LocalClock({self.now().isoformat()})"


# ---------------------------------------------------------------- expressions


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


@dataclass
class Firing:
    """One schedule invocation during a tick."""

    schedule: str  # group/name
    at: datetime
    function: str  # logical id
    kind: str  # "one-time" | "recurring"
    event: Any
    result: Any = None
    error: str | None = None
    attempts: int = 0
    deleted: bool = False  # ActionAfterCompletion DELETE applied
    coalesced: int = 0  # occurrences folded into this firing

    def to_json(self) -> dict[str, Any]:
        return {
            "schedule": self.schedule,
            "at": self.at.isoformat(),
            "function": self.function,
            "kind": self.kind,
            "event": self.event,
            "result": self.result,
            "error": self.error,
            "attempts": self.attempts,
            "deleted": self.deleted,
            "coalesced": self.coalesced,
        }


@dataclass
class Reaped:
    """An item the TTL reaper deleted."""

    table: str  # logical id
    keys: dict[str, Any]
    at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "keys": self.keys, "at": self.at.isoformat()}


@dataclass
class TickReport:
    """What ``tick`` did: firings and reaped items in order, and the drain totals."""

    started: datetime
    to: datetime
    firings: list[Firing] = field(default_factory=list)
    reaped: list[Reaped] = field(default_factory=list)
    drained: RunReport | None = None
    errors: list[str] = field(default_factory=list)  # schedules that could not fire at all
    elapsed_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        drained = self.drained
        return {
            "started": self.started.isoformat(),
            "to": self.to.isoformat(),
            "firings": [f.to_json() for f in self.firings],
            "reaped": [r.to_json() for r in self.reaped],
            "drained": {
                "invocations": drained.invocations,
                "messages": drained.messages,
                "stream_records": drained.stream_records,
                "filtered": drained.filtered,
                "discarded": drained.discarded,
                "dead_lettered": drained.dead_lettered,
                "errors": list(drained.errors),
            }
            if drained is not None
            else None,
            "errors": list(self.errors),
            "elapsed_s": round(self.elapsed_s, 3),
        }


class TickError(RuntimeError):
    """The tick could not finish (events did not drain); ``report`` holds what it did."""

    def __init__(self, message: str, report: TickReport) -> None:
        super().__init__(message)
        self.report = report


# How often a coalesced rate() fires at most, and from which tick length on.
COALESCE_EVERY = timedelta(hours=24)
COALESCE_AFTER = timedelta(days=2)
# Lambda's default for asynchronous invocations: the first try and two retries.
ASYNC_ATTEMPTS = 3


@dataclass
class _Schedule:
    """A schedule as the local scheduler tracks it between ticks."""

    arn: str
    group: str
    name: str
    modified: Any  # LastModificationDate: details are re-read when it changes
    state: str
    expression: At | Rate | Cron | None
    error: str | None
    function: str | None  # logical id of the target, None: not this stack's
    payload: str | None
    delete_after: bool
    anchor: datetime  # rate(): occurrences are anchor + k * period
    not_before: datetime | None = None  # StartDate (recurring only, as in AWS)
    not_after: datetime | None = None  # EndDate (recurring only)
    fired: bool = False  # one-time: already fired (and kept); an update re-arms it

    @property
    def label(self) -> str:
        return f"{self.group}/{self.name}"


Reaper = Callable[[datetime], list[Reaped]]


class LocalScheduler:
    """Fires the emulator's schedules against the local runtime as the clock moves."""

    def __init__(
        self,
        client: Callable[[str], Any],
        runtime: LocalRuntime,
        clock: LocalClock,
        reaper: Reaper,
    ) -> None:
        self._client = client
        self._runtime = runtime
        self._clock = clock
        self._reaper = reaper
        self._known: dict[str, _Schedule] = {}

    # ------------------------------------------------------------ reading

    def schedules(self) -> list[_Schedule]:
        """This stack's schedules as the emulator has them now (details cached per version)."""
        scheduler = self._client("scheduler")
        functions = {spec.arn: spec.logical_id for spec in self._runtime.functions.values()}
        seen: dict[str, _Schedule] = {}
        for page in scheduler.get_paginator("list_schedules").paginate():
            for summary in page["Schedules"]:
                arn = summary["Arn"]
                known = self._known.get(arn)
                if known is None or known.modified != summary.get("LastModificationDate"):
                    try:
                        known = self._describe(scheduler, summary, functions, known)
                    except scheduler.exceptions.ResourceNotFoundException:
                        continue  # deleted since it was listed
                seen[arn] = known
        self._known = seen
        return [s for s in seen.values() if s.function is not None]

    def _describe(
        self,
        scheduler: Any,
        summary: dict[str, Any],
        functions: dict[str, str],
        previous: _Schedule | None,
    ) -> _Schedule:
        detail = scheduler.get_schedule(Name=summary["Name"], GroupName=summary["GroupName"])
        target = detail.get("Target") or {}
        # A qualified ARN (":$LATEST", an alias) names the same function here.
        function_arn = ":".join(str(target.get("Arn", "")).split(":")[:7])
        expression: At | Rate | Cron | None = None
        error = None
        try:
            expression = parse_expression(
                detail.get("ScheduleExpression", ""), detail.get("ScheduleExpressionTimezone")
            )
        except ScheduleError as exc:
            error = str(exc)
        start, end = detail.get("StartDate"), detail.get("EndDate")
        not_before = utc(start) if isinstance(start, datetime) else None
        not_after = utc(end) if isinstance(end, datetime) else None
        # A rate() runs from its StartDate; without one, from when it was first seen here.
        anchor = not_before or self._clock.now()
        if previous is not None and previous.expression == expression:
            anchor = previous.anchor  # an update that keeps the rate keeps its phase
        return _Schedule(
            arn=summary["Arn"],
            group=summary["GroupName"],
            name=summary["Name"],
            modified=summary.get("LastModificationDate"),
            # moto's UpdateSchedule drops State when it is not given; AWS's default is ENABLED.
            state=detail.get("State") or "ENABLED",
            expression=expression,
            error=error,
            function=functions.get(function_arn),
            payload=target.get("Input"),
            delete_after=detail.get("ActionAfterCompletion") == "DELETE",
            anchor=anchor,
            not_before=not_before,
            not_after=not_after,
        )

    # ------------------------------------------------------------ planning

    def _next_due(
        self,
        schedule: _Schedule,
        after: datetime,
        start: datetime,
        to: datetime,
        coalesce_after: timedelta,
    ) -> tuple[datetime, int] | None:
        """When ``schedule`` fires next in (after, to], and how many runs that firing stands for."""
        expression = schedule.expression
        if schedule.state != "ENABLED" or expression is None:
            return None
        if isinstance(expression, At):
            if schedule.fired or expression.when > to:
                return None
            return max(expression.when, start), 1
        if schedule.not_after is not None:
            to = min(to, schedule.not_after)
        if schedule.not_before is not None:
            after = max(after, schedule.not_before - timedelta(microseconds=1))
        if isinstance(expression, Cron):
            return next(((t, 1) for t in expression.occurrences(after, to)), None)
        period = expression.period
        first = _next_rate(schedule.anchor, period, after)
        if first > to:
            return None
        if to - start <= coalesce_after or period >= COALESCE_EVERY:
            return first, 1
        # Coalesced: the last occurrence of the 24-hour window (counted back from `to`)
        # that holds the first pending one.
        windows_back = (to - first) // COALESCE_EVERY
        window_end = to - windows_back * COALESCE_EVERY
        last = _last_rate(schedule.anchor, period, window_end)
        return last, (last - first) // period + 1

    # ------------------------------------------------------------ ticking

    def tick(
        self,
        to: datetime,
        drain: Callable[[], RunReport],
        *,
        coalesce_after: timedelta = COALESCE_AFTER,
    ) -> TickReport:
        """Advance the clock to ``to``, firing and reaping in order; drain after each step.

        ``coalesce_after``: a tick longer than this coalesces frequent ``rate()``
        schedules to one firing per 24 hours (``timedelta(0)``: always).
        """
        from devstack.runtime import DrainTimeout, RunReport

        started_at = time.perf_counter()
        to = utc(to)
        start = self._clock.now()
        if to < start:
            raise ValueError(f"the clock is at {start.isoformat()}; it does not run back to {to}")
        report = TickReport(started=start, to=to, drained=RunReport())
        assert report.drained is not None
        cursors: dict[str, datetime] = {}  # recurring schedules: fired up to here
        reported: set[str] = set()

        def step_drain() -> None:
            assert report.drained is not None
            try:
                report.drained.add(drain())
            except DrainTimeout as exc:
                report.drained.add(exc.report)
                report.elapsed_s = time.perf_counter() - started_at
                raise TickError(f"at {self._clock.now().isoformat()}: {exc}", report) from exc

        def reap() -> None:
            reaped = self._reaper(self._clock.now())
            report.reaped.extend(reaped)
            if reaped:
                step_drain()

        reap()
        step_drain()  # anything the caller left queued happens before time moves
        while True:
            due: list[tuple[datetime, int, _Schedule]] = []
            for schedule in self.schedules():
                if schedule.error and schedule.arn not in reported:
                    reported.add(schedule.arn)
                    report.errors.append(f"{schedule.label}: {schedule.error}")
                after = cursors.get(schedule.arn, start)
                planned = self._next_due(schedule, after, start, to, coalesce_after)
                if planned is not None:
                    due.append((planned[0], planned[1], schedule))
            if not due:
                break
            when = min(at for at, _, _ in due)
            if when > self._clock.now():
                self._clock.set(when)
                reap()
            for at, runs, schedule in sorted(due, key=lambda d: (d[0], d[2].label)):
                if at != when:
                    continue
                cursors[schedule.arn] = at
                report.firings.append(self._fire(schedule, runs))
                step_drain()
        if to > self._clock.now():
            self._clock.set(to)
            reap()
        report.elapsed_s = time.perf_counter() - started_at
        return report

    def _fire(self, schedule: _Schedule, runs: int) -> Firing:
        assert schedule.function is not None
        one_time = isinstance(schedule.expression, At)
        firing = Firing(
            schedule=schedule.label,
            at=self._clock.now(),
            function=schedule.function,
            kind="one-time" if one_time else "recurring",
            event=None,
            coalesced=runs - 1,
        )
        try:
            # Scheduler hands Lambda the Input as the payload; none means an empty object.
            firing.event = json.loads(schedule.payload) if schedule.payload else {}
        except ValueError:
            firing.error = f"Input is not JSON: {schedule.payload!r}"
        if firing.error is None:
            for observe in list(self._runtime.observers):
                observe(schedule.function, firing.event)
            for attempt in range(1, ASYNC_ATTEMPTS + 1):
                firing.attempts = attempt
                try:
                    firing.result = self._runtime.invoke(schedule.function, firing.event)
                    firing.error = None
                    break
                except Exception as exc:
                    log.exception("schedule %s: %s failed", schedule.label, schedule.function)
                    firing.error = f"{schedule.function}: {type(exc).__name__}: {exc}"
            try:
                json.dumps(firing.result)
            except (TypeError, ValueError):
                firing.result = repr(firing.result)
        if one_time:
            schedule.fired = True
            if schedule.delete_after:
                scheduler = self._client("scheduler")
                try:
                    scheduler.delete_schedule(Name=schedule.name, GroupName=schedule.group)
                    firing.deleted = True
                except scheduler.exceptions.ResourceNotFoundException:
                    pass  # the function deleted it itself
        return firing


def _next_rate(anchor: datetime, period: timedelta, after: datetime) -> datetime:
    """The first ``anchor + k * period`` (k >= 1) later than ``after``."""
    if after < anchor:
        return anchor + period
    return anchor + ((after - anchor) // period + 1) * period


def _last_rate(anchor: datetime, period: timedelta, until: datetime) -> datetime:
    """The last ``anchor + k * period`` (k >= 1) at or before ``until``."""
    return anchor + max(1, (until - anchor) // period) * period
