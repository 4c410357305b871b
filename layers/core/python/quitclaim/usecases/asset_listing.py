"""The officer's list of a tenant's asset records (the review queue and its filters)."""

from __future__ import annotations

from dataclasses import dataclass

from quitclaim.domain.errors import ValidationFailed
from quitclaim.domain.ports import AssetRepository
from quitclaim.domain.registry import Page
from quitclaim.usecases.admin_requests import AssetFilter
from quitclaim.usecases.ledger import page_limit

# The statuses a record is stored with ("held" is a review view, not a status).
STATUSES = frozenset({"approved", "quarantined", "rejected", "deleted"})


@dataclass
class AssetListing:
    assets: AssetRepository

    def page(self, tenant: str, wanted: AssetFilter) -> Page:
        """One page of the tenant's records matching ``wanted``."""
        if wanted.status is not None and wanted.status not in STATUSES:
            raise ValidationFailed(f"status must be one of {sorted(STATUSES)}", field="status")
        return self.assets.page(
            tenant,
            status=wanted.status,
            reason=wanted.reason,
            subject_id=wanted.subject_id,
            since=wanted.since,
            until=wanted.until,
            limit=page_limit(wanted.limit),
            cursor=wanted.cursor,
        )
