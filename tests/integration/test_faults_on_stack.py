"""The fault matrix: path x step x fault, on the real local stack (issue #10, item 3).

Each cell injects one fault at one step of one path (at the botocore
boundary, see ``faults.py``), lets the runtime retry as Lambda would, and
then asserts the same things: the outcome is the one without the fault,
nothing is published without a decision, there is one record and one copy
(and one e-mail), no dead letter, and the conservation checker holds.
A failing cell names itself in its test id: ``[ingest-copy-slowdown]``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

import pytest

from quitclaim.adapters.dynamo import DynamoConsents
from quitclaim.bootstrap import registry_service
from quitclaim.domain.errors import DependencyFailed
from quitclaim.domain.models import TenantPolicy
from tests.conftest import DEMO_NOW, FACES
from tests.integration.faults import (
    HandlerCrashed,
    ProcessDied,
    bucket,
    crash_after,
    failing_calls,
    table,
    timing_out_calls,
)
from tests.integration.places import Places

pytestmark = pytest.mark.integration
INGEST, RECHECK, EXPIRY = "it-faults-ingest", "it-faults-recheck", "it-faults-expiry"
OBAMA = FACES / "enroll" / "obama" / "obama-portrait.jpg"

Fault = Callable[[Any], AbstractContextManager[Any]]


class World(Places):
    """The stack, the tenants' people, and the checks every cell ends with."""

    def __init__(self, stack: Any) -> None:
        super().__init__(stack)
        self.subjects: dict[str, str] = {}

    def dead_letters(self) -> int:
        return sum(
            self.stack.runtime.queue_depth(self.env[name])
            for name in ("QC_INGEST_DLQ_URL", "QC_RECHECK_DLQ_URL", "QC_ASYNC_DLQ_URL")
        )

    def settle(self, cell: str, tenant: str, path: str, place: str) -> None:
        """The checks every cell ends with."""
        assert self.where(tenant, path) == [place], f"{cell}: {self.where(tenant, path)}"
        [record] = self.records(tenant, path)
        assert record.status == {"library": "approved", "quarantine": "quarantined"}[place], cell
        bucket_name = self.library if place == "library" else self.quarantine
        assert self.versions(bucket_name, f"{tenant}/{path}") == 1, f"{cell}: copied twice"
        assert self.dead_letters() == 0, f"{cell}: dead-lettered"
        self.holds(tenant, cell)


@pytest.fixture(scope="module")
def world(local_stack: Any) -> Iterator[World]:
    # Given three tenants, each with obama enrolled (one subject per tenant)
    registry = registry_service()
    world = World(local_stack)
    for tenant in (INGEST, RECHECK, EXPIRY):
        registry.create_tenant(TenantPolicy(tenant=tenant))
        sid = registry.enrol_subject(tenant, "Person F", [OBAMA.read_bytes()])
        world.subjects[tenant] = sid
        if tenant == INGEST:
            registry.grant_consent(tenant, sid, ["web"], DEMO_NOW - timedelta(days=1), None)
    yield world
    local_stack.clock.set(DEMO_NOW)


def _assets(w: World) -> Any:
    return table(w.tables["Assets"])


def _consents(w: World) -> Any:
    return table(w.tables["Consents"])


# -- ingest: S3 event -> decision record -> copy -> delete the upload -> placed


INGEST_CELLS: dict[str, Fault] = {
    # consents-read throttled: tests/integration/test_ingest_on_stack.py (not repeated)
    "consents-read-timeout": lambda w: timing_out_calls(
        "dynamodb", "Query", times=1, match=_consents(w)
    ),
    "upload-read-slowdown": lambda w: failing_calls(
        "s3", "GetObject", "SlowDown", times=1, match=bucket(w.uploads)
    ),
    # The record is written but the answer is lost: the retry finds it.
    "record-read-timeout": lambda w: timing_out_calls(
        "dynamodb", "TransactWriteItems", times=1, match=_assets(w)
    ),
    "record-connect-timeout": lambda w: timing_out_calls(
        "dynamodb", "TransactWriteItems", connect=True, times=1, match=_assets(w)
    ),
    "crash-after-record-before-copy": lambda w: crash_after(
        "dynamodb", "TransactWriteItems", match=_assets(w)
    ),
    # "copy": placing the scanned published form in the library (a PutObject since
    # docs/every-pixel.md; the upload's own bytes are copied to originals/).
    "copy-slowdown": lambda w: failing_calls(
        "s3", "PutObject", "SlowDown", times=1, match=bucket(w.library)
    ),
    "copy-failed": lambda w: failing_calls(
        "s3", "PutObject", "InternalError", times=3, match=bucket(w.library)
    ),
    "crash-after-copy-before-delete": lambda w: crash_after(
        "s3", "PutObject", match=bucket(w.library)
    ),
    "crash-after-delete-before-placed": lambda w: crash_after(
        "s3", "DeleteObject", match=bucket(w.uploads)
    ),
    "placed-mark-throttled": lambda w: failing_calls(
        "dynamodb", "UpdateItem", "ThrottlingException", times=1, match=_assets(w)
    ),
}


@pytest.mark.parametrize("step", sorted(INGEST_CELLS))
def test_ingest(world: World, step: str) -> None:
    cell, path = f"ingest/{step}", f"{step}.jpg"
    # Given an upload of a consented face / When it is processed under the fault
    world.upload(INGEST, path)
    with INGEST_CELLS[step](world) as hit:
        report = world.stack.drain()
    # Then the fault did fire and was retried, and the outcome is as without it
    assert hit[0] >= 1, f"{cell}: the fault never fired"
    assert report.failures >= 1 or report.errors, f"{cell}: nothing was retried"
    world.settle(cell, INGEST, path, "library")


def test_ingest_function_dies_mid_batch(world: World) -> None:
    # Given three uploads delivered in one batch
    paths = [f"batch-{i}.jpg" for i in range(3)]
    for path in paths:
        world.upload(INGEST, path)
    # When the function dies (a timeout kill) after placing the first, without returning
    with crash_after("dynamodb", "UpdateItem", match=_assets(world)) as hit:
        first = world.stack.runtime.poll_once()
        # Then the whole batch returned, none acknowledged
        assert hit[0] == 1 and first.messages == 3 and first.failures == 3
        assert sorted(p for p in paths if world.where(INGEST, p) == ["library"]) == paths[:1]
    # And the redelivery completes all three, the first one without a second copy
    world.stack.drain()
    for path in paths:
        world.settle(f"ingest/mid-batch/{path}", INGEST, path, "library")


# -- recheck: a withdrawal on the consents stream -> copy out -> delete -> record


RECHECK_CELLS: dict[str, Fault] = {
    "consents-read-throttled": lambda w: failing_calls(
        "dynamodb",
        "Query",
        "ProvisionedThroughputExceededException",
        times=1,
        match=_consents(w),
    ),
    "copy-slowdown": lambda w: failing_calls(
        "s3", "CopyObject", "SlowDown", times=1, match=bucket(w.quarantine)
    ),
    "crash-after-copy-before-record": lambda w: crash_after(
        "s3", "CopyObject", match=bucket(w.quarantine)
    ),
    "crash-after-delete-before-record": lambda w: crash_after(
        "s3", "DeleteObject", match=bucket(w.library)
    ),
    "record-read-timeout": lambda w: timing_out_calls(
        "dynamodb", "PutItem", times=1, match=_assets(w)
    ),
}


@pytest.fixture(scope="module")
def held(world: World) -> str:
    """One image of the recheck tenant's person, uploaded once (no consent yet: held)."""
    world.upload(RECHECK, "recheck.jpg")
    world.stack.drain()
    assert world.where(RECHECK, "recheck.jpg") == ["quarantine"]
    return world.subjects[RECHECK]


@pytest.mark.parametrize("step", sorted(RECHECK_CELLS))
def test_recheck(world: World, held: str, step: str) -> None:
    cell = f"recheck/{step}"
    # Given the person's consent, and their image in the library
    registry = registry_service()
    consent = registry.grant_consent(RECHECK, held, ["web"], DEMO_NOW - timedelta(days=1), None)
    world.stack.drain()
    world.settle(cell + " (granted)", RECHECK, "recheck.jpg", "library")
    # When it is withdrawn in the table and the stream's re-decision runs under the fault
    DynamoConsents().revoke(consent, DEMO_NOW, source="test")
    with RECHECK_CELLS[step](world) as hit:
        report = world.stack.drain()
    # Then the image left the library all the same, once
    assert hit[0] >= 1, f"{cell}: the fault never fired"
    assert report.errors, f"{cell}: nothing was retried"
    world.settle(cell, RECHECK, "recheck.jpg", "quarantine")


def test_recheck_publish_dies_after_the_copy(world: World, held: str) -> None:
    cell = "recheck/publish-crash-after-copy-before-delete"
    registry = registry_service()
    # When a grant's re-decision (record first, then the move into the library)
    # dies after the copy, before the held copy is deleted
    with crash_after("s3", "CopyObject", match=bucket(world.library)) as hit:
        with pytest.raises(ProcessDied):
            registry.grant_consent(RECHECK, held, ["web"], DEMO_NOW - timedelta(days=1), None)
        world.stack.drain()  # the stream's re-decision of the same grant
    assert hit[0] == 1
    # Then the image is published once and the held copy is gone
    world.settle(cell, RECHECK, "recheck.jpg", "library")
    # And a later withdrawal leaves no library copy behind
    for view in registry.consent_views(RECHECK, held):
        registry.revoke_consent(RECHECK, held, view.consent_id, source="test")
    world.stack.drain()
    world.settle(cell + " (withdrawn)", RECHECK, "recheck.jpg", "quarantine")


# -- expiry: the exact-time schedule -> mark expired -> re-decide -> move out

EXPIRY_CELLS: dict[str, Fault] = {
    "mark-expired-throttled": lambda w: failing_calls(
        "dynamodb", "UpdateItem", "ThrottlingException", times=1, match=_consents(w)
    ),
    "mark-expired-read-timeout": lambda w: timing_out_calls(
        "dynamodb", "UpdateItem", times=1, match=_consents(w)
    ),
    "crash-after-copy-before-record": lambda w: crash_after(
        "s3", "CopyObject", match=bucket(w.quarantine), error=HandlerCrashed
    ),
}


@pytest.mark.parametrize("step", sorted(EXPIRY_CELLS))
def test_expiry(world: World, step: str) -> None:
    cell, path = f"expiry/{step}", f"expiry-{step}.jpg"
    registry = registry_service()
    now = world.stack.clock.now()
    # Given a consent expiring in ten minutes, and an image of the person in the library
    consent = registry.grant_consent(
        EXPIRY, world.subjects[EXPIRY], ["web"], now, now + timedelta(minutes=10)
    )
    world.upload(EXPIRY, path)
    world.stack.drain()
    assert world.where(EXPIRY, path) == ["library"], cell
    # When the exact-time schedule fires under the fault (the sweep not yet due)
    with EXPIRY_CELLS[step](world) as hit:
        tick = world.stack.tick(now + timedelta(minutes=11))
    # Then the first attempt failed, a retry made it, and the image is held
    assert hit[0] >= 1, f"{cell}: the fault never fired"
    # (this consent's own schedule: the sweep, or another test's consent on this
    # session's stack, may fall in the same window)
    exact = [f for f in tick.firings if consent.consent_id in f.schedule]
    assert [f.attempts for f in exact] == [2], cell
    world.settle(cell, EXPIRY, path, "quarantine")


# -- reminders: a claim, one e-mail through SES


def test_reminder_ses_failure_is_retried_and_sent_once(world: World) -> None:
    tenant, registry = "it-faults-remind", registry_service()
    registry.create_tenant(TenantPolicy(tenant=tenant))
    # (no photo: a reminder needs a person and an address, not a face)
    sid = registry.create_subject(
        tenant, "Reminded F", email="faults-reminded@example.org"
    ).subject_id
    now = world.stack.clock.now()
    registry.grant_consent(tenant, sid, ["web"], now, now + timedelta(days=7, hours=20))
    before = len(world.stack.sent_emails())

    def mails() -> int:
        return sum("faults-reminded" in str(m) for m in world.stack.sent_emails()[before:])

    def daily_run() -> None:
        """What the daily schedule invokes (each failed invocation is retried)."""
        world.stack.runtime.invoke("RemindersFunction", {"kind": "reminders"})

    # Given the morning the 7-day reminder is due
    world.stack.clock.set(now + timedelta(days=1) - timedelta(hours=5))
    # When SES throttles the run / Then it fails, nothing is sent, the claim is given back
    with (
        failing_calls("ses", "SendEmail", "Throttling", times=1) as hit,
        pytest.raises(DependencyFailed),
    ):
        daily_run()
    assert (hit[0], mails()) == (1, 0)
    # When the retry sends it and then dies before it returns
    with (
        crash_after("ses", "SendEmail", error=HandlerCrashed) as died,
        pytest.raises(HandlerCrashed),
    ):
        daily_run()
    assert (died[0], mails()) == (1, 1)
    # Then neither its own retry nor the next day's run sends it again
    daily_run()
    world.stack.clock.set(now + timedelta(days=2) - timedelta(hours=5))
    daily_run()
    assert mails() == 1
    world.stack.clock.set(now)
    world.holds(tenant)


# -- poison: a malformed body on each queue ends in its DLQ, with a reason in the logs

POISON_QUEUES = {
    "ingest": ("IngestQueueUrl", "QC_INGEST_DLQ_URL"),
    "events": ("QC_EVENTS_QUEUE_URL", "QC_EVENTS_DLQ_URL"),
    "inbound": ("QC_INBOUND_QUEUE_URL", "QC_INBOUND_DLQ_URL"),
}
POISON_REASONS = {
    "ingest": "MalformedEvent",
    "events": "JSONDecodeError",
    "inbound": "JSONDecodeError",
}


@pytest.mark.parametrize("queue", sorted(POISON_QUEUES))
def test_poison_message_is_dead_lettered_with_a_reason(
    world: World, queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    source, dlq = (world.env.get(n) or world.stack.outputs[n] for n in POISON_QUEUES[queue])
    sqs = world.stack.client("sqs")
    body = '{"Records": "Zebedee Quillfeather, not a list"'  # malformed, and it holds a name
    sent = sqs.send_message(QueueUrl=source, MessageBody=body)["MessageId"]
    # When the runtime delivers it until the queue gives up on it
    with caplog.at_level(logging.INFO):
        report = world.stack.drain()
    # Then it is in the dead-letter queue, intact, after maxReceiveCount tries
    assert report.dead_lettered == 1, report
    [dead] = sqs.receive_message(
        QueueUrl=dlq, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    )["Messages"]
    sqs.delete_message(QueueUrl=dlq, ReceiptHandle=dead["ReceiptHandle"])
    assert (dead["MessageId"], dead["Body"]) == (sent, body)
    assert int(dead["Attributes"]["ApproximateReceiveCount"]) >= 5
    # And each try is logged under the id the DLQ shows, with a reason code, not the body
    tries = [r for r in caplog.records if getattr(r, "message_id", None) == sent]
    assert [int(getattr(r, "receive_count", 0)) for r in tries] == [1, 2, 3, 4, 5]
    assert {getattr(r, "reason", None) for r in tries} == {POISON_REASONS[queue]}
    logged = caplog.text + "".join(str(r.__dict__) for r in tries)
    assert "Zebedee" not in logged and "Quillfeather" not in logged
    assert world.stack.runtime.queue_depth(source) == 0


@pytest.fixture(autouse=True)
def _quiet_after(world: World) -> Iterator[None]:
    yield
    world.stack.drain()
