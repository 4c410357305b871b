"""Reading an audit chain ahead, in parallel, verifies exactly as reading it one by one.

Real boto3 against the local emulator. The read-ahead (adapters/read_ahead.py)
is what makes the conservation check of 20,000 records fast; it must not
change a verdict: an intact chain passes, an overwritten or deleted record is
named as before.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from quitclaim.adapters.audit_chain_store import DynamoS3AuditChain
from quitclaim.adapters.read_ahead import ReadAheadS3
from quitclaim.bootstrap import audit_trail_service
from quitclaim.config import get_settings
from quitclaim.domain.audit_chain import record_key
from quitclaim.domain.errors import DependencyFailed
from quitclaim.domain.ports import SystemClock
from quitclaim.usecases.audit_trail import AuditTrail

pytestmark = pytest.mark.integration


class _Threads:
    """The plain client, noting which threads its GETs ran on."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.get_threads: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_object(self, **kwargs: Any) -> Any:
        self.get_threads.append(threading.current_thread().name)
        return self._client.get_object(**kwargs)


def _trail(local_stack: Any, s3: Any) -> AuditTrail:
    settings = get_settings()
    chain = DynamoS3AuditChain(
        dynamodb=local_stack.client("dynamodb"),
        s3=s3,
        table=settings.audit_heads_table,
        bucket=settings.audit_bucket,
        clock=SystemClock(),
    )
    return AuditTrail(store=chain, clock=SystemClock())


def test_read_ahead_gives_the_verdicts_of_one_by_one_reads(local_stack: Any) -> None:
    # Given a chain of 25 records
    tenant = "audit-read-ahead"
    appender = audit_trail_service()
    for n in range(25):
        appender.append(
            tenant, f"sqs/{tenant}-{n}", [{"action": "asset.decided", "tenant": tenant}]
        )
    s3 = local_stack.client("s3")
    noted = _Threads(s3)
    ahead = _trail(local_stack, ReadAheadS3(noted, workers=3, window=4))
    plain = _trail(local_stack, s3)
    # When both verify it
    verification, events = ahead.verified_events(tenant)
    # Then both find it intact, with the same events
    assert verification.intact
    assert (verification, events) == plain.verified_events(tenant)
    assert len(events) == 25
    # And the reads ran on the read-ahead's threads, not the caller's
    assert len(noted.get_threads) == 25
    assert all(name.startswith("s3-read-ahead") for name in noted.get_threads)

    # When record 7 is overwritten by a plain put and record 12 is deleted
    bucket = get_settings().audit_bucket
    s3.put_object(Bucket=bucket, Key=record_key(tenant, 7), Body=b'{"seq": 7}')
    s3.delete_object(Bucket=bucket, Key=record_key(tenant, 12))
    # Then both name the same first break, the overwritten record
    broken = ahead.verify(tenant)
    assert not broken.intact
    assert broken == plain.verify(tenant)
    assert broken.first_break is not None
    assert broken.first_break.seq == 7


def test_a_failed_read_ahead_raises_at_its_own_read(local_stack: Any) -> None:
    # Given a client whose GET of one listed record fails
    tenant = "audit-read-ahead-fails"
    appender = audit_trail_service()
    for n in range(6):
        appender.append(
            tenant, f"sqs/{tenant}-{n}", [{"action": "asset.decided", "tenant": tenant}]
        )
    s3 = local_stack.client("s3")
    failing = record_key(tenant, 4)

    class Failing(_Threads):
        def get_object(self, **kwargs: Any) -> Any:
            if kwargs["Key"] == failing:
                raise s3.exceptions.ClientError(
                    {"Error": {"Code": "SlowDown", "Message": "no"}}, "GetObject"
                )
            return super().get_object(**kwargs)

    trail = _trail(local_stack, ReadAheadS3(Failing(s3), workers=2, window=8))
    # When the chain is verified, Then the failure is not swallowed (fail closed)
    with pytest.raises(DependencyFailed):
        trail.verify(tenant)


def test_a_checkpoint_spares_the_reads_of_a_verified_prefix_and_hides_no_tamper(
    local_stack: Any,
) -> None:
    # Given a chain of 20 records, checked once with checkpoints (it leaves one,
    # vouched for by the next record), then 2 more records
    tenant = "audit-checkpoint"
    appender = audit_trail_service()

    def append(n: int) -> None:
        appender.append(
            tenant, f"sqs/{tenant}-{n}", [{"action": "asset.decided", "tenant": tenant}]
        )

    for n in range(20):
        append(n)
    s3 = local_stack.client("s3")
    noted = _Threads(s3)
    first = _trail(local_stack, noted)
    checking = AuditTrail(
        store=first.store, clock=SystemClock(), checkpoints=first.store, checkpoint_after=10
    )
    assert checking.verified_events(tenant)[0].intact
    for n in range(20, 22):
        append(n)
    # When it is checked again
    noted.get_threads.clear()
    verification, events = checking.verified_events(tenant)
    # Then only the checkpoint and the 3 newer records were read (S3's listing
    # names each version's id and ETag), with the verdict of a full read
    assert len(noted.get_threads) == 4
    plain = _trail(local_stack, s3)
    assert verification.intact
    assert (verification, events) == plain.verified_events(tenant)

    # When record 7, under the checkpoint, is overwritten by a plain put
    bucket = get_settings().audit_bucket
    s3.put_object(Bucket=bucket, Key=record_key(tenant, 7), Body=b'{"seq": 7}')
    # Then the check with the checkpoint names the break a full read names
    broken, _ = checking.verified_events(tenant)
    assert broken.first_break is not None and broken.first_break.seq == 7
    assert broken == plain.verify(tenant)
