"""The public pages' bound: per source address within a tenant, and per tenant."""

from __future__ import annotations

import pytest

from quitclaim.domain.tenancy import RateLimited
from quitclaim.usecases.limits import PublicLimits


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _limits(clock: Clock, kept: int = 100) -> PublicLimits:
    return PublicLimits(
        tenant_rate=1.0, tenant_burst=5, source_rate=0.5, source_burst=2, kept=kept, now=clock
    )


def test_one_source_is_bounded_and_told_when_to_retry() -> None:
    # Given a source that used its burst
    clock = Clock()
    limits = _limits(clock)
    limits.admit("t1", "198.51.100.7")
    limits.admit("t1", "198.51.100.7")
    # When it asks again at once
    with pytest.raises(RateLimited) as refused:
        limits.admit("t1", "198.51.100.7")
    # Then it waits whole seconds (one token at 0.5/s) and is told why
    assert refused.value.retry_after == 2
    assert "this address" in str(refused.value)
    # And another source, and the same source at another tenant, still get in
    limits.admit("t1", "203.0.113.9")
    limits.admit("t2", "198.51.100.7")
    # And after the wait it is admitted again
    clock.t += 2
    limits.admit("t1", "198.51.100.7")


def test_a_tenant_is_bounded_across_sources() -> None:
    clock = Clock()
    limits = _limits(clock)
    for n in range(5):
        limits.admit("t1", f"198.51.100.{n}")
    with pytest.raises(RateLimited) as refused:
        limits.admit("t1", "198.51.100.99")
    assert refused.value.retry_after == 1
    assert "organisation" in str(refused.value)
    limits.admit("t2", "198.51.100.99")


def test_a_refused_source_does_not_drain_the_tenant_and_memory_is_bounded() -> None:
    clock = Clock()
    limits = _limits(clock, kept=4)
    for _ in range(2):
        limits.admit("t1", "198.51.100.7")
    for _ in range(10):
        with pytest.raises(RateLimited):
            limits.admit("t1", "198.51.100.7")
    # The flooding source's refusals took nothing from the tenant's share (3 left of 5)
    for n in range(3):
        limits.admit("t1", f"203.0.113.{n}")
    assert len(limits._buckets) <= 4
    # And no address is kept, only hashes
    assert not any("203.0.113" in key or "198.51" in key for key in limits._buckets)
