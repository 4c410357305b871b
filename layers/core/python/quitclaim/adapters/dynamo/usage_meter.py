"""``UsageMeter`` on the tenants table: monthly counters and the image quota."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import UpdateError
from pynamodb.expressions.condition import Condition

from quitclaim.adapters.dynamo.plumbing import conditional_failed, dependency, tenant_key
from quitclaim.adapters.dynamo.tables import TenantModel, UsageModel
from quitclaim.domain.errors import NotFound
from quitclaim.domain.tenancy import DEFAULT_PLAN, PLANS
from quitclaim.domain.usage import COUNTED_UNITS, IMAGES_SCANNED, UsageIncrement


def usage_key(tenant: str, month: str) -> str:
    return tenant_key(tenant, "usage", month)


def usage_update(usage: UsageIncrement) -> tuple[UsageModel, list[Any], Condition | None]:
    """The ADD on the month's counters item, and the quota condition if any.

    The condition ``images_scanned < limit`` is what makes the quota exact under
    concurrency: two ingests that both saw room cannot both take the last image.
    """
    actions: list[Any] = [
        UsageModel.owner.set(usage.tenant),
        UsageModel.month.set(usage.month),
        *(getattr(UsageModel, unit).add(n) for unit, n in usage.units.items() if n),
    ]
    condition: Condition | None = None
    limit = usage.images_limit
    if limit is not None and usage.units.get(IMAGES_SCANNED):
        # A missing counter compares false: with a limit of 0 nothing passes.
        below: Condition = UsageModel.images_scanned < limit
        condition = (UsageModel.images_scanned.does_not_exist() | below) if limit > 0 else below
    return UsageModel(usage_key(usage.tenant, usage.month)), actions, condition


class DynamoUsage:
    """UsageMeter on the tenants table: ``{tenant}#usage#{YYYY-MM}`` items and the quota."""

    def add(self, tenant: str, month: str, units: Mapping[str, int]) -> None:
        counters, actions, _ = usage_update(UsageIncrement(tenant, month, units))
        with dependency("usage update"):
            counters.update(actions=actions)

    def counters(self, tenant: str, month: str) -> dict[str, int]:
        with dependency("usage read"):
            try:
                item = UsageModel.get(usage_key(tenant, month), consistent_read=True)
            except UsageModel.DoesNotExist:
                return dict.fromkeys(COUNTED_UNITS, 0)
        return {unit: int(getattr(item, unit) or 0) for unit in COUNTED_UNITS}

    def images_per_month(self, tenant: str) -> int | None:
        """The operator's override if set, else the plan's (the catalogue), else unlimited.

        A tenant created before plans has none (unlimited, as its API rate); a
        plan name no longer in the catalogue gets the default plan's, never unlimited.
        """
        with dependency("tenant read"):
            try:
                item = TenantModel.get(tenant, consistent_read=True)
            except TenantModel.DoesNotExist:
                return None
        if item.images_per_month is not None:
            return int(item.images_per_month)
        if not item.plan:
            return None
        return (PLANS.get(item.plan) or PLANS[DEFAULT_PLAN]).images_per_month

    def set_images_per_month(self, tenant: str, limit: int | None) -> None:
        action = (
            TenantModel.images_per_month.remove()
            if limit is None
            else TenantModel.images_per_month.set(limit)
        )
        with dependency("tenant update"):
            try:
                TenantModel(tenant).update(
                    actions=[action, TenantModel.updated_at.set(datetime.now(UTC))],
                    condition=TenantModel.tenant.exists(),
                )
            except UpdateError as exc:
                if conditional_failed(exc):
                    raise NotFound(f"tenant {tenant!r} does not exist") from exc
                raise

    def tenants_with_quota(self) -> list[str]:
        """A scan, filtered: the tenants table holds one item per tenant and month."""
        with dependency("tenants scan"):
            return sorted(
                item.tenant
                for item in TenantModel.scan(
                    filter_condition=TenantModel.images_per_month.exists()
                    | TenantModel.plan.exists()
                )
            )
