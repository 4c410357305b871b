"""Fairness on the local stack: one tenant's bulk import does not starve another's uploads.

Tenant A bulk-uploads face-free images, then tenant B uploads 10 photos. The
runtime is stepped one invocation at a time (Lambda's pollers, weighted by
each mapping's MaximumConcurrency) until all of B's uploads are decided: most
of A's import must still be queued at that moment, and every one of A's
uploads must be accounted for (decided, or still uploaded with its message on
a lane).

The test runs on a stack of its own, thrown away afterwards, so ``make test``
does not pay for scanning the rest of A's import. ``make test`` runs A's
import at 200 uploads (share 10 per window, as B sends 10); the issue's 1,000 (share 20) runs
in ``make soak`` with ``QC_FAIRNESS_DRAIN=1``: everything drains and the
conservation law must hold for both tenants.
"""

from __future__ import annotations

import io
import os
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from PIL import Image

from quitclaim.bootstrap import conservation_service, registry_service
from quitclaim.domain.models import TenantPolicy
from tests.conftest import FACES
from tests.load import own_stack

pytestmark = pytest.mark.e2e
# Test-harness knob, not application configuration.
BULK = int(os.environ.get("QC_FAIRNESS_BULK_UPLOADS", "200"))
DRAIN = os.environ.get("QC_FAIRNESS_DRAIN") == "1"
# B uploads 10: within its share, so only A (past its own share) meets the bulk lane.
SHARE = max(10, BULK // 50)
A, B = "e2e-fair-bulk", "e2e-fair-small"


def plain_jpeg() -> bytes:
    """64x64, one colour: no face, decided fast."""
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 180, 160)).save(out, "JPEG")
    return out.getvalue()


def small_face() -> bytes:
    """A real portrait, scaled down so detection stays cheap."""
    image = Image.open(FACES / "uploads" / "stranger-portrait.png").convert("RGB")
    image.thumbnail((240, 240))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


@pytest.fixture
def fair_stack() -> Iterator[Any]:
    """A stack of its own whose ingest function has AdmissionShare = SHARE."""
    with own_stack("fair") as stack:
        lam = stack.client("lambda")
        name = stack.resources["IngestFunction"]
        variables = lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
        lam.update_function_configuration(
            FunctionName=name,
            Environment={"Variables": {**variables, "QC_ADMISSION_SHARE": str(SHARE)}},
        )
        stack.runtime.refresh()
        yield stack


def queued(stack: Any, *urls: str) -> int:
    """Messages on these queues, visible or in flight."""
    sqs = stack.client("sqs")
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    total = 0
    for url in urls:
        got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        total += sum(int(got[n]) for n in names)
    return total


def waiting(s3: Any, bucket: str, tenant: str) -> int:
    """Uploads of ``tenant`` not yet decided and placed (still under incoming/)."""
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"incoming/{tenant}/"
    )
    return sum(page.get("KeyCount", 0) for page in pages)


def test_a_bulk_import_does_not_starve_another_tenants_uploads(fair_stack: Any) -> None:
    local_stack = fair_stack
    started = time.monotonic()
    registry = registry_service()
    registry.create_tenant(TenantPolicy(tenant=A))
    registry.create_tenant(TenantPolicy(tenant=B))
    s3 = local_stack.client("s3")
    bucket = local_stack.outputs["UploadsBucketName"]
    runtime = local_stack.runtime
    lanes: Counter[str] = Counter()
    bulk_name = local_stack.outputs["BulkQueueUrl"].rsplit("/", 1)[1]
    bulk_arn = next(m.queue_arn for m in runtime.mappings if m.queue_url.endswith(bulk_name))

    def observe(function: str, event: dict[str, Any]) -> None:
        if function == "IngestFunction":
            on_bulk = event["Records"][0]["eventSourceARN"] == bulk_arn
            lanes["bulk" if on_bulk else "main"] += 1

    runtime.observers.append(observe)
    try:
        # Given tenant A's bulk import, all notified before tenant B uploads 10 photos
        bulk, face = plain_jpeg(), small_face()
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(
                pool.map(
                    lambda i: s3.put_object(
                        Bucket=bucket, Key=f"incoming/{A}/bulk-{i:04d}.jpg", Body=bulk
                    ),
                    range(BULK),
                )
            )
        for i in range(10):
            s3.put_object(Bucket=bucket, Key=f"incoming/{B}/photo-{i}.jpg", Body=face)
        put_s = time.monotonic() - started

        # When the runtime steps, invocation by invocation, until B's 10 are decided
        runtime.run_until(lambda: waiting(s3, bucket, B) == 0, max_invocations=5 * BULK)

        # Then most of A's import is still queued at that moment, on the bulk lane
        a_waiting = waiting(s3, bucket, A)
        assert a_waiting >= BULK // 2, f"only {a_waiting} of A's {BULK} still waiting"
        bulk_url = local_stack.outputs["BulkQueueUrl"]
        assert runtime.queue_depth(bulk_url) > 0
        fair_s = time.monotonic() - started
        # And every one of A's uploads is accounted for: decided, or uploaded and queued
        a_decided = conservation_service().check(A).decisions
        assert a_decided + a_waiting == BULK
        assert queued(local_stack, local_stack.outputs["IngestQueueUrl"], bulk_url) >= a_waiting
        # And B's 10 are decided and placed: the law holds for B already
        law_b = conservation_service().check(B)
        assert law_b.holds and law_b.decisions == 10, law_b.violations[:5]

        if DRAIN:  # make soak: the rest of A's import too
            report = local_stack.drain(timeout_s=120.0)
            assert not report.errors, report.errors[:3]
    finally:
        runtime.observers.remove(observe)
    assert lanes["bulk"] > 0, "A's overflow never went through the bulk lane"
    print(
        f"\nfairness: {BULK}+10 uploads, put {put_s:.1f}s, B done at {fair_s:.1f}s "
        f"with {a_waiting} of A waiting, invocations {dict(lanes)}"
    )
    if not DRAIN:
        return

    # Then the conservation law holds for both tenants, every upload accounted for
    checked = {t: conservation_service().check(t) for t in (A, B)}
    for tenant, law in checked.items():
        assert law.holds, (tenant, law.violations[:5])
    assert checked[A].decisions == BULK
    assert checked[B].decisions == 10
    for law in checked.values():
        assert law.library + law.quarantine + law.rejected == law.decisions
    # And nothing was dead-lettered
    assert runtime.queue_depth(local_stack.outputs["BulkDeadLetterQueueUrl"]) == 0
    assert runtime.queue_depth(local_stack.outputs["IngestDeadLetterQueueUrl"]) == 0
