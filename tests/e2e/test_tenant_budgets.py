"""Tenant budgets on the local stack: one tenant's input cannot starve another's work.

Tenant A uploads a 60 MP flat JPEG (about 0.5 MB; with dlib's HOG a 240 MP scan
for 40 px faces, with the YuNet engine 34 MP in all four orientations, inside
the per-image pixel budget: tests/unit/faces/test_detection_budget.py shows an
image over the budget refused) and registers webhook endpoints that accept a connection and never
answer; tenant B uploads ordinary photos and has a receiver that answers.
Both tenants' uploads share one ingest batch and their events one outbound
batch. B's work must all succeed and nothing of B's may reach a dead-letter
queue (docs/budgets.md).

Timeouts are shortened through the functions' settings on a stack of this
module's own (ingest 15 s, webhooks-out 8 s, 1 s per endpoint), so the test
never waits 10 s per endpoint.

The local runtime runs handlers in this process and can only declare a
timeout after the handler returned (it cannot kill it), so work done by an
overrunning invocation sticks and its retries are cheap; on Lambda the
invocation is killed and every retry overruns again until the batch is
dead-lettered. So the test asserts the cause, no invocation overran or
failed, besides the dead-letter queues themselves.
"""

from __future__ import annotations

import io
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from quitclaim import bootstrap
from quitclaim.bootstrap import api_keys_service, face_engine, onboarding_service, webhook_admin
from quitclaim.config import get_settings, reset_settings
from quitclaim.domain.errors import ValidationFailed
from tests import inputs
from tests.e2e.test_webhooks_out import Receiver
from tests.integration.places import Places
from tests.load import own_stack

pytestmark = pytest.mark.e2e
A, B = "budget-a", "budget-b"
DEAD_LETTER_QUEUES = (
    "IngestDeadLetterQueue",
    "BulkDeadLetterQueue",
    "RecheckDeadLetterQueue",
    "PurgeDeadLetterQueue",
    "AsyncDeadLetterQueue",
    "EventsDeadLetterQueue",
    "InboundDeadLetterQueue",
)


def configure(stack: Any, function: str, timeout_s: int, variables: dict[str, str]) -> None:
    lam = stack.client("lambda")
    name = stack.resources[function]
    current = lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
    lam.update_function_configuration(
        FunctionName=name, Timeout=timeout_s, Environment={"Variables": {**current, **variables}}
    )


@pytest.fixture(scope="module")
def budget_stack() -> Iterator[Any]:
    with own_stack("budgets") as stack:
        # Lambda time limits short enough that a full-size 60 MP scan, or
        # endpoints tried one after another, overrun them.
        configure(stack, "IngestFunction", 15, {})
        configure(
            stack,
            "WebhooksOutFunction",
            8,
            {"QC_WEBHOOK_TIMEOUT_S": "1", "QC_WEBHOOK_BATCH_BUDGET_S": "3"},
        )
        stack.runtime.refresh()
        yield stack


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A loopback port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hooks"


def flat_jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 180, 160)).save(out, "JPEG", quality=75)
    return out.getvalue()


def upload(stack: Any, tenant: str, path: str, data: bytes) -> None:
    stack.client("s3").put_object(
        Bucket=stack.outputs["UploadsBucketName"],
        Key=f"incoming/{tenant}/{path}",
        Body=data,
        Metadata={"purpose": "web"},
    )


def dead_letters(stack: Any) -> dict[str, list[str]]:
    """Every message body in every dead-letter queue of the stack, by queue."""
    sqs = stack.client("sqs")
    found: dict[str, list[str]] = {}
    for logical_id in DEAD_LETTER_QUEUES:
        physical = stack.resources[logical_id]
        if physical.startswith("http"):
            url = physical
        else:
            url = sqs.get_queue_url(QueueName=physical)["QueueUrl"]
        bodies: list[str] = []
        while True:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30)
            if not got.get("Messages"):
                break
            bodies.extend(m["Body"] for m in got["Messages"])
        found[logical_id] = bodies
    return found


def test_registering_more_endpoints_than_the_cap_answers_4xx_naming_the_field(
    budget_stack: Any, blackhole: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a cap of two outbound endpoints per tenant
    monkeypatch.setenv("QC_MAX_WEBHOOK_ENDPOINTS", "2")
    reset_settings()
    bootstrap.reset_container()
    try:
        admin = api_keys_service().resolve(onboarding_service().create_tenant("budget-cap").secret)
        for n in range(2):
            webhook_admin().register_endpoint(admin.tenant, blackhole, [], f"hook {n}")
        # When the tenant registers a third
        with pytest.raises(ValidationFailed) as refused:
            webhook_admin().register_endpoint(admin.tenant, blackhole, [], "one too many")
        # Then it is refused with a 4xx that names the field and the cap
        assert 400 <= refused.value.http_status < 500
        assert refused.value.code == "too_many_endpoints" and refused.value.field == "url"
        assert "2" in refused.value.message
        assert len(webhook_admin().endpoints(admin.tenant)) == 2
    finally:
        monkeypatch.delenv("QC_MAX_WEBHOOK_ENDPOINTS")
        reset_settings()
        bootstrap.reset_container()


def test_a_60mp_upload_and_dead_endpoints_of_one_tenant_do_not_starve_another(
    budget_stack: Any, blackhole: str
) -> None:
    stack = budget_stack
    admin_a = api_keys_service().resolve(onboarding_service().create_tenant(A).secret)
    admin_b = api_keys_service().resolve(onboarding_service().create_tenant(B).secret)
    receiver = Receiver()
    url_b = receiver.start()
    try:
        # Given tenant A's two endpoints that never answer, and B's endpoint that does
        for n in range(2):
            webhook_admin().register_endpoint(admin_a.tenant, blackhole, [], f"blackhole {n}")
        webhook_admin().register_endpoint(admin_b.tenant, url_b, [], "B's DAM")
        # And, in one ingest batch, A's 60 MP flat JPEG and a photo of a stranger,
        # B's photo of a stranger and B's face-free photo
        huge = flat_jpeg(10_000, 6_000)
        assert len(huge) < 2 * 1024 * 1024
        # (the stranger at 480 px: the batch's time is the 60 MP photo's, not the portraits')
        stranger = inputs.small_portrait_jpeg()
        upload(stack, A, "huge.jpg", huge)
        upload(stack, A, "office.jpg", stranger)
        upload(stack, B, "office.jpg", stranger)
        upload(stack, B, "plain.jpg", flat_jpeg(64, 64))
        # When the stack works through its queues
        started = time.monotonic()
        report = stack.drain(timeout_s=120)
        elapsed = time.monotonic() - started

        # Then no invocation failed or overran its time limit: every message,
        # B's included, succeeded on its first receive (a batch that overruns
        # is returned whole, B's messages with A's)
        assert report.errors == [], report.errors
        assert report.failures == 0 and report.messages == report.succeeded
        # And no dead-letter queue holds anything of B's
        letters = dead_letters(stack)
        assert not any(B in body for bodies in letters.values() for body in bodies), letters
        # Nor anything of A's: every message of the round succeeded
        assert letters == {name: [] for name in DEAD_LETTER_QUEUES}
        places = Places(stack)
        # And A's 60 MP photo was scanned within the pixel budget at the detector's working
        # size (every pass, every orientation: the 40 px floor kept), not at full size, and
        # decided on what that scan saw: a flat picture, no face
        engine = face_engine()
        assert engine.scan_pixels(10_000, 6_000) <= get_settings().detect_budget_pixels
        assert engine.scan_pixels(10_000, 6_000) < 60_000_000
        [huge_record] = places.records(A, "huge.jpg")
        assert (huge_record.status, list(huge_record.reasons)) == ("approved", [])
        assert len(huge_record.faces) == 0
        # And B's uploads are decided as for any tenant
        [office_b] = places.records(B, "office.jpg")
        [plain_b] = places.records(B, "plain.jpg")
        assert (office_b.status, plain_b.status) == ("quarantined", "approved")
        # And B's receiver got each of B's two events, once
        types = sorted(json.loads(body)["type"] for _, body, _ in receiver.accepted)
        assert types == ["asset.approved", "asset.quarantined"]
        deliveries_b = webhook_admin().outbound_deliveries(admin_b.tenant, None, None)
        assert sorted(d.status.value for d in deliveries_b) == ["delivered", "delivered"]
        # And A's unanswered deliveries wait for their retries; they failed nobody's batch
        deliveries_a = webhook_admin().outbound_deliveries(admin_a.tenant, None, None)
        # (two events, asset.approved and asset.quarantined, to each of two endpoints)
        assert sorted(d.event_type for d in deliveries_a) == [
            "asset.approved",
            "asset.approved",
            "asset.quarantined",
            "asset.quarantined",
        ]
        assert {(d.status.value, d.last_error) for d in deliveries_a} == {("retrying", "timeout")}
        # And the whole round took seconds, not a full-size scan per retry
        assert elapsed < 60, elapsed
    finally:
        receiver.stop()
