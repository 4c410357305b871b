"""Usage export, API-call metering, and the release of uploads held over quota.

Counted units come from the month's counters item, each increment written in
the same transaction as the first write of what it counts (see
``adapters.dynamo.DynamoAssets.create`` and ``DynamoWebhooks.record_outbound``).

Storage (GB-month in library and quarantine) is *derived*, not counted: the
integral of each record's size over the intervals its append-only history
places it in the library or the quarantine bucket (``domain.usage``). Why not a
daily sweep adding byte-hours: the history already holds every placement with
its time, so the figure is exact to the second, the same on every read (no
increment to lose or repeat, nothing to make idempotent per day), and a
re-decision that moves an image between library and quarantine ends one
interval where the next begins. It costs one paged read of the tenant's
records per export, which a monthly bill can afford.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote_plus

from quitclaim.domain.models import AssetStatus
from quitclaim.domain.ports import Assets, Clock, UsageMeter, WorkQueue
from quitclaim.domain.records import AssetRecord
from quitclaim.domain.usage import (
    API_CALLS,
    UsageReport,
    month_of,
    parse_month,
    remaining,
    storage_gb_months,
)
from quitclaim.observability import audit, count, logger
from quitclaim.usecases.ledger import every_asset

# One release run re-enqueues at most this many uploads per tenant; the next run goes on.
RELEASE_BATCH = 500


@dataclass
class Usage:
    meter: UsageMeter
    assets: Assets
    clock: Clock
    ingest: WorkQueue | None = None  # where a released upload goes again

    def report(self, tenant: str, month: str | None = None) -> UsageReport:
        """Every unit of one UTC month (default: the current one)."""
        now = self.clock.now()
        month = parse_month(month) if month is not None else month_of(now)
        units: dict[str, float | int] = dict(self.meter.counters(tenant, month))
        records = list(every_asset(self.assets, tenant))
        units.update(storage_gb_months(records, month, now))
        return UsageReport(
            tenant=tenant,
            month=month,
            units=units,
            images_per_month=self.meter.images_per_month(tenant),
            held=sum(1 for r in records if r.status is AssetStatus.HELD),
        )

    def count_api_call(self, tenant: str) -> None:
        """One authenticated request, counted at the API boundary (it has no retries)."""
        self.meter.add(tenant, month_of(self.clock.now()), {API_CALLS: 1})

    def set_images_per_month(self, tenant: str, limit: int | None) -> int:
        """A plan change: store the new quota and release held uploads up to it now."""
        self.meter.set_images_per_month(tenant, limit)
        audit("tenant.quota_changed", tenant=tenant, images_per_month=limit)
        return self.release(tenant)

    def release(self, tenant: str) -> int:
        """Re-enqueue held uploads (oldest first) for as many images as the quota allows.

        Ingest checks the quota again and decides each once (the held record is
        replaced conditionally, metered in the same transaction), so a release
        that runs twice or overlaps an upload cannot over-spend or double-count.
        """
        limit = self.meter.images_per_month(tenant)
        left = remaining(limit, self.meter.counters(tenant, month_of(self.clock.now())))
        budget = RELEASE_BATCH if left is None else min(left, RELEASE_BATCH)
        if budget == 0:
            return 0
        held = self.assets.held(tenant, budget)
        if held and self.ingest is None:
            logger.warning("held uploads not released: no ingest queue", tenant=tenant)
            return 0
        for record in held:
            assert self.ingest is not None
            self.ingest.send(_s3_event(record))
        if held:
            audit("asset.released_from_hold", tenant=tenant, results=len(held))
            count("HeldReleased", len(held))
        return len(held)

    def release_all(self) -> dict[str, int]:
        """The scheduled job: every tenant with a quota (a new month makes room)."""
        released = {tenant: self.release(tenant) for tenant in self.meter.tenants_with_quota()}
        return {tenant: n for tenant, n in released.items() if n}


def _s3_event(record: AssetRecord) -> dict[str, object]:
    """The upload's S3 event again: same bucket, key and version, so the same asset id.

    The uploads bucket is versioned (the template), so the recorded
    ``source_version`` is the version id the original event named.
    """
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": record.source_bucket},
                    "object": {
                        "key": quote_plus(record.source_key, safe="/"),
                        "versionId": record.source_version,
                        "size": record.size or 0,
                    },
                },
            }
        ]
    }
