"""Offboarding a tenant: a grace period, then erase everything and prove it.

``start`` marks the tenant ``deleting`` (its keys stop working at once and no
new upload is scanned; uploads stay where they are). ``purge``, after the
grace period, empties every store of the tenant and then re-lists each one:
the report says, per store, how much was found, deleted and what remains.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from quitclaim.domain.errors import Conflict, NotFound, ValidationFailed
from quitclaim.domain.ports import Clock, KeyRevocation, TenantDataStore, TenantProfiles
from quitclaim.domain.tenancy import (
    DEFAULT_GRACE,
    TenantDeleting,
    TenantProfile,
    TenantState,
    purge_due,
)
from quitclaim.observability import audit

MAX_GRACE = timedelta(days=365)


class GracePeriodRunning(Conflict):
    """A purge before the tenant's ``purge_after`` (the operator may override it)."""

    code = "grace_period_running"


@dataclass(frozen=True, slots=True)
class StoreReport:
    store: str
    found: int
    deleted: int
    remaining: int


@dataclass(frozen=True, slots=True)
class PurgeReport:
    tenant: str
    purged_at: datetime
    stores: tuple[StoreReport, ...]
    early: bool = False

    @property
    def complete(self) -> bool:
        return all(s.remaining == 0 for s in self.stores)

    def as_dict(self) -> dict[str, object]:
        return {
            "tenant": self.tenant,
            "purged_at": self.purged_at.isoformat(),
            "early": self.early,
            "complete": self.complete,
            "stores": [
                {
                    "store": s.store,
                    "found": s.found,
                    "deleted": s.deleted,
                    "remaining": s.remaining,
                }
                for s in self.stores
            ],
        }


class Offboarding:
    """Mark a tenant for deletion, and later purge it everywhere (built in bootstrap)."""

    def __init__(
        self,
        *,
        tenants: TenantProfiles,
        keys: KeyRevocation,
        stores: Sequence[TenantDataStore],
        clock: Clock,
    ) -> None:
        self._tenants = tenants
        self._keys = keys
        self._stores = tuple(stores)
        self._clock = clock

    @property
    def store_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self._stores)

    def start(
        self, tenant: str, *, grace: timedelta = DEFAULT_GRACE, actor: str = "operator"
    ) -> TenantProfile:
        """Mark ``tenant`` deleting, revoke its keys; a second call keeps the first date."""
        if not timedelta(0) <= grace <= MAX_GRACE:
            raise ValidationFailed("grace must be 0-365 days", field="grace_days")
        profile = self._profile(tenant)
        if profile.state is not TenantState.DELETING:
            purge_after = self._clock.now() + grace
            self._tenants.mark_deleting(tenant, purge_after)
            audit(
                "tenant.deleting",
                tenant=tenant,
                source=actor,
                purge_after=purge_after.isoformat(),
            )
        # Again on a repeat call: a key issued in between must not survive.
        self._keys.revoke_all(tenant, reason=TenantDeleting.code)
        return self._profile(tenant)

    def purge(self, tenant: str, *, early: bool = False, actor: str = "operator") -> PurgeReport:
        """Erase every store of ``tenant`` and verify by re-listing each one.

        Refused before ``purge_after`` unless ``early`` (the operator's explicit
        override), and refused for a tenant that was never marked ``deleting``.
        """
        now = self._clock.now()
        profile = self._tenants.profile(tenant)
        if profile is not None:
            if profile.state is not TenantState.DELETING:
                raise Conflict(
                    f"tenant {tenant!r} is not marked for deletion; "
                    "run `quitclaim tenants delete` without --purge first",
                    code="tenant_not_deleting",
                )
            if not early and not purge_due(profile, now):
                due = profile.purge_after.isoformat() if profile.purge_after else "unknown"
                raise GracePeriodRunning(
                    f"the grace period of {tenant!r} runs until {due}; "
                    "purge then, or pass --now --yes-delete-everything"
                )
        # profile None: an earlier purge deleted the record and was cut off
        # (or left data): purging again finishes it, the report proves it.
        reports = []
        for store in self._stores:
            found = store.count(tenant)
            deleted = store.purge(tenant) if found else 0
            reports.append(StoreReport(store.name, found, deleted, store.count(tenant)))
        report = PurgeReport(tenant, now, tuple(reports), early=early)
        audit(
            "tenant.purged",
            tenant=tenant,
            source=actor,
            complete=report.complete,
            early=early,
            stores={r.store: r.remaining for r in reports},
        )
        return report

    def _profile(self, tenant: str) -> TenantProfile:
        found = self._tenants.profile(tenant)
        if found is None:
            raise NotFound(f"tenant {tenant!r} not found")
        return found
