"""API keys: expiry, list, revoke, rotate and the digest's expiring keys (in memory)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from quitclaim.domain.errors import NotFound, Unauthorized, ValidationFailed
from quitclaim.domain.registry import ApiKeyInfo, Principal, Role
from quitclaim.usecases.digest import Digest, DigestReport, render
from quitclaim.usecases.keys import MAX_KEY_DAYS, ApiKeys

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


class MemoryKeys:
    """ApiKeyRepository in memory: by (tenant, hash)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], ApiKeyInfo] = {}
        self.reasons: dict[str, str] = {}

    def put(
        self,
        tenant: str,
        key_hash: str,
        key_id: str,
        role: Role,
        label: str,
        person: str = "",
        expires_at: datetime | None = None,
    ) -> None:
        self.rows[(tenant, key_hash)] = ApiKeyInfo(
            tenant, key_id, role, label, person, NOW, expires_at
        )

    def find(self, tenant: str, key_hash: str) -> tuple[str, Role, str, str] | None:
        raise AssertionError("resolve reads info(), which sees revoked and expired keys")

    def info(self, tenant: str, key_hash: str) -> ApiKeyInfo | None:
        return self.rows.get((tenant, key_hash))

    def keys(self, tenant: str) -> list[ApiKeyInfo]:
        return [k for (t, _), k in self.rows.items() if t == tenant]

    def revoke(self, tenant: str, key_id: str, *, reason: str) -> ApiKeyInfo | None:
        for at, k in self.rows.items():
            if at[0] == tenant and k.key_id == key_id:
                if k.revoked_at is None:
                    self.rows[at] = replace(k, revoked_at=NOW)
                    self.reasons[key_id] = reason
                return self.rows[at]
        return None


class Clock:
    def __init__(self) -> None:
        self.at = NOW

    def __call__(self) -> datetime:
        return self.at

    def now(self) -> datetime:
        return self.at


@pytest.fixture
def world() -> tuple[ApiKeys, MemoryKeys, Clock]:
    repo, clock = MemoryKeys(), Clock()
    return ApiKeys(repo, clock), repo, clock


def _admin() -> Principal:
    return Principal("t1", "key_admin", Role.ADMIN, "admin", "ada")


def test_a_key_expires_after_a_year_by_default_and_is_refused_from_then_on(world: Any) -> None:
    keys, _, clock = world
    # Given a key issued with no lifetime
    issued = keys.issue("t1", Role.REVIEWER, "night shift", "dana")
    assert issued.expires_at == NOW + timedelta(days=365)
    assert keys.resolve(issued.secret).person == "dana"
    # When its expiry passes / Then its next request is 401, saying why
    clock.at = issued.expires_at
    with pytest.raises(Unauthorized, match="expired"):
        keys.resolve(issued.secret)


@pytest.mark.parametrize("days", [0, MAX_KEY_DAYS + 1])
def test_a_lifetime_outside_the_bounds_is_refused_naming_the_field(world: Any, days: int) -> None:
    keys, repo, _ = world
    with pytest.raises(ValidationFailed) as refused:
        keys.issue("t1", Role.REVIEWER, "x", "dana", valid_days=days)
    assert refused.value.field == "valid_days" and not repo.rows


def test_a_revoked_key_is_refused_and_listed_as_revoked(world: Any) -> None:
    keys, repo, _ = world
    issued = keys.issue("t1", Role.REVIEWER, "night shift", "dana", valid_days=30)
    # When an admin revokes it
    revoked = keys.revoke(_admin(), issued.key_id)
    # Then it is refused on the next request, and the listing says so without secrets
    assert revoked.status == "revoked" and repo.reasons[issued.key_id] == "revoked"
    with pytest.raises(Unauthorized):
        keys.resolve(issued.secret)
    (listed,) = keys.list_keys("t1")
    assert (listed.key_id, listed.status, listed.person) == (issued.key_id, "revoked", "dana")
    assert issued.secret not in repr(listed)


def test_revoking_an_unknown_or_another_tenants_key_is_404(world: Any) -> None:
    keys, _, _ = world
    other = keys.issue("t2", Role.ADMIN, "theirs", "bob")
    with pytest.raises(NotFound):
        keys.revoke(_admin(), other.key_id)
    assert keys.resolve(other.secret).tenant == "t2"


def test_rotation_keeps_name_role_and_person_and_revokes_the_old_key(world: Any) -> None:
    keys, repo, _ = world
    old = keys.issue("t1", Role.REVIEWER, "night shift", "dana")
    # When an admin rotates it
    new = keys.rotate(_admin(), old.key_id, valid_days=90)
    # Then the new secret works as the same person; the old one is refused
    assert (new.label, new.role, new.person) == ("night shift", Role.REVIEWER, "dana")
    assert new.key_id != old.key_id and new.expires_at == NOW + timedelta(days=90)
    assert keys.resolve(new.secret).person == "dana"
    with pytest.raises(Unauthorized):
        keys.resolve(old.secret)
    assert repo.reasons[old.key_id] == "rotated"
    # And a revoked key cannot be rotated back to life
    with pytest.raises(ValidationFailed):
        keys.rotate(_admin(), old.key_id)


def test_statuses_in_the_listing(world: Any) -> None:
    keys, _, clock = world
    short = keys.issue("t1", Role.DPO, "dpo", "dee", valid_days=1)
    long = keys.issue("t1", Role.AUDITOR, "audit", "aud", valid_days=400)
    clock.at = NOW + timedelta(days=2)
    statuses = {k.key_id: k.status for k in keys.list_keys("t1")}
    assert statuses == {short.key_id: "expired", long.key_id: "active"}


def test_the_digest_lists_live_keys_expiring_within_30_days(world: Any) -> None:
    keys, repo, clock = world
    soon = keys.issue("t1", Role.REVIEWER, "soon", "dana", valid_days=20)
    keys.issue("t1", Role.REVIEWER, "later", "dana", valid_days=60)
    gone = keys.issue("t1", Role.REVIEWER, "gone", "dana", valid_days=10)
    keys.revoke(_admin(), gone.key_id)
    digest = Digest(
        directory=cast(Any, None),
        assets=cast(Any, None),
        subjects=cast(Any, None),
        expiries=cast(Any, None),
        mailer=cast(Any, None),
        clock=cast(Any, clock),
        keys=repo,
    )
    # When the digest's key section is built
    rows = digest._expiring_keys("t1", NOW)
    # Then only the live key expiring within 30 days is listed, with id and role only
    assert rows == ((soon.key_id, "reviewer", soon.expires_at),)
    mail = render(DigestReport("t1", NOW, NOW, expiring_keys=rows), "dpo@example.org")
    assert "API keys expiring in the next 30 days: 1" in mail.text
    assert f"key {soon.key_id} (reviewer), expires 2026-06-21" in mail.text
    assert "dana" not in mail.text and "soon" not in mail.text
