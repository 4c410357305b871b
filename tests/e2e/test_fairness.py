"""Fairness on the local stack: one tenant's bulk import does not starve another's uploads.

Tenant A bulk-uploads face-free images, then tenant B uploads 10 photos. The
runtime is stepped one invocation at a time (Lambda's pollers, weighted by
each mapping's MaximumConcurrency) until all of B's uploads are decided: A
must still have uploads waiting at that moment. Then everything drains and
the conservation law must hold for both tenants, every upload accounted for.

The bulk size is 100 in ``make test`` (well under a minute on a quiet machine); the issue's
1,000 runs with ``QC_FAIRNESS_BULK_UPLOADS=1000`` (several minutes: every
one of A's images is scanned). The share is a tenth of it, as 100 (the
template's default) is of 1,000.
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

pytestmark = pytest.mark.e2e
# Test-harness knob, not application configuration.
BULK = int(os.environ.get("QC_FAIRNESS_BULK_UPLOADS", "100"))
SHARE = max(1, BULK // 10)
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
def small_share(local_stack: Any) -> Iterator[None]:
    """The ingest function deployed with AdmissionShare = SHARE; restored afterwards."""
    lam = local_stack.client("lambda")
    name = local_stack.resources["IngestFunction"]
    variables = lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
    lam.update_function_configuration(
        FunctionName=name,
        Environment={"Variables": {**variables, "QC_ADMISSION_SHARE": str(SHARE)}},
    )
    local_stack.runtime.refresh()
    try:
        yield
    finally:
        lam.update_function_configuration(FunctionName=name, Environment={"Variables": variables})
        local_stack.runtime.refresh()


def waiting(s3: Any, bucket: str, tenant: str) -> int:
    """Uploads of ``tenant`` not yet decided and placed (still under incoming/)."""
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"incoming/{tenant}/"
    )
    return sum(page.get("KeyCount", 0) for page in pages)


def test_a_bulk_import_does_not_starve_another_tenants_uploads(
    local_stack: Any, small_share: None
) -> None:
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

        # Then A's import is not fully decided at that moment: the rest waits on the bulk lane
        a_waiting = waiting(s3, bucket, A)
        assert BULK - a_waiting < BULK, "A's import was fully scanned before B's 10 photos"
        assert runtime.queue_depth(local_stack.outputs["BulkQueueUrl"]) > 0
        fair_s = time.monotonic() - started

        # When everything drains
        report = local_stack.drain(timeout_s=max(120.0, BULK * 1.5))
        assert not report.errors, report.errors[:3]
    finally:
        runtime.observers.remove(observe)

    # Then the conservation law holds for both tenants, every upload accounted for
    checked = {t: conservation_service().check(t) for t in (A, B)}
    for tenant, law in checked.items():
        assert law.holds, (tenant, law.violations[:5])
    assert checked[A].decisions == BULK
    assert checked[B].decisions == 10
    for law in checked.values():
        assert law.library + law.quarantine + law.rejected == law.decisions
    # And A's overflow really went through the bulk lane, and nothing was dead-lettered
    assert lanes["bulk"] > 0
    assert runtime.queue_depth(local_stack.outputs["BulkDeadLetterQueueUrl"]) == 0
    assert runtime.queue_depth(local_stack.outputs["IngestDeadLetterQueueUrl"]) == 0
    print(
        f"\nfairness: {BULK}+10 uploads, put {put_s:.1f}s, B done at {fair_s:.1f}s "
        f"with {a_waiting} of A waiting, all done at {time.monotonic() - started:.1f}s, "
        f"invocations {dict(lanes)}"
    )
