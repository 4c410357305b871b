"""The local clock's pure parts: schedule expressions and event-filter patterns (no emulator)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devstack.clock import LocalClock
from devstack.event_filters import FilterError, compile_filter, filter_matches
from devstack.schedule_expressions import At, Cron, Rate, ScheduleError, parse_expression


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_the_clock_stands_still_until_moved() -> None:
    clock = LocalClock(_utc(2026, 1, 1))
    assert clock.now() == clock.now() == _utc(2026, 1, 1)
    assert clock.advance(timedelta(hours=2)) == _utc(2026, 1, 1, 2)
    clock.set(datetime(2025, 6, 1))  # naive: taken as UTC
    assert clock.now() == _utc(2025, 6, 1)


def test_at_is_read_in_its_time_zone() -> None:
    assert parse_expression("at(2027-06-30T00:00:00)") == At(_utc(2027, 6, 30))
    amsterdam = parse_expression("at(2027-06-30T09:00:00)", "Europe/Amsterdam")
    assert amsterdam == At(_utc(2027, 6, 30, 7))  # CEST is UTC+2


def test_rate_units() -> None:
    assert parse_expression("rate(1 hour)") == Rate(timedelta(hours=1))
    assert parse_expression("rate(15 minutes)") == Rate(timedelta(minutes=15))
    assert parse_expression("rate(2 days)") == Rate(timedelta(days=2))


def test_daily_cron_in_amsterdam_follows_daylight_saving_time() -> None:
    cron = parse_expression("cron(0 7 * * ? *)", "Europe/Amsterdam")
    assert isinstance(cron, Cron)
    runs = list(cron.occurrences(_utc(2027, 3, 26, 12), _utc(2027, 3, 30, 12)))
    # 07:00 CET is 06:00 UTC; from the 28th (CEST) it is 05:00 UTC
    assert runs == [
        _utc(2027, 3, 27, 6),
        _utc(2027, 3, 28, 5),
        _utc(2027, 3, 29, 5),
        _utc(2027, 3, 30, 5),
    ]


def test_cron_skips_a_time_that_does_not_exist_and_runs_a_doubled_one_once() -> None:
    cron = parse_expression("cron(30 2 * * ? *)", "Europe/Amsterdam")
    assert isinstance(cron, Cron)
    spring = list(cron.occurrences(_utc(2027, 3, 27), _utc(2027, 3, 29)))
    assert spring == [_utc(2027, 3, 27, 1, 30)]  # 02:30 on the 28th does not exist
    autumn = list(cron.occurrences(_utc(2027, 10, 31), _utc(2027, 11, 1)))
    assert autumn == [_utc(2027, 10, 31, 0, 30)]  # the first 02:30 (CEST) only


def test_cron_fields_lists_ranges_steps_and_names() -> None:
    cron = parse_expression("cron(0/20 8-9 ? JAN-MAR MON,FRI 2027)")
    assert isinstance(cron, Cron)
    runs = list(cron.occurrences(_utc(2027, 1, 1), _utc(2027, 1, 5)))
    # 2027-01-01 is a Friday, 2027-01-04 a Monday
    assert [r.strftime("%d %H:%M") for r in runs] == [
        f"{day} {hour}:{minute}"
        for day in ("01", "04")
        for hour in ("08", "09")
        for minute in ("00", "20", "40")
    ]
    weekday = parse_expression("cron(0 12 ? * 1 *)")  # 1 = Sunday in AWS
    assert isinstance(weekday, Cron)
    assert list(weekday.occurrences(_utc(2027, 1, 1), _utc(2027, 1, 8))) == [_utc(2027, 1, 3, 12)]


@pytest.mark.parametrize(
    "expression",
    [
        "cron(0 7 * * * *)",  # both day fields given
        "cron(0 7 ? * ? *)",  # neither
        "cron(0 7 L * ? *)",  # L is not supported locally
        "cron(0 7 * * ?)",  # five fields
        "cron(61 7 * * ? *)",
        "rate(0 hours)",
        "rate(1 week)",
        "at(2027-06-30)",
        "every day",
    ],
)
def test_unsupported_or_invalid_expressions_raise(expression: str) -> None:
    with pytest.raises(ScheduleError):
        parse_expression(expression)


def test_filter_patterns_the_template_uses() -> None:
    inserts = compile_filter('{"eventName": ["INSERT", "MODIFY"]}')
    assert filter_matches(inserts, {"eventName": "MODIFY"})
    assert not filter_matches(inserts, {"eventName": "REMOVE"})
    ttl = compile_filter(
        '{"eventName": ["REMOVE"], "userIdentity": {"type": ["Service"],'
        ' "principalId": ["dynamodb.amazonaws.com"]}}'
    )
    service = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    assert filter_matches(ttl, {"eventName": "REMOVE", "userIdentity": service})
    assert not filter_matches(ttl, {"eventName": "REMOVE"})  # a user's delete
    assert not filter_matches(ttl, {"eventName": "REMOVE", "userIdentity": {"type": "User"}})


def test_filter_operators() -> None:
    record = {"dynamodb": {"NewImage": {"status": {"S": "granted"}, "n": {"N": "5"}}}}
    assert filter_matches(
        compile_filter('{"dynamodb": {"NewImage": {"status": {"S": [{"prefix": "gra"}]}}}}'), record
    )
    assert filter_matches(compile_filter('{"dynamodb": {"OldImage": [{"exists": false}]}}'), record)
    assert not filter_matches(
        compile_filter('{"dynamodb": {"OldImage": [{"exists": true}]}}'), record
    )
    assert filter_matches(
        compile_filter(
            '{"dynamodb": {"NewImage": {"status": {"S": [{"anything-but": ["revoked"]}]}}}}'
        ),
        record,
    )
    assert filter_matches(compile_filter('{"a": [1]}'), {"a": 1.0})
    assert not filter_matches(compile_filter('{"a": [1]}'), {"a": True})
    assert filter_matches(compile_filter('{"a": ["x"]}'), {"a": ["y", "x"]})  # any element
    with pytest.raises(FilterError):
        compile_filter('{"a": [{"numeric": [">", 1]}]}')
    with pytest.raises(FilterError):
        compile_filter('{"$or": [{"a": ["x"]}]}')
