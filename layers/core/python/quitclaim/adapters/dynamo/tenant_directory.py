"""Every tenant with its policy and contact, for the daily jobs: one filtered scan."""

from __future__ import annotations

from quitclaim.adapters.dynamo.plumbing import dependency
from quitclaim.adapters.dynamo.tables import TenantModel
from quitclaim.adapters.dynamo.tenant_store import policy_from
from quitclaim.domain.models import TenantPolicy
from quitclaim.domain.tenancy import TenantState


class DynamoTenantDirectory:
    """``TenantDirectory`` on the tenants table.

    The table also holds per-month usage items (``tenant#usage#YYYY-MM``):
    only items with a policy (``match_threshold``) are tenants. One scan per
    daily job (retention, the digest) reads every tenant's policy and contact
    at once, instead of one read per tenant; a tenant being offboarded is left
    out (its purge deletes everything anyway).
    """

    def tenants(self) -> list[tuple[TenantPolicy, str]]:
        """(policy, contact e-mail or "") of every active tenant, by id."""
        with dependency("tenants scan"):
            items = list(TenantModel.scan(filter_condition=TenantModel.match_threshold.exists()))
        return sorted(
            (
                (policy_from(item), item.contact_email or "")
                for item in items
                if (item.state or TenantState.ACTIVE) != TenantState.DELETING
            ),
            key=lambda row: row[0].tenant,
        )
