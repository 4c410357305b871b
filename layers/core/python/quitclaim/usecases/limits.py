"""Per-tenant API request rates from the tenant's plan (a token bucket each).

In AWS, API Gateway usage plans throttle first (infra/template.yaml); this is
the same rule inside the app, so the local stack (which serves the Chalice
app without API Gateway) answers the same 429. Buckets live in the process:
a Lambda container enforces its own share, never more than the plan allows.

A tenant without a plan (created before onboarding profiles, or bare by a
test) is not throttled here; in AWS its usage plan still applies.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
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


# The public pages (a person's request, the hosted form) have no key and no
# plan: bounded per tenant, and per source address within a tenant, so one
# client cannot flood a tenant's officer or mail a thousand strangers. The
# per-source bound is loose enough for an event where everyone signs behind
# one NAT (docs/person-pages.md).
PUBLIC_TENANT_RATE = 1.0  # requests a second, per tenant
PUBLIC_TENANT_BURST = 60
PUBLIC_SOURCE_RATE = 1 / 6  # ten a minute, per source address and tenant
PUBLIC_SOURCE_BURST = 20
PUBLIC_SOURCES_KEPT = 10_000  # a container remembers at most this many sources


class PublicLimits:
    """``admit(tenant, source_ip)`` or ``RateLimited``: the public pages' bound.

    Sources are kept in memory only, as a keyed hash of the address under a
    random per-container key (never the address; a plain hash of an IPv4
    address is reversed by trying all 2^32), least recently seen forgotten first.
    """

    def __init__(
        self,
        *,
        tenant_rate: float = PUBLIC_TENANT_RATE,
        tenant_burst: int = PUBLIC_TENANT_BURST,
        source_rate: float = PUBLIC_SOURCE_RATE,
        source_burst: int = PUBLIC_SOURCE_BURST,
        kept: int = PUBLIC_SOURCES_KEPT,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tenant = (tenant_rate, tenant_burst)
        self._source = (source_rate, source_burst)
        self._kept = kept
        self._now = now
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._salt = secrets.token_bytes(16)

    def admit(self, tenant: str, source_ip: str = "") -> None:
        keys = [("tenant", f"t#{tenant}")]
        if source_ip:
            # The source first: a flooding client runs out before it drains the tenant's share.
            digest = hashlib.blake2b(
                f"{tenant}#{source_ip}".encode(), key=self._salt, digest_size=12
            ).hexdigest()
            keys.insert(0, ("source", f"s#{digest}"))
        with self._lock:
            now = self._now()
            for scope, key in keys:
                wait = self._bucket(scope, key).take(now)
                if wait > 0:
                    raise RateLimited(
                        "too many requests from this "
                        + ("address" if scope == "source" else "organisation's public pages")
                        + "; retry later",
                        retry_after=retry_after_seconds(wait),
                    )

    def _bucket(self, scope: str, key: str) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            rate, burst = self._tenant if scope == "tenant" else self._source
            bucket = self._buckets[key] = TokenBucket(rate, burst)
            while len(self._buckets) > self._kept:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(key)
        return bucket
