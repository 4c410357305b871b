"""Tenants as a SaaS operator runs them: onboarding rules, plan rates, offboarding."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quitclaim.domain.errors import Conflict, NotFound, ValidationFailed
from quitclaim.domain.tenancy import (
    EU_REGIONS,
    PLANS,
    Plan,
    RateLimited,
    TenantProfile,
    TenantState,
    TokenBucket,
    new_profile,
)
from quitclaim.usecases.limits import RateLimits
from quitclaim.usecases.offboarding import GracePeriodRunning, Offboarding
from tests.unit.fakes import FixedClock

HOME = "eu-central-1"


def onboard(**changes: str) -> TenantProfile:
    given_ = {
        "name": "Acme Media",
        "region": HOME,
        "plan": "standard",
        "contact_email": "dpo@acme.example",
    }
    given_.update(changes)
    return new_profile("acme", deployment_region=HOME, **given_)


# ------------------------------------------------------------------ onboarding


def test_a_valid_profile_is_normalised() -> None:
    # When the operator onboards with a padded name and an upper-case region
    profile = onboard(name="  Acme Media ", region="EU-Central-1", plan="Free")
    # Then the profile is clean, active, and on the catalogue's plan
    assert (profile.name, profile.region, profile.plan) == ("Acme Media", HOME, "free")
    assert profile.state is TenantState.ACTIVE and profile.purge_after is None


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"name": " "}, "name", "validation_failed"),
        ({"region": "us-east-1"}, "region", "region_not_allowed"),
        ({"region": "eu-west-1"}, "region", "region_not_allowed"),
        ({"plan": "platinum"}, "plan", "validation_failed"),
        ({"contact_email": "not-an-address"}, "contact_email", "validation_failed"),
    ],
)
def test_each_invalid_field_is_named(changes: dict[str, str], field: str, code: str) -> None:
    # When one field is wrong, Then the error names exactly that field
    with pytest.raises(ValidationFailed) as caught:
        onboard(**changes)
    assert (caught.value.field, caught.value.code) == (field, code)


def test_a_region_other_than_the_deployments_says_so() -> None:
    # When an EU region other than this deployment's is asked for
    with pytest.raises(ValidationFailed) as caught:
        onboard(region="eu-west-1")
    # Then the message says which region the deployment is in
    assert "eu-central-1" in caught.value.message and "eu-west-1" in caught.value.message


@given(st.text(min_size=1, max_size=20))
def test_only_the_deployments_region_is_ever_accepted(region: str) -> None:
    # For any region text, onboarding succeeds only for the deployment's own
    try:
        profile = onboard(region=region)
    except ValidationFailed as exc:
        assert exc.field == "region"
    else:
        assert profile.region == HOME and profile.region in EU_REGIONS


def test_the_catalogue_matches_the_templates_plans() -> None:
    # The usage plans are built from infra/template.yaml's Metadata.Plans
    from infra.template_source import load_template
    from tests.conftest import REPO_ROOT

    mapped = load_template(REPO_ROOT / "infra" / "template.yaml")["Metadata"]["Plans"]
    assert {
        name: (p.api_rate_per_second, p.api_burst, p.images_per_month) for name, p in PLANS.items()
    } == {name: (m["RatePerSecond"], m["Burst"], m["ImagesPerMonth"]) for name, m in mapped.items()}


# ------------------------------------------------------------------ rates


@given(
    rate=st.floats(min_value=0.1, max_value=100),
    burst=st.integers(min_value=1, max_value=50),
    gaps=st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=200),
)
def test_a_bucket_never_admits_more_than_burst_plus_rate_times_time(
    rate: float, burst: int, gaps: list[float]
) -> None:
    bucket = TokenBucket(rate, burst)
    now, admitted = 0.0, 0
    for gap in gaps:
        now += gap
        wait = bucket.take(now)
        admitted += wait == 0.0
        # And a refusal always asks for a positive wait, at most one token's time
        assert wait == 0.0 or 0 < wait <= 1 / rate + 1e-9
    assert admitted <= burst + rate * now + 1e-6


def test_a_full_bucket_admits_its_burst_at_once_then_refuses() -> None:
    bucket = TokenBucket(rate=2, burst=3)
    assert [bucket.take(10.0) for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]
    # And half a second later one more request is admitted
    assert bucket.take(10.5) == 0.0


def test_rate_limits_follow_each_tenants_plan_separately() -> None:
    # Given a tiny plan for tenant a and a large one for tenant b, time standing still
    plans = {
        "tiny": Plan("tiny", 1, api_rate_per_second=1, api_burst=2),
        "standard": PLANS["standard"],
    }
    limits = RateLimits({"a": "tiny", "b": "standard"}.get, plans=plans, now=lambda: 100.0)
    limits.admit("a")
    limits.admit("a")
    # When a goes over its burst
    with pytest.raises(RateLimited) as caught:
        limits.admit("a")
    # Then it is told how long to wait; b is not affected by a's requests
    assert caught.value.retry_after == 1 and caught.value.http_status == 429
    for _ in range(PLANS["standard"].api_burst):
        limits.admit("b")


def test_a_tenant_without_a_plan_is_not_throttled_in_the_app() -> None:
    # Given a tenant created before plans existed (no plan on its record)
    limits = RateLimits(lambda tenant: None, now=lambda: 0.0)
    # Then no number of requests at one instant is refused here
    for _ in range(10 * max(p.api_burst for p in PLANS.values())):
        limits.admit("legacy")


# ------------------------------------------------------------------ offboarding


@dataclass
class Profiles:
    known: dict[str, TenantProfile] = field(default_factory=dict)

    def profile(self, tenant: str) -> TenantProfile | None:
        return self.known.get(tenant)

    def mark_deleting(self, tenant: str, purge_after: datetime) -> None:
        self.known[tenant] = replace(
            self.known[tenant], state=TenantState.DELETING, purge_after=purge_after
        )


@dataclass
class Keys:
    live: dict[str, int] = field(default_factory=dict)

    def revoke_all(self, tenant: str, *, reason: str) -> int:
        return self.live.pop(tenant, 0)


@dataclass
class Store:
    """A store holding items per tenant; ``stuck`` items refuse to be deleted."""

    name: str
    items: dict[str, int] = field(default_factory=dict)
    stuck: int = 0

    def count(self, tenant: str) -> int:
        return self.items.get(tenant, 0)

    def purge(self, tenant: str) -> int:
        deleted = self.items.get(tenant, 0) - self.stuck
        self.items[tenant] = self.stuck
        return deleted


def _offboarding(*stores: Store) -> tuple[Offboarding, Profiles, Keys, FixedClock]:
    profiles = Profiles({t: TenantProfile(t) for t in ("a", "b")})
    keys = Keys({"a": 2, "b": 1})
    clock = FixedClock(datetime(2026, 11, 26, 12, tzinfo=UTC))
    service = Offboarding(tenants=profiles, keys=keys, stores=stores, clock=clock)
    return service, profiles, keys, clock


def test_deleting_starts_a_grace_period_and_revokes_the_keys_at_once() -> None:
    service, _, keys, clock = _offboarding(Store("s3", {"a": 3, "b": 4}))
    # When the operator deletes tenant a
    profile = service.start("a", grace=timedelta(days=30))
    # Then it is deleting until 30 days from now, its keys are revoked, b's are not
    assert profile.state is TenantState.DELETING
    assert profile.purge_after == clock.at + timedelta(days=30)
    assert keys.live == {"b": 1}
    # And a second call keeps the first purge date
    clock.at += timedelta(days=3)
    assert service.start("a", grace=timedelta(days=30)).purge_after == profile.purge_after


def test_a_purge_is_refused_before_the_grace_period_unless_forced() -> None:
    store = Store("s3", {"a": 3, "b": 4})
    service, _, _, clock = _offboarding(store)
    with pytest.raises(Conflict) as never_marked:
        service.purge("b")
    assert never_marked.value.code == "tenant_not_deleting"
    service.start("a", grace=timedelta(days=30))
    # When the operator purges a day early
    clock.at += timedelta(days=29)
    with pytest.raises(GracePeriodRunning):
        service.purge("a")
    # Then nothing was deleted; with the explicit override it goes ahead
    assert store.items == {"a": 3, "b": 4}
    assert service.purge("a", early=True).early is True
    assert store.items == {"a": 0, "b": 4}


def test_the_purge_report_counts_per_store_and_fails_when_anything_remains() -> None:
    clean, stuck = Store("ddb", {"a": 5, "b": 1}), Store("ssm", {"a": 2, "b": 2}, stuck=1)
    service, _, _, clock = _offboarding(clean, stuck)
    service.start("a", grace=timedelta(days=1))
    clock.at += timedelta(days=1)
    # When the purge runs after the grace period
    report = service.purge("a")
    # Then the report re-listed each store: found, deleted, remaining
    assert [(s.store, s.found, s.deleted, s.remaining) for s in report.stores] == [
        ("ddb", 5, 5, 0),
        ("ssm", 2, 1, 1),
    ]
    assert report.complete is False and report.as_dict()["complete"] is False
    # And the other tenant's items are all still there
    assert (clean.items["b"], stuck.items["b"]) == (1, 2)


def test_unknown_tenants_and_odd_grace_periods_are_refused() -> None:
    service, *_ = _offboarding()
    with pytest.raises(NotFound):
        service.start("nobody")
    with pytest.raises(ValidationFailed) as caught:
        service.start("a", grace=timedelta(days=-1))
    assert caught.value.field == "grace_days"
