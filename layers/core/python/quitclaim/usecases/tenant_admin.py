"""Tenants and their policy: onboarding's record, policy changes under four eyes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from quitclaim.domain.backlog import BACKLOG_CONCURRENCY_MAX
from quitclaim.domain.errors import ValidationFailed
from quitclaim.domain.four_eyes import (
    PolicyUpdate,
    confirm,
    loosened,
    person_of,
    policy_target,
    requested_by,
)
from quitclaim.domain.models import ScanMode, TenantPolicy, is_tenant_id
from quitclaim.domain.registry import Principal
from quitclaim.domain.retention import RETENTION_FIELDS, retention_changes
from quitclaim.domain.tenancy import TenantProfile
from quitclaim.observability import audit
from quitclaim.usecases.ledger import PURPOSE, Ledger


@dataclass
class TenantAdmin(Ledger):
    """A tenant's record and policy (changes that loosen the gate need two people)."""

    def create_tenant(
        self, policy: TenantPolicy, profile: TenantProfile | None = None
    ) -> TenantPolicy:
        """Register a tenant with its policy (ids: lowercase letters, digits, dashes)."""
        if not is_tenant_id(policy.tenant):
            raise ValidationFailed(
                "tenant id must be 1-63 lowercase letters, digits or dashes", field="tenant"
            )
        if profile is None:
            self.tenants.save_tenant(policy)
        else:
            self.tenants.save_tenant(policy, profile)
        audit(
            "tenant.created",
            tenant=policy.tenant,
            source="registry",
            plan=profile.plan if profile else None,
            region=profile.region if profile else None,
        )
        return policy

    def update_policy(
        self, tenant: str, changes: Mapping[str, Any], *, who: Principal
    ) -> PolicyUpdate:
        """Validate and store policy changes; they apply to new uploads only.

        Four eyes (domain/four_eyes.py): a change that loosens the gate is kept
        as a request; it applies when a second, different person sends a
        change giving the same policy. Any other change applies at once.
        """
        current = self.policy(tenant)
        updated = replace(current, **_policy_changes(current, changes))
        loosens = loosened(current, updated)
        if loosens:
            return self._two_person_change(tenant, current, updated, dict(changes), loosens, who)
        self.tenants.update_policy(updated)
        audit(
            "policy.updated",
            tenant=tenant,
            policy=sorted(changes),
            source=who.key_id,
            people=[person_of(who)],
        )
        return PolicyUpdate(updated)

    def adopt_accuracy_advice(
        self, tenant: str, advice: Mapping[str, Any], *, who: Principal
    ) -> PolicyUpdate:
        """Adopt an accuracy audit's threshold advice: always two people, audited.

        Unlike ``update_policy`` a tightening waits for a second person too: the
        advice rests on the organisation's own labelled photos, so a second
        administrator confirms it (docs/accuracy-audit.md). The first call keeps
        the request; a second, different person's call with the same advice applies it.
        """
        if advice.get("status") != "ok" or not isinstance(advice.get("policy_change"), Mapping):
            raise ValidationFailed("the audit gave no threshold advice to adopt", field="advice")
        changes = {
            k: advice["policy_change"][k]
            for k in ("match_threshold", "match_margin")
            if k in advice["policy_change"]
        }
        current = self.policy(tenant)
        updated = replace(current, **_policy_changes(current, changes))
        loosens = loosened(current, updated) or ["accuracy_advice"]
        return self._two_person_change(
            tenant, current, updated, changes, loosens, who, reason="accuracy_advice"
        )

    def _two_person_change(
        self,
        tenant: str,
        current: TenantPolicy,
        updated: TenantPolicy,
        changes: dict[str, Any],
        loosens: list[str],
        who: Principal,
        **why: str,
    ) -> PolicyUpdate:
        """Keep the change as a request, or apply it when a second person asks the same."""
        target = policy_target(updated)
        pending = self.tenants.pending_policy(tenant)
        if pending is None or pending.get("target") != target:
            request = requested_by(
                who,
                self.clock.now().isoformat(),
                changes=changes,
                loosens=loosens,
                target=target,
            )
            self.tenants.set_pending_policy(tenant, request)
            audit(
                "policy.change_requested",
                tenant=tenant,
                policy=sorted(changes),
                source=who.key_id,
                people=[person_of(who)],
                **why,
            )
            return PolicyUpdate(current, _shown(request))
        people = confirm(pending, who, "policy change")
        self.tenants.update_policy(updated)
        self.tenants.set_pending_policy(tenant, None)
        audit(
            "policy.updated",
            tenant=tenant,
            policy=sorted(changes),
            source=who.key_id,
            requested_by=pending["by"],
            people=people,
            **why,
        )
        return PolicyUpdate(updated)

    def pending_policy(self, tenant: str) -> dict[str, Any] | None:
        """The loosening policy change waiting for a second administrator, if any."""
        self.policy(tenant)
        pending = self.tenants.pending_policy(tenant)
        return _shown(pending) if pending else None


def _shown(pending: Mapping[str, Any]) -> dict[str, Any]:
    """A pending policy change as clients see it (the target stays inside)."""
    return {k: v for k, v in pending.items() if k != "target"}


def _policy_changes(current: TenantPolicy, changes: Mapping[str, Any]) -> dict[str, Any]:
    """The validated field values of ``changes`` (each ``ValidationFailed`` names its field)."""
    unknown = set(changes) - _POLICY_FIELDS
    if unknown:
        raise ValidationFailed(f"unknown policy fields {sorted(unknown)}", field=sorted(unknown)[0])
    out: dict[str, Any] = {}
    for name, check in _FIELD_CHECKS.items():
        if name in changes:
            out[name] = check(changes[name])
        # The cross-field rules run where they always did, so the first error stays the same.
        if name == "purposes":
            out["default_purpose"] = _default_purpose(current, changes, out)
        elif name == "publishing_purposes":
            _check_publishing(current, out)
    out.update(retention_changes(changes))
    return out


def _default_purpose(
    current: TenantPolicy, changes: Mapping[str, Any], out: Mapping[str, Any]
) -> str:
    default = str(changes.get("default_purpose", current.default_purpose)).strip().lower()
    if default not in out.get("purposes", current.purposes):
        raise ValidationFailed("default_purpose must be one of purposes", field="default_purpose")
    return default


def _check_publishing(current: TenantPolicy, out: Mapping[str, Any]) -> None:
    publishing = out.get("publishing_purposes", current.publishing_purposes)
    if not publishing <= out.get("purposes", current.purposes):
        raise ValidationFailed(
            "publishing_purposes must be among purposes", field="publishing_purposes"
        )


def _in_range(name: str, low: float, high: float, shown: str) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        number = float(value)
        if not low <= number <= high:
            raise ValidationFailed(f"{name} must be in {shown}", field=name)
        return number

    return check


def _min_face_px(value: Any) -> int:
    px = int(value)
    if not 20 <= px <= 400:
        raise ValidationFailed("min_face_px must be in [20, 400]", field="min_face_px")
    return px


def _purposes(value: Any) -> frozenset[str]:
    purposes = frozenset(str(p).strip().lower() for p in value)
    if not purposes or not all(PURPOSE.fullmatch(p) for p in purposes):
        raise ValidationFailed(
            "purposes must be 1+ short lowercase names (a-z, 0-9, -)", field="purposes"
        )
    return purposes


def _scan_modes(value: Any) -> tuple[tuple[str, ScanMode], ...]:
    modes = dict(value)
    valid = {m.value for m in ScanMode}
    for collection, mode in modes.items():
        if mode not in valid:
            raise ValidationFailed(
                f"scan mode for {collection!r} must be one of {sorted(valid)}",
                field="scan_modes",
            )
    modes.setdefault("*", ScanMode.RECOGNIZE.value)
    return tuple(sorted((k, ScanMode(v)) for k, v in modes.items()))


def _one_of(name: str, allowed: tuple[str, ...], message: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        text = str(value)
        if text not in allowed:
            raise ValidationFailed(message, field=name)
        return text

    return check


def _auto_redact(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValidationFailed("auto_redact must be true or false", field="auto_redact")
    return value


def _publishing_purposes(value: Any) -> frozenset[str]:
    return frozenset(str(p).strip().lower() for p in value)


def _backlog_concurrency(value: Any) -> int:
    if type(value) is not int or not 1 <= value <= BACKLOG_CONCURRENCY_MAX:
        raise ValidationFailed(
            f"backlog_concurrency must be 1-{BACKLOG_CONCURRENCY_MAX}",
            field="backlog_concurrency",
        )
    return value


# Each settable field's check, in the order the errors were always reported.
_FIELD_CHECKS: dict[str, Callable[[Any], Any]] = {
    "match_threshold": _in_range("match_threshold", 0.2, 0.6, "[0.2, 0.6]"),
    "match_margin": _in_range("match_margin", 0.0, 0.3, "[0, 0.3]"),
    "min_face_px": _min_face_px,
    "purposes": _purposes,
    "scan_modes": _scan_modes,
    "unknown_face_policy": _one_of(
        "unknown_face_policy",
        ("quarantine", "review"),
        "unknown_face_policy must be quarantine or review",
    ),
    "language": _one_of("language", ("en", "nl"), "language must be en or nl"),
    "auto_redact": _auto_redact,
    "publishing_purposes": _publishing_purposes,
    "backlog_concurrency": _backlog_concurrency,
}
_POLICY_FIELDS = frozenset({*_FIELD_CHECKS, "default_purpose", *RETENTION_FIELDS})
