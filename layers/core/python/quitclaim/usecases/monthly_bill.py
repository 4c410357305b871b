"""A tenant's usage in one month with its bill (any role may read its own bill)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from quitclaim.domain.ports import TenantRepository
from quitclaim.usecases.billing_runs import with_bill

if TYPE_CHECKING:
    from quitclaim.domain.usage import UsageReport
    from quitclaim.usecases.usage_metering import Usage


@dataclass
class MonthlyBill:
    usage: Usage
    tenants: TenantRepository

    def report(self, tenant: str, month: str | None) -> UsageReport:
        """Billable units of ``month`` (UTC, default this one) priced by the tenant's plan."""
        report = self.usage.report(tenant, month)
        # The plan sets the price list; a store without profiles (unit fakes) has none.
        read = getattr(self.tenants, "profile", None)
        profile = read(tenant) if read is not None else None
        return with_bill(report, profile.plan if profile else None, self.usage.clock.now())
