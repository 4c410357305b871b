"""Local time: a settable clock, EventBridge Scheduler expressions, and the tick.

The local stack never lets wall-clock time decide anything. ``LocalClock`` is
the process's clock while a stack runs (``bootstrap.set_clock``); it stands
still until it is moved:

- ``clock.set(t)`` jumps to ``t`` and fires nothing;
- ``stack.tick(t)`` walks to ``t`` and, at each due moment in order, sets the
  clock there, runs the TTL reaper, fires what is due and drains the events
  that caused (``LocalScheduler.tick``).

What fires, read through the emulator's Scheduler API (the template's
recurring schedules are put there by ``resource_fills.create_template_schedules``):

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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from devstack.invocations import DrainTimeout, RunReport
from devstack.runtime import LocalRuntime
from devstack.schedule_expressions import (
    At,
    Cron,
    Rate,
    ScheduleError,
    last_rate,
    next_rate,
    parse_expression,
    utc,
)
from devstack.tick_report import Firing, Reaped, TickError, TickReport

log = logging.getLogger(__name__)


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


@dataclass
class _Tick:
    """One tick in progress: its report, the drain it runs, how far each schedule fired."""

    report: TickReport
    drained: RunReport  # the report's drain totals (never None during the tick)
    drain: Callable[[], RunReport]
    started_at: float  # perf_counter at the start
    cursors: dict[str, datetime] = field(default_factory=dict)  # recurring: fired up to here
    reported: set[str] = field(default_factory=set)  # schedules whose error is reported


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
        first = next_rate(schedule.anchor, period, after)
        if first > to:
            return None
        if to - start <= coalesce_after or period >= COALESCE_EVERY:
            return first, 1
        # Coalesced: the last occurrence of the 24-hour window (counted back from `to`)
        # that holds the first pending one.
        windows_back = (to - first) // COALESCE_EVERY
        window_end = to - windows_back * COALESCE_EVERY
        last = last_rate(schedule.anchor, period, window_end)
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
        started_at = time.perf_counter()
        to = utc(to)
        start = self._clock.now()
        if to < start:
            raise ValueError(f"the clock is at {start.isoformat()}; it does not run back to {to}")
        drained = RunReport()
        tick = _Tick(TickReport(started=start, to=to, drained=drained), drained, drain, started_at)
        self._reap(tick)
        self._drain(tick)  # anything the caller left queued happens before time moves
        while due := self._due(tick, coalesce_after):
            when = min(at for at, _, _ in due)
            if when > self._clock.now():
                self._clock.set(when)
                self._reap(tick)
            for at, runs, schedule in sorted(due, key=lambda d: (d[0], d[2].label)):
                if at == when:
                    tick.cursors[schedule.arn] = at
                    tick.report.firings.append(self._fire(schedule, runs))
                    self._drain(tick)
        if to > self._clock.now():
            self._clock.set(to)
            self._reap(tick)
        tick.report.elapsed_s = time.perf_counter() - started_at
        return tick.report

    def _drain(self, tick: _Tick) -> None:
        """Run what the last step queued; a drain that times out ends the tick."""
        try:
            tick.drained.add(tick.drain())
        except DrainTimeout as exc:
            tick.drained.add(exc.report)
            tick.report.elapsed_s = time.perf_counter() - tick.started_at
            raise TickError(f"at {self._clock.now().isoformat()}: {exc}", tick.report) from exc

    def _reap(self, tick: _Tick) -> None:
        """The TTL reaper at the clock's time; what it deleted may have caused events."""
        reaped = self._reaper(self._clock.now())
        tick.report.reaped.extend(reaped)
        if reaped:
            self._drain(tick)

    def _due(self, tick: _Tick, coalesce_after: timedelta) -> list[tuple[datetime, int, _Schedule]]:
        """Every schedule's next firing in the tick (when, runs it stands for, schedule)."""
        due = []
        report = tick.report
        for schedule in self.schedules():
            if schedule.error and schedule.arn not in tick.reported:
                tick.reported.add(schedule.arn)
                report.errors.append(f"{schedule.label}: {schedule.error}")
            after = tick.cursors.get(schedule.arn, report.started)
            planned = self._next_due(schedule, after, report.started, report.to, coalesce_after)
            if planned is not None:
                due.append((planned[0], planned[1], schedule))
        return due

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
