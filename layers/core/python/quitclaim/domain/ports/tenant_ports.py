"""Tenants: policy and profile, API keys, the places a tenant's data lives."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from quitclaim.domain.models import TenantPolicy
from quitclaim.domain.registry import ApiKeyInfo, Role
from quitclaim.domain.tenancy import TenantProfile


class TenantRepository(Protocol):
    def policy(self, tenant: str) -> TenantPolicy | None:
        """The tenant's policy, or None when the tenant does not exist."""
        ...

    def gallery_version(self, tenant: str) -> int: ...

    def policy_and_gallery(self, tenant: str) -> tuple[TenantPolicy, int] | None:
        """Policy and gallery version in one read (the per-image hot path)."""
        ...

    def save_tenant(self, policy: TenantPolicy, profile: TenantProfile | None = None) -> None: ...

    def bump_gallery_version(self, tenant: str) -> int: ...

    def update_policy(self, policy: TenantPolicy) -> None: ...

    def pending_policy(self, tenant: str) -> dict[str, Any] | None:
        """The policy change waiting for a second administrator, if any."""
        ...

    def set_pending_policy(self, tenant: str, pending: dict[str, Any] | None) -> None:
        """Keep (or, with None, drop) the pending policy change."""
        ...


class TenantProfiles(Protocol):
    """The operator's view of tenants (onboarding and offboarding)."""

    def profile(self, tenant: str) -> TenantProfile | None: ...

    def mark_deleting(self, tenant: str, purge_after: datetime) -> None: ...


class KeyRevocation(Protocol):
    def revoke_all(self, tenant: str, *, reason: str) -> int:
        """Revoke every live key of the tenant; how many were live."""
        ...


class TenantDataStore(Protocol):
    """One place a tenant's data lives (a bucket prefix, a table, a schedule group).

    ``count`` re-lists the store (never a cached number): offboarding trusts
    it to prove that nothing of the tenant remains.
    """

    name: str

    def count(self, tenant: str) -> int: ...

    def purge(self, tenant: str) -> int:
        """Delete everything of ``tenant`` here; how many items were deleted."""
        ...


class ApiKeyRepository(Protocol):
    def put(
        self,
        tenant: str,
        key_hash: str,
        key_id: str,
        role: Role,
        label: str,
        person: str = "",
        expires_at: datetime | None = None,
    ) -> None: ...

    def find(self, tenant: str, key_hash: str) -> tuple[str, Role, str, str] | None:
        """(key_id, role, label, person) of a live key with this hash, or None.

        ``person`` is "" for a key issued without one.
        """
        ...

    def info(self, tenant: str, key_hash: str) -> ApiKeyInfo | None:
        """The key with this hash, live or not (``Unauthorized`` for a deleting tenant)."""
        ...

    def keys(self, tenant: str) -> list[ApiKeyInfo]:
        """Every key of ``tenant``, revoked and expired ones included."""
        ...

    def revoke(self, tenant: str, key_id: str, *, reason: str) -> ApiKeyInfo | None:
        """Revoke the key now (idempotent); None when ``tenant`` has no such key."""
        ...


class TenantDirectory(Protocol):
    def tenants(self) -> list[tuple[TenantPolicy, str]]:
        """(policy, contact e-mail or "") of every active tenant: one read per daily job."""
        ...


class KeyListing(Protocol):
    def keys(self, tenant: str) -> list[ApiKeyInfo]:
        """Every API key of ``tenant`` (revoked and expired ones included)."""
        ...


class PlanStore(Protocol):
    def set_plan(self, tenant: str, plan: str) -> None:
        """Store the tenant's plan (``NotFound`` for an unknown tenant)."""
        ...
