"""``TenantRepository`` on the tenants table: policy, profile, plan, gallery version."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import PutError, UpdateError

from quitclaim.adapters.dynamo.plumbing import conditional_failed, dependency
from quitclaim.adapters.dynamo.tables import TenantModel
from quitclaim.domain.backlog import DEFAULT_BACKLOG_CONCURRENCY
from quitclaim.domain.errors import Conflict, NotFound
from quitclaim.domain.models import ScanMode, TenantPolicy
from quitclaim.domain.tenancy import DEFAULT_PLAN, TenantDeleting, TenantProfile, TenantState


def policy_from(item: TenantModel) -> TenantPolicy:
    modes = dict(item.scan_modes or {}) or {"*": ScanMode.RECOGNIZE.value}
    return TenantPolicy(
        tenant=item.tenant,
        match_threshold=float(item.match_threshold),
        match_margin=float(item.match_margin),
        min_face_px=int(item.min_face_px),
        default_purpose=item.default_purpose,
        purposes=frozenset(item.purposes or ()),
        scan_modes=tuple(sorted((k, ScanMode(v)) for k, v in modes.items())),
        unknown_face_policy=item.unknown_face_policy or "quarantine",
        language=item.language or "en",
        auto_redact=bool(item.auto_redact),
        publishing_purposes=frozenset(item.publishing_purposes or ()),
        backlog_concurrency=int(item.backlog_concurrency or DEFAULT_BACKLOG_CONCURRENCY),
        quarantine_retention_days=_int_or(item.quarantine_retention_days, 90),
        rejected_retention_days=_int_or(item.rejected_retention_days, 30),
        digest=item.digest or "weekly",
    )


def _int_or(value: Any, default: int) -> int:
    return default if value is None else int(value)


class DynamoTenants:
    """TenantRepository on the tenants table."""

    def _item(self, tenant: str) -> TenantModel | None:
        with dependency("tenant read"):
            try:
                return TenantModel.get(tenant, consistent_read=True)
            except TenantModel.DoesNotExist:
                return None

    def policy(self, tenant: str) -> TenantPolicy | None:
        item = self._item(tenant)
        return None if item is None else policy_from(item)

    def policy_and_gallery(self, tenant: str) -> tuple[TenantPolicy, int] | None:
        """Policy and gallery version; ``TenantDeleting`` once offboarding started."""
        item = self._item(tenant)
        if item is None:
            return None
        if item.state == TenantState.DELETING:
            # Nothing new is decided for a tenant on its way out (fail closed).
            raise TenantDeleting(f"tenant {tenant!r} is being deleted")
        return policy_from(item), int(item.gallery_version or 0)

    def profile(self, tenant: str) -> TenantProfile | None:
        item = self._item(tenant)
        if item is None:
            return None
        return TenantProfile(
            tenant=item.tenant,
            name=item.name or "",
            region=item.region or "",
            plan=item.plan or DEFAULT_PLAN,
            contact_email=item.contact_email or "",
            state=TenantState(item.state or TenantState.ACTIVE),
            purge_after=item.purge_after,
        )

    def plan_of(self, tenant: str) -> str | None:
        with dependency("tenant read"):
            try:
                item = TenantModel.get(tenant, attributes_to_get=["tenant", "plan"])
            except TenantModel.DoesNotExist:
                return None
        return item.plan  # None: created before plans (no profile)

    def mark_deleting(self, tenant: str, purge_after: datetime) -> None:
        """State ``deleting`` with its purge date (``NotFound`` for an unknown tenant)."""
        with dependency("tenant update"):
            try:
                TenantModel(tenant).update(
                    actions=[
                        TenantModel.state.set(TenantState.DELETING.value),
                        TenantModel.purge_after.set(purge_after),
                        TenantModel.updated_at.set(datetime.now(UTC)),
                    ],
                    condition=TenantModel.tenant.exists(),
                )
            except UpdateError as exc:
                if conditional_failed(exc):
                    raise NotFound(f"tenant {tenant!r} not found") from exc
                raise

    def set_plan(self, tenant: str, plan: str) -> None:
        """Move the tenant to ``plan`` (``NotFound`` for an unknown tenant)."""
        with dependency("tenant update"):
            try:
                TenantModel(tenant).update(
                    actions=[
                        TenantModel.plan.set(plan),
                        TenantModel.updated_at.set(datetime.now(UTC)),
                    ],
                    condition=TenantModel.tenant.exists(),
                )
            except UpdateError as exc:
                if conditional_failed(exc):
                    raise NotFound(f"tenant {tenant!r} not found") from exc
                raise

    def gallery_version(self, tenant: str) -> int:
        with dependency("tenant read"):
            try:
                return int(TenantModel.get(tenant, consistent_read=True).gallery_version or 0)
            except TenantModel.DoesNotExist:
                return 0

    def save_tenant(self, policy: TenantPolicy, profile: TenantProfile | None = None) -> None:
        now = datetime.now(UTC)
        extra: dict[str, Any] = {}
        if profile is not None:
            extra = {
                "name": profile.name or None,
                "region": profile.region or None,
                "plan": profile.plan,
                "contact_email": profile.contact_email or None,
                "state": profile.state.value,
            }
        with dependency("tenant write"):
            try:
                TenantModel(
                    policy.tenant,
                    gallery_version=0,
                    created_at=now,
                    updated_at=now,
                    **_policy_attributes(policy),
                    **extra,
                ).save(condition=TenantModel.tenant.does_not_exist())
            except PutError as exc:
                if conditional_failed(exc):
                    raise Conflict(f"tenant {policy.tenant!r} already exists") from exc
                raise

    def update_policy(self, policy: TenantPolicy) -> None:
        item = TenantModel(policy.tenant)
        attrs = _policy_attributes(policy)
        with dependency("tenant update"):
            item.update(
                actions=[
                    *(
                        getattr(TenantModel, name).set(value)
                        if value is not None
                        else getattr(TenantModel, name).remove()
                        for name, value in attrs.items()
                    ),
                    TenantModel.updated_at.set(datetime.now(UTC)),
                ],
                condition=TenantModel.tenant.exists(),
            )

    def pending_policy(self, tenant: str) -> dict[str, Any] | None:
        item = self._item(tenant)
        pending = item.pending_policy if item is not None else None
        return dict(pending) if pending else None

    def set_pending_policy(self, tenant: str, pending: dict[str, Any] | None) -> None:
        item = TenantModel(tenant)
        action = (
            TenantModel.pending_policy.set(pending)
            if pending is not None
            else TenantModel.pending_policy.remove()
        )
        with dependency("tenant update"):
            item.update(actions=[action], condition=TenantModel.tenant.exists())

    def bump_gallery_version(self, tenant: str) -> int:
        item = TenantModel(tenant)
        with dependency("gallery version update"):
            try:
                item.update(
                    actions=[TenantModel.gallery_version.add(1)],
                    condition=TenantModel.tenant.exists(),
                )
            except UpdateError as exc:
                if conditional_failed(exc):
                    raise NotFound(f"tenant {tenant!r} does not exist") from exc
                raise
        return int(item.gallery_version)


def _policy_attributes(policy: TenantPolicy) -> dict[str, Any]:
    return {
        "match_threshold": policy.match_threshold,
        "match_margin": policy.match_margin,
        "min_face_px": policy.min_face_px,
        "default_purpose": policy.default_purpose,
        "purposes": set(policy.purposes),
        "scan_modes": {k: v.value for k, v in policy.scan_modes},
        "unknown_face_policy": policy.unknown_face_policy,
        "language": policy.language,
        "auto_redact": policy.auto_redact,
        "publishing_purposes": set(policy.publishing_purposes) or None,
        "backlog_concurrency": policy.backlog_concurrency,
        "quarantine_retention_days": policy.quarantine_retention_days,
        "rejected_retention_days": policy.rejected_retention_days,
        "digest": policy.digest,
    }
