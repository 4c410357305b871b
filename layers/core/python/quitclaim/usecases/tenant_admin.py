"""Tenants and their policy: onboarding's record, policy changes under four eyes."""

from __future__ import annotations

from collections.abc import Mapping
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
    allowed = {
        "match_threshold",
        "match_margin",
        "min_face_px",
        "default_purpose",
        "purposes",
        "scan_modes",
        "unknown_face_policy",
        "language",
        "auto_redact",
        "publishing_purposes",
        "backlog_concurrency",
        *RETENTION_FIELDS,
    }
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationFailed(f"unknown policy fields {sorted(unknown)}", field=sorted(unknown)[0])
    out: dict[str, Any] = {}
    if "match_threshold" in changes:
        value = float(changes["match_threshold"])
        if not 0.2 <= value <= 0.6:
            raise ValidationFailed("match_threshold must be in [0.2, 0.6]", field="match_threshold")
        out["match_threshold"] = value
    if "match_margin" in changes:
        value = float(changes["match_margin"])
        if not 0.0 <= value <= 0.3:
            raise ValidationFailed("match_margin must be in [0, 0.3]", field="match_margin")
        out["match_margin"] = value
    if "min_face_px" in changes:
        px = int(changes["min_face_px"])
        if not 20 <= px <= 400:
            raise ValidationFailed("min_face_px must be in [20, 400]", field="min_face_px")
        out["min_face_px"] = px
    purposes = current.purposes
    if "purposes" in changes:
        purposes = frozenset(str(p).strip().lower() for p in changes["purposes"])
        if not purposes or not all(PURPOSE.fullmatch(p) for p in purposes):
            raise ValidationFailed(
                "purposes must be 1+ short lowercase names (a-z, 0-9, -)", field="purposes"
            )
        out["purposes"] = purposes
    default = str(changes.get("default_purpose", current.default_purpose)).strip().lower()
    if default not in purposes:
        raise ValidationFailed("default_purpose must be one of purposes", field="default_purpose")
    out["default_purpose"] = default
    if "scan_modes" in changes:
        modes = dict(changes["scan_modes"])
        valid = {m.value for m in ScanMode}
        for collection, mode in modes.items():
            if mode not in valid:
                raise ValidationFailed(
                    f"scan mode for {collection!r} must be one of {sorted(valid)}",
                    field="scan_modes",
                )
        modes.setdefault("*", ScanMode.RECOGNIZE.value)
        out["scan_modes"] = tuple(sorted((k, ScanMode(v)) for k, v in modes.items()))
    if "unknown_face_policy" in changes:
        policy = str(changes["unknown_face_policy"])
        if policy not in ("quarantine", "review"):
            raise ValidationFailed(
                "unknown_face_policy must be quarantine or review", field="unknown_face_policy"
            )
        out["unknown_face_policy"] = policy
    if "language" in changes:
        language = str(changes["language"])
        if language not in ("en", "nl"):
            raise ValidationFailed("language must be en or nl", field="language")
        out["language"] = language
    if "auto_redact" in changes:
        if not isinstance(changes["auto_redact"], bool):
            raise ValidationFailed("auto_redact must be true or false", field="auto_redact")
        out["auto_redact"] = changes["auto_redact"]
    publishing = current.publishing_purposes
    if "publishing_purposes" in changes:
        publishing = frozenset(str(p).strip().lower() for p in changes["publishing_purposes"])
        out["publishing_purposes"] = publishing
    if not publishing <= purposes:
        raise ValidationFailed(
            "publishing_purposes must be among purposes", field="publishing_purposes"
        )
    if "backlog_concurrency" in changes:
        value = changes["backlog_concurrency"]
        if type(value) is not int or not 1 <= value <= BACKLOG_CONCURRENCY_MAX:
            raise ValidationFailed(
                f"backlog_concurrency must be 1-{BACKLOG_CONCURRENCY_MAX}",
                field="backlog_concurrency",
            )
        out["backlog_concurrency"] = value
    out.update(retention_changes(changes))
    return out
