"""Tenants as a SaaS operator sees them: plans, region pins, onboarding, offboarding.

Pure rules: the plan catalogue, what a valid tenant profile is, and the token
bucket that enforces a plan's API rate. Storage and AWS live in adapters.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from quitclaim.domain.errors import Forbidden, QuitclaimError, ValidationFailed
from quitclaim.domain.models import is_tenant_id

# GDPR: personal data (and biometrics above all) stays in the EU/EEA.
EU_REGIONS: frozenset[str] = frozenset(
    {
        "eu-central-1",
        "eu-central-2",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "eu-south-1",
        "eu-south-2",
        "eu-north-1",
    }
)

DEFAULT_GRACE = timedelta(days=30)
MAX_NAME = 200
# Deliberately plain: one @, a dot in the domain, no spaces (the address is
# only for the operator's mail to the tenant, never for authentication).
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


@dataclass(frozen=True, slots=True)
class Plan:
    """What a tenant pays for: images scanned per month and API request rate."""

    name: str
    images_per_month: int
    api_rate_per_second: float
    api_burst: int


PLANS: dict[str, Plan] = {
    p.name: p
    for p in (
        Plan("free", images_per_month=500, api_rate_per_second=2, api_burst=5),
        Plan("standard", images_per_month=20_000, api_rate_per_second=10, api_burst=20),
        Plan("enterprise", images_per_month=500_000, api_rate_per_second=50, api_burst=100),
    )
}
DEFAULT_PLAN = "standard"


def plan_named(name: str) -> Plan:
    """The catalogue's plan (``ValidationFailed`` on field ``plan`` otherwise)."""
    found = PLANS.get((name or "").strip().lower())
    if found is None:
        raise ValidationFailed(
            f"plan must be one of {', '.join(PLANS)}; not {name!r}", field="plan"
        )
    return found


class TenantState(StrEnum):
    ACTIVE = "active"
    DELETING = "deleting"


@dataclass(frozen=True, slots=True)
class TenantProfile:
    """Who the tenant is for the operator (the policy is separate: ``TenantPolicy``)."""

    tenant: str
    name: str = ""
    region: str = ""
    plan: str = DEFAULT_PLAN
    contact_email: str = ""
    state: TenantState = TenantState.ACTIVE
    purge_after: datetime | None = None


def new_profile(
    tenant: str,
    *,
    name: str,
    region: str,
    plan: str,
    contact_email: str,
    deployment_region: str,
) -> TenantProfile:
    """A validated profile; each ``ValidationFailed`` names the field at fault.

    The region pin must be an EU region *and* the deployment's own: one
    deployment serves one region, so a tenant pinned elsewhere would have its
    biometrics processed outside the region it was promised.
    """
    if not is_tenant_id(tenant):
        raise ValidationFailed(
            "tenant id must be 1-63 lowercase letters, digits or dashes", field="tenant"
        )
    clean_name = (name or "").strip()
    if not clean_name or len(clean_name) > MAX_NAME or not clean_name.isprintable():
        raise ValidationFailed(f"name must be 1-{MAX_NAME} printable characters", field="name")
    pin = (region or "").strip().lower()
    if pin not in EU_REGIONS:
        raise ValidationFailed(
            f"region must be an EU region ({', '.join(sorted(EU_REGIONS))}); not {region!r}",
            field="region",
            code="region_not_allowed",
        )
    if pin != deployment_region:
        raise ValidationFailed(
            f"region {pin} differs from this deployment's region {deployment_region}; "
            "onboard the tenant on the deployment in its region",
            field="region",
            code="region_not_allowed",
        )
    email = (contact_email or "").strip()
    if not _EMAIL.fullmatch(email) or len(email) > 254:
        raise ValidationFailed("contact_email must be an e-mail address", field="contact_email")
    return TenantProfile(
        tenant=tenant,
        name=clean_name,
        region=pin,
        plan=plan_named(plan).name,
        contact_email=email,
    )


def purge_due(profile: TenantProfile, now: datetime) -> bool:
    """True once a tenant marked for deletion is past its grace period."""
    return (
        profile.state is TenantState.DELETING
        and profile.purge_after is not None
        and now >= profile.purge_after
    )


class TenantDeleting(Forbidden):
    """The tenant is being offboarded: no API calls, no new scans."""

    code = "tenant_deleting"


class RateLimited(QuitclaimError):
    """Too many API requests for the tenant's plan; retry after ``retry_after`` seconds."""

    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` banked; one request costs one.

    Time is passed in (seconds, monotonic or not: a clock going back refills
    nothing), so the rule is testable without sleeping.
    """

    rate: float
    burst: int
    tokens: float = field(default=-1.0)
    at: float | None = None

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        if self.tokens < 0:
            self.tokens = float(self.burst)

    def take(self, now: float) -> float:
        """0.0 when admitted; otherwise the seconds until one token is banked."""
        if self.at is not None and now > self.at:
            self.tokens = min(float(self.burst), self.tokens + (now - self.at) * self.rate)
        if self.at is None or now > self.at:
            self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


def retry_after_seconds(wait: float) -> int:
    """A Retry-After header value: whole seconds, at least one."""
    return max(1, math.ceil(wait))


def usage_key_name(namespace: str, tenant: str) -> str:
    """The name of the tenant's API Gateway key (one per tenant and stack)."""
    return f"quitclaim-{namespace}-{tenant}"


def usage_key_value(namespace: str, tenant: str) -> str:
    """The value of the tenant's API Gateway key, known to the authorizer without a lookup.

    Not a credential: with the API's key source ``AUTHORIZER`` API Gateway
    ignores any ``x-api-key`` a client sends and takes the key from the
    authorizer only, so a guessable value grants nothing. It is the key's
    name padded past API Gateway's minimum of 20 characters.
    """
    return f"usage-{usage_key_name(namespace, tenant)}".ljust(20, "0")
