"""Time on the local stack: the clock, schedules firing on tick, the TTL reaper, SES, control."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from devstack.control import control_file, tick_command
from devstack.stack import LocalStack
from quitclaim import bootstrap
from tests.integration.local.conftest import INGEST, Recorder, fresh_stack

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 26, 12, tzinfo=UTC)  # a Thursday, CET (UTC+1)
EXPIRY, REMINDERS = "ExpiryFunction", "RemindersFunction"


class Timed(Recorder):
    """A recorder that also notes the process clock at each call."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[datetime] = []

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.times.append(bootstrap.current_clock().now())
        return super().__call__(event, context)

    def kinds(self) -> list[Any]:
        return [
            c.event.get("kind", "records" if "Records" in c.event else None) for c in self.calls
        ]

    def of_kind(self, kind: str) -> list[datetime]:
        """When the calls of one kind ran."""
        return [t for k, t in zip(self.kinds(), self.times, strict=True) if k == kind]


@pytest.fixture
def timed() -> Iterator[tuple[LocalStack, Timed, Timed]]:
    """A stack at START with recorders for the scheduled functions (and a quiet ingest)."""
    stack = fresh_stack(start_time=START)
    expiry, reminders = Timed(), Timed()
    stack.runtime.override_handler(EXPIRY, expiry)
    stack.runtime.override_handler(REMINDERS, reminders)
    stack.runtime.override_handler(INGEST, Recorder())
    stack.runtime.override_handler("RecheckFunction", Recorder())
    stack.drain(timeout_s=10)
    try:
        yield stack, expiry, reminders
    finally:
        stack.stop()


def _one_time(stack: LocalStack, name: str, at: str, **extra: Any) -> str:
    group = stack.function_env(INGEST)["QC_SCHEDULE_GROUP"]
    stack.client("scheduler").create_schedule(
        Name=name,
        GroupName=group,
        ScheduleExpression=f"at({at})",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={
            "Arn": stack.function_env(INGEST)["QC_EXPIRY_TARGET_ARN"],
            "RoleArn": stack.function_env(INGEST)["QC_SCHEDULER_ROLE_ARN"],
            "Input": json.dumps({"kind": "consent_expiry", "consent_id": name}),
        },
        **extra,
    )
    return group


def _names(stack: LocalStack, group: str) -> list[str]:
    listed = stack.client("scheduler").list_schedules(GroupName=group)["Schedules"]
    return [s["Name"] for s in listed]


def test_the_stack_installs_its_clock_and_puts_the_previous_one_back() -> None:
    before = bootstrap.current_clock()
    stack = fresh_stack(start_time=START)
    try:
        assert bootstrap.current_clock() is stack.clock
        assert stack.clock.now() == START
    finally:
        stack.stop()
    assert bootstrap.current_clock() is before


def test_a_one_time_schedule_fires_at_its_time_and_deletes_itself(
    timed: tuple[LocalStack, Timed, Timed],
) -> None:
    stack, expiry, _ = timed
    # Given schedules created through the Scheduler API, as the expiry adapter does
    group = _one_time(stack, "expire-c1", "2027-06-30T10:00:00", ActionAfterCompletion="DELETE")
    _one_time(
        stack,
        "expire-amsterdam",
        "2027-06-30T10:00:00",
        ScheduleExpressionTimezone="Europe/Amsterdam",
    )
    _one_time(stack, "expire-disabled", "2027-06-30T09:00:00", State="DISABLED")
    # When the clock reaches a minute before the first (set() jumps without firing)
    stack.clock.set(datetime(2027, 6, 30, 6, tzinfo=UTC))
    stack.tick(datetime(2027, 6, 30, 7, 59, tzinfo=UTC))
    assert "consent_expiry" not in expiry.kinds()
    assert sorted(_names(stack, group)) == ["expire-amsterdam", "expire-c1", "expire-disabled"]
    # And then passes both
    report = stack.tick(datetime(2027, 6, 30, 10, 1, tzinfo=UTC))
    # Then each fired once, in time order, with the clock at its time (10:00 Amsterdam is 08:00Z)
    fired = [(f.schedule.split("/")[1], f.at) for f in report.firings if f.kind == "one-time"]
    assert fired == [
        ("expire-amsterdam", datetime(2027, 6, 30, 8, tzinfo=UTC)),
        ("expire-c1", datetime(2027, 6, 30, 10, tzinfo=UTC)),
    ]
    assert [
        (call.event["consent_id"], at)
        for call, at in zip(expiry.calls, expiry.times, strict=True)
        if call.event.get("kind") == "consent_expiry"
    ] == fired
    # And only the one with ActionAfterCompletion DELETE is gone; the disabled one stays unfired
    assert sorted(_names(stack, group)) == ["expire-amsterdam", "expire-disabled"]
    assert stack.clock.now() == datetime(2027, 6, 30, 10, 1, tzinfo=UTC)
    # And a kept one-time schedule never fires again
    again = stack.tick(datetime(2027, 7, 1, tzinfo=UTC))
    assert [f for f in again.firings if f.kind == "one-time"] == []


def test_the_templates_schedules_fire_on_tick(timed: tuple[LocalStack, Timed, Timed]) -> None:
    stack, expiry, reminders = timed
    # When a day passes
    report = stack.tick(START + timedelta(days=1))
    # Then the sweep ran every hour, the held-upload release once at 00:05Z, retention
    # once at 02:30Z, the reminders once, at 07:00 Amsterdam (06:00Z in CET), and the
    # digest run once at 06:30Z
    assert expiry.of_kind("sweep") == [START + timedelta(hours=h) for h in range(1, 25)]
    assert expiry.of_kind("release_held") == [datetime(2026, 11, 27, 0, 5, tzinfo=UTC)]
    assert expiry.of_kind("retention") == [datetime(2026, 11, 27, 2, 30, tzinfo=UTC)]
    assert len(expiry.calls) == 26
    assert reminders.kinds() == ["reminders", "digest"]
    assert reminders.times == [
        datetime(2026, 11, 27, 6, tzinfo=UTC),
        datetime(2026, 11, 27, 6, 30, tzinfo=UTC),
    ]
    assert len(report.firings) == 28 and not report.errors
    # When four days pass at once over the change to summer time
    stack.clock.set(datetime(2027, 3, 26, 12, tzinfo=UTC))  # set() fires nothing
    expiry.calls.clear(), expiry.times.clear()
    reminders.calls.clear(), reminders.times.clear()
    report = stack.tick(datetime(2027, 3, 30, 12, tzinfo=UTC))
    # Then the reminders still ran every day, now at 05:00Z (07:00 CEST)
    assert reminders.of_kind("reminders") == [
        datetime(2027, 3, 27, 6, tzinfo=UTC),
        datetime(2027, 3, 28, 5, tzinfo=UTC),
        datetime(2027, 3, 29, 5, tzinfo=UTC),
        datetime(2027, 3, 30, 5, tzinfo=UTC),
    ]
    # And the hourly sweep was coalesced to its last run in each 24 hours before `to`
    assert expiry.of_kind("sweep") == [
        datetime(2027, 3, d, 12, tzinfo=UTC) for d in (27, 28, 29, 30)
    ]
    sweeps = [f for f in report.firings if f.function == EXPIRY and f.event.get("kind") == "sweep"]
    assert sum(f.coalesced + 1 for f in sweeps) == 4 * 24


def test_the_ttl_reaper_deletes_only_expired_items_with_the_service_identity(
    timed: tuple[LocalStack, Timed, Timed],
) -> None:
    stack, expiry, _ = timed
    dynamodb = stack.client("dynamodb")
    subjects = stack.resources["SubjectsTable"]

    def subject(sid: str, **ttl: dict[str, str]) -> dict[str, Any]:
        key = {"tenant": {"S": "t"}, "subject_id": {"S": sid}}
        dynamodb.put_item(TableName=subjects, Item={**key, **ttl})
        return key

    epoch = int((START + timedelta(hours=1)).timestamp())
    expired = subject("expired", ttl={"N": str(epoch)})
    later = subject("later", ttl={"N": str(epoch + 86_400 * 10)})
    text = subject("text-ttl", ttl={"S": str(epoch)})  # not a number: TTL ignores it
    ancient = subject("ancient", ttl={"N": "1000000000"})  # 2001: over five years past
    by_hand = subject("deleted-by-a-user")
    dynamodb.delete_item(TableName=subjects, Key=by_hand)
    stack.drain(timeout_s=10)
    # When two hours pass
    report = stack.tick(START + timedelta(hours=2))
    # Then only the expired item went, and the report says so
    assert [(r.table, r.keys) for r in report.reaped] == [
        ("SubjectsTable", {"tenant": "t", "subject_id": "expired"})
    ]
    assert report.reaped[0].at == START + timedelta(hours=1)
    for key, present in ((expired, False), (later, True), (text, True), (ancient, True)):
        assert ("Item" in dynamodb.get_item(TableName=subjects, Key=key)) is present
    # And the expiry function's TTL mapping got that REMOVE alone, with the service identity
    [batch] = [c.event for c in expiry.calls if "Records" in c.event]
    [record] = batch["Records"]
    assert record["eventName"] == "REMOVE"
    assert record["dynamodb"]["Keys"]["subject_id"] == {"S": "expired"}
    assert record["dynamodb"]["OldImage"]["ttl"] == {"N": str(epoch)}
    assert record["userIdentity"] == {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    # And in the Streams API the user's delete has no identity, the TTL one has AWS's
    streams = stack.client("dynamodbstreams")
    arn = dynamodb.describe_table(TableName=subjects)["Table"]["LatestStreamArn"]
    [shard] = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    removes = {
        r["dynamodb"]["Keys"]["subject_id"]["S"]: r.get("userIdentity")
        for r in streams.get_records(ShardIterator=iterator)["Records"]
        if r["eventName"] == "REMOVE"
    }
    assert removes == {
        "deleted-by-a-user": None,
        "expired": {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"},
    }


def test_sent_emails_returns_what_ses_captured(stack: LocalStack) -> None:
    # Given an e-mail through SES v1 (text and HTML) and one through SES v2 (text only)
    stack.client("ses").send_email(
        Source="quitclaim@example.org",
        Destination={"ToAddresses": ["ana@example.org"], "CcAddresses": ["dpo@example.org"]},
        Message={
            "Subject": {"Data": "Renew"},
            "Body": {"Text": {"Data": "plain link"}, "Html": {"Data": "<a>html link</a>"}},
        },
    )
    stack.client("sesv2").send_email(
        FromEmailAddress="quitclaim@example.org",
        Destination={"ToAddresses": ["bo@example.org"]},
        Content={"Simple": {"Subject": {"Data": "Hi"}, "Body": {"Text": {"Data": "text only"}}}},
    )
    # Then sent_emails has both, in order, with every body
    first, second = stack.sent_emails()[-2:]
    assert {k: first[k] for k in ("source", "to", "cc", "subject", "text", "html")} == {
        "source": "quitclaim@example.org",
        "to": ["ana@example.org"],
        "cc": ["dpo@example.org"],
        "subject": "Renew",
        "text": "plain link",
        "html": "<a>html link</a>",
    }
    assert (second["to"], second["subject"], second["text"], second["html"]) == (
        ["bo@example.org"],
        "Hi",
        "text only",
        None,
    )


def test_local_tick_posts_to_the_control_server(tmp_path: Path) -> None:
    # Given a stack with its control server, its URL in <dir>/.quitclaim-local/control.json
    stack = fresh_stack(start_time=START, control=True, control_dir=tmp_path)
    try:
        expiry = Timed()
        stack.runtime.override_handler(EXPIRY, expiry)
        stack.runtime.override_handler(REMINDERS, Recorder())
        stack.runtime.override_handler(INGEST, Recorder())
        found = json.loads(control_file(tmp_path).read_text())
        assert found["url"] == stack.control_url
        assert control_file(tmp_path).stat().st_mode & 0o077 == 0  # the token is private
        # When `quitclaim local tick` runs from that directory
        result = CliRunner().invoke(
            tick_command, ["--to", "2026-11-26T15:00:00Z", "--dir", str(tmp_path)]
        )
        # Then the stack's clock moved there, firing what was due, and the report came back
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert report["to"] == "2026-11-26T15:00:00+00:00"
        assert [f["function"] for f in report["firings"]] == [EXPIRY] * 3
        assert stack.clock.now() == datetime(2026, 11, 26, 15, tzinfo=UTC)
        # And going back in time is refused
        back = CliRunner().invoke(
            tick_command, ["--to", "2026-01-01T00:00:00Z", "--dir", str(tmp_path)]
        )
        assert back.exit_code != 0 and "409" in back.output
        # And a request without the token is refused
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{stack.control_url}/clock", timeout=5)
        assert refused.value.code == 403
    finally:
        stack.stop()
    # When the stack stops, its control file goes
    assert not control_file(tmp_path).exists()
