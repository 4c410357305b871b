"""A tenant's plan in AWS: its usage-plan key follows it (docs/access.md).

Onboarding (``Onboarding.create_tenant``) attaches the new tenant's API Gateway
key to its plan's usage plan; ``change`` moves the tenant (the stored plan,
which the in-app limit reads) and its key (which API Gateway throttles by).
Without usage plans (the local stack: the emulator serves no API Gateway)
only the stored plan changes.
"""

from __future__ import annotations

from quitclaim.domain.errors import ValidationFailed
from quitclaim.domain.ports import PlanStore, UsagePlanKeys
from quitclaim.domain.tenancy import PLANS
from quitclaim.observability import audit


class PlanChanges:
    def __init__(self, tenants: PlanStore, usage_plans: UsagePlanKeys | None = None) -> None:
        self._tenants = tenants
        self._usage_plans = usage_plans

    def change(self, tenant: str, plan: str) -> None:
        """Operator: move ``tenant`` to ``plan`` (stored plan and usage-plan key; audited)."""
        if plan not in PLANS:
            raise ValidationFailed(f"plan must be one of {sorted(PLANS)}", field="plan")
        self._tenants.set_plan(tenant, plan)
        if self._usage_plans is not None:
            self._usage_plans.attach(tenant, plan)
        audit("tenant.plan_changed", tenant=tenant, source="operator", plan=plan)
