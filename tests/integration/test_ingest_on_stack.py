"""The real ingest handler on the local stack: bad input, odd keys, retries."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from quitclaim.bootstrap import registry_service
from quitclaim.domain.models import TenantPolicy
from tests import inputs
from tests.conftest import FACES
from tests.integration.faults import failing_calls

pytestmark = pytest.mark.integration
TENANT = "it-ingest"


@pytest.fixture(scope="module")
def stack(local_stack: Any) -> Any:
    # Given a tenant with obama enrolled and a valid web consent
    registry = registry_service()
    registry.create_tenant(TenantPolicy(tenant=TENANT))
    photo = (FACES / "enroll" / "obama" / "obama-portrait.jpg").read_bytes()
    sid = registry.enrol_subject(TENANT, "Person A", [photo], biometric_consent=True)
    from tests.conftest import DEMO_NOW

    registry.grant_consent(TENANT, sid, ["web"], DEMO_NOW.replace(year=2026, month=1, day=1), None)
    return local_stack


class Buckets:
    def __init__(self, stack: Any) -> None:
        self.s3 = stack.client("s3")
        out = stack.outputs
        self.uploads = out["UploadsBucketName"]
        self.library = out["LibraryBucketName"]
        self.quarantine = out["QuarantineBucketName"]

    def put(self, path: str, data: bytes) -> str:
        key = f"incoming/{TENANT}/{path}"
        self.s3.put_object(Bucket=self.uploads, Key=key, Body=data, Metadata={"purpose": "web"})
        return key

    def read(self, bucket: str, key: str) -> bytes | None:
        try:
            return bytes(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except self.s3.exceptions.NoSuchKey:
            return None

    def places(self, path: str) -> list[str]:
        found = []
        for name, bucket, key in (
            ("uploads", self.uploads, f"incoming/{TENANT}/{path}"),
            ("library", self.library, f"{TENANT}/{path}"),
            ("quarantine", self.quarantine, f"{TENANT}/{path}"),
            ("rejected", self.quarantine, f"rejected/{TENANT}/{path}"),
        ):
            if self.read(bucket, key) is not None:
                found.append(name)
        return found


@pytest.fixture(scope="module")
def buckets(stack: Any) -> Buckets:
    return Buckets(stack)


def _asset_for(stack: Any, path: str) -> Any:
    from quitclaim.adapters.dynamo import AssetModel

    found = [a for a in AssetModel.scan() if a.tenant == TENANT and a.path == path]
    return found


BAD_INPUTS: dict[str, tuple[Callable[[], bytes], set[str]]] = {
    "corrupt.jpg": (inputs.corrupt_jpeg, {"corrupt_image", "truncated_image"}),
    "truncated.jpg": (inputs.truncated_through_face, {"truncated_image"}),
    "empty.jpg": (inputs.zero_bytes, {"empty_file"}),
    "letter.jpg": (inputs.text_named_jpg, {"unsupported_format"}),
    "bomb.png": (lambda: inputs.png_claiming(30000, 30000), {"too_many_pixels"}),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_is_rejected_with_reason_and_bytes_kept(
    stack: Any, buckets: Buckets, name: str
) -> None:
    make, reasons = BAD_INPUTS[name]
    data = make()
    # Given a broken upload / When the stack processes it
    buckets.put(name, data)
    stack.drain()
    # Then it sits under rejected/ only, bytes unchanged, with a reason on record
    assert buckets.places(name) == ["rejected"]
    assert buckets.read(buckets.quarantine, f"rejected/{TENANT}/{name}") == data
    [record] = _asset_for(stack, name)
    assert record.status == "rejected" and set(record.reasons) <= reasons and record.reasons


def test_key_with_spaces_and_unicode(stack: Any, buckets: Buckets) -> None:
    # Given a key S3 will URL-encode ('+' for spaces, UTF-8 escapes)
    name = "zomer 2026/Straßenfest été + meer.jpg"
    buckets.put(name, inputs.portrait_jpeg())
    stack.drain()
    # Then the decoded key is found, scanned and approved (obama consented)
    assert buckets.places(name) == ["library"]


def test_s3_test_event_is_consumed_without_failure(stack: Any, buckets: Buckets) -> None:
    sqs = stack.client("sqs")
    queue = stack.outputs["IngestQueueUrl"]
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": buckets.uploads}
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(test_event))
    report = stack.drain()
    assert report.failures == 0
    assert _queue_depth(stack, "IngestDeadLetterQueueUrl") == 0


def test_same_event_twice_gives_one_record_and_one_object(stack: Any, buckets: Buckets) -> None:
    sqs = stack.client("sqs")
    queue = stack.outputs["IngestQueueUrl"]
    # Given an upload processed once, and a copy of its S3 event kept aside
    captured: list[str] = []
    with _capture_bodies(stack, captured):
        buckets.put("twice.jpg", inputs.portrait_jpeg())
        stack.drain()
    assert len(captured) == 1
    # When the same event is delivered again (S3 is at-least-once)
    sqs.send_message(QueueUrl=queue, MessageBody=captured[0])
    stack.drain()
    # Then there is one record and one object, in one place
    assert len(_asset_for(stack, "twice.jpg")) == 1
    assert buckets.places("twice.jpg") == ["library"]


def test_dynamodb_failure_fails_closed_and_retries(stack: Any, buckets: Buckets) -> None:
    # Given the consents table throttling every read
    with failing_calls("dynamodb", "Query", "ProvisionedThroughputExceededException"):
        buckets.put("throttled.jpg", inputs.portrait_jpeg())
        stack.runtime.poll_once()
        # Then the image is nowhere but the upload area, with no decision on record
        assert buckets.places("throttled.jpg") == ["uploads"]
        assert _asset_for(stack, "throttled.jpg") == []
    # When the table recovers, the returned message is retried and completes
    stack.drain()
    assert buckets.places("throttled.jpg") == ["library"]
    [record] = _asset_for(stack, "throttled.jpg")
    assert record.status == "approved"


def _queue_depth(stack: Any, output: str) -> int:
    return int(stack.runtime.queue_depth(stack.outputs[output]))


class _capture_bodies:
    """Record every SQS body the ingest handler receives."""

    def __init__(self, stack: Any, into: list[str]) -> None:
        self.stack, self.into = stack, into

    def __enter__(self) -> None:
        self.stack.runtime.observers.append(self._observe)

    def __exit__(self, *exc: object) -> None:
        self.stack.runtime.observers.remove(self._observe)

    def _observe(self, function: str, event: dict[str, Any]) -> None:
        if function != "IngestFunction":
            return  # the outbox events the decisions publish go to webhooks-out
        for record in event.get("Records", []):
            body = record.get("body", "")
            if '"s3:TestEvent"' not in body:
                self.into.append(body)


@pytest.fixture(autouse=True)
def _no_leftovers(stack: Any) -> Iterator[None]:
    yield
    assert _queue_depth(stack, "IngestDeadLetterQueueUrl") == 0
