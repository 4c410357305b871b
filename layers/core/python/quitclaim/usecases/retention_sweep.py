"""Retention: delete what the tenant keeps no longer than needed, audited.

A daily schedule (``functions/expiry``, kind ``retention``) runs every
tenant's rules (domain/retention.py): quarantined images of unknown people
after ``quarantine_retention_days``, rejected uploads after
``rejected_retention_days``. Each deletion goes through ``Placement`` (record
first, then the bytes and the kept original), is written into the asset's
history with the actor ``retention``, and audited as ``asset.deleted`` with
``source="retention"`` into the tenant's hash chain: the conservation checker
counts a deleted record as accounted for, and the digest counts it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime

from quitclaim.domain.errors import Conflict
from quitclaim.domain.models import AssetStatus, TenantPolicy
from quitclaim.domain.ports import AssetRepository, Clock, TenantDirectory, TenantRepository
from quitclaim.domain.records import AssetRecord
from quitclaim.domain.retention import (
    RETENTION_ACTOR,
    due_for_deletion,
    quarantine_cutoff,
    rejected_cutoff,
)
from quitclaim.observability import audit, count, logger
from quitclaim.usecases.asset_decisions import Placement, history_entry

PAGE = 100


@dataclass(frozen=True, slots=True)
class RetentionRun:
    tenant: str
    quarantined: int = 0
    rejected: int = 0

    @property
    def deleted(self) -> int:
        return self.quarantined + self.rejected


class Retention:
    """Runs the tenants' retention rules (built in bootstrap)."""

    def __init__(
        self,
        *,
        tenants: TenantRepository,
        directory: TenantDirectory,
        assets: AssetRepository,
        placement: Placement,
        clock: Clock,
    ) -> None:
        self._tenants = tenants
        self._directory = directory
        self._assets = assets
        self._placement = placement
        self._clock = clock

    def run_all(self) -> int:
        """Every tenant's rules; how many images were deleted."""
        deleted = 0
        for policy, _ in self._directory.tenants():
            deleted += self._run(policy).deleted
        count("RetentionDeleted", deleted)
        return deleted

    def run(self, tenant: str) -> RetentionRun:
        """One tenant's rules at the clock's now (idempotent: deleted stays deleted)."""
        policy = self._tenants.policy(tenant)
        if policy is None:
            return RetentionRun(tenant)
        return self._run(policy)

    def _run(self, policy: TenantPolicy) -> RetentionRun:
        tenant = policy.tenant
        now = self._clock.now()
        done = {"quarantine": 0, "rejected": 0}
        for status, cutoff in (
            (AssetStatus.QUARANTINED, quarantine_cutoff(policy, now)),
            (AssetStatus.REJECTED, rejected_cutoff(policy, now)),
        ):
            if cutoff is None:
                continue
            for record in list(assets_in(self._assets, tenant, status, until=cutoff)):
                rule = due_for_deletion(record, policy, now)
                if rule is not None and self._delete(record, rule, policy, now):
                    done[rule] += 1
        return RetentionRun(tenant, done["quarantine"], done["rejected"])

    def _delete(self, record: AssetRecord, rule: str, policy: TenantPolicy, now: datetime) -> bool:
        days = (
            policy.quarantine_retention_days
            if rule == "quarantine"
            else policy.rejected_retention_days
        )
        after = replace(
            record,
            status=AssetStatus.DELETED,
            reasons=(),
            dest_bucket="",
            dest_key="",
            decided_at=now,
            review={**record.review, "retention": {"rule": rule, "days": days}},
        )
        after = replace(
            after,
            history=(
                *record.history,
                history_entry(
                    now,
                    "deleted",
                    RETENTION_ACTOR,
                    after,
                    justification=f"retention: {rule} after {days} days",
                    was=record.status.value,
                    held_for=list(record.reasons),
                ),
            ),
        )
        try:
            self._placement.transition(record, after)
        except Conflict:
            # A reviewer acted on it meanwhile: tomorrow's run judges the new state.
            logger.info("retention skipped a changed asset", asset_id=record.asset_id)
            return False
        for sid in record.subject_ids:
            self._assets.remove_appearance(record.tenant, sid, record.asset_id)
        audit(
            "asset.deleted",
            tenant=record.tenant,
            asset_id=record.asset_id,
            status=AssetStatus.DELETED.value,
            reasons=list(record.reasons),
            source=RETENTION_ACTOR,
            reason=rule,
        )
        return True


def assets_in(
    assets: AssetRepository,
    tenant: str,
    status: AssetStatus,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Iterator[AssetRecord]:
    """Every asset of ``tenant`` in ``status`` (optionally within a window), page by page."""
    cursor: str | None = None
    while True:
        page = assets.page(
            tenant,
            status=status.value,
            reason=None,
            subject_id=None,
            since=since,
            until=until,
            limit=PAGE,
            cursor=cursor,
        )
        yield from page.items
        cursor = page.next_cursor
        if not cursor:
            return
