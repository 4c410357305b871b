"""Per-tenant API request rates from the tenant's plan (a token bucket each).

In AWS, API Gateway usage plans throttle first (infra/template.yaml); this is
the same rule inside the app, so the local stack (which serves the Chalice
app without API Gateway) answers the same 429. Buckets live in the process:
a Lambda container enforces its own share, never more than the plan allows.

A tenant without a plan (created before onboarding profiles, or bare by a
test) is not throttled here; in AWS its usage plan still applies.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from quitclaim.domain.tenancy import (
    DEFAULT_PLAN,
    PLANS,
    Plan,
    RateLimited,
    TokenBucket,
    retry_after_seconds,
)

# A plan change reaches a warm container within this long.
PLAN_CACHE_SECONDS = 60.0


class RateLimits:
    """``admit(tenant)`` or ``RateLimited`` with the seconds to wait."""

    def __init__(
        self,
        plan_of: Callable[[str], str | None],
        *,
        plans: Mapping[str, Plan] = PLANS,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._plan_of = plan_of
        self._plans = plans
        self._now = now
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[str, TokenBucket]] = {}
        self._known: dict[str, tuple[float, str | None]] = {}

    def admit(self, tenant: str) -> None:
        plan = self._plan(tenant)
        if plan is None:
            return
        with self._lock:
            now = self._now()
            held = self._buckets.get(tenant)
            if held is None or held[0] != plan.name:
                held = (plan.name, TokenBucket(plan.api_rate_per_second, plan.api_burst))
                self._buckets[tenant] = held
            wait = held[1].take(now)
        if wait > 0:
            raise RateLimited(
                f"the {plan.name} plan allows {plan.api_rate_per_second:g} requests a second "
                f"(bursts of {plan.api_burst}); retry later",
                retry_after=retry_after_seconds(wait),
            )

    def _plan(self, tenant: str) -> Plan | None:
        now = self._now()
        cached = self._known.get(tenant)
        if cached is None or now - cached[0] > PLAN_CACHE_SECONDS:
            cached = (now, self._plan_of(tenant))
            self._known[tenant] = cached
        if cached[1] is None:
            return None
        # A name no longer in the catalogue: the default plan, never unlimited.
        return self._plans.get(cached[1]) or self._plans[DEFAULT_PLAN]
