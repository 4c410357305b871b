"""Onboarding a tenant: its profile and policy, its usage plan, its first admin key."""

from __future__ import annotations

from dataclasses import dataclass

from quitclaim.domain.models import TenantPolicy
from quitclaim.domain.ports import UsagePlanKeys
from quitclaim.domain.registry import IssuedKey, Role
from quitclaim.domain.tenancy import DEFAULT_PLAN, TenantProfile, new_profile
from quitclaim.usecases.keys import ApiKeys
from quitclaim.usecases.tenant_admin import TenantAdmin


@dataclass
class Onboarding:
    """The operator's one step that makes a tenant usable (the CLI and tests call it)."""

    tenants: TenantAdmin
    keys: ApiKeys
    deployment_region: str = "eu-central-1"
    usage_plans: UsagePlanKeys | None = None

    def create_tenant(
        self,
        tenant: str,
        *,
        label: str = "admin",
        name: str | None = None,
        region: str | None = None,
        plan: str | None = None,
        contact_email: str | None = None,
        policy: TenantPolicy | None = None,
    ) -> IssuedKey:
        """Operator: onboard a tenant: profile, default policy, first admin key.

        With no profile fields it creates a bare tenant (no plan: the app does
        not throttle it), as tests and tenants from before onboarding have.
        Each ``ValidationFailed`` names its field (``region``, ``plan``, ...).
        """
        profile = self._profile(tenant, name, region, plan, contact_email)
        self.tenants.create_tenant(policy or TenantPolicy(tenant=tenant), profile)
        if profile is not None and self.usage_plans is not None:
            # API Gateway throttles the tenant by this key from its first request.
            self.usage_plans.attach(tenant, profile.plan)
        return self.keys.issue(tenant, Role.ADMIN, label)

    def _profile(
        self,
        tenant: str,
        name: str | None,
        region: str | None,
        plan: str | None,
        contact_email: str | None,
    ) -> TenantProfile | None:
        if all(v is None for v in (name, region, plan, contact_email)):
            return None
        return new_profile(
            tenant,
            name=name if name is not None else tenant,
            region=region if region is not None else self.deployment_region,
            plan=plan if plan is not None else DEFAULT_PLAN,
            contact_email=contact_email or "",
            deployment_region=self.deployment_region,
        )
