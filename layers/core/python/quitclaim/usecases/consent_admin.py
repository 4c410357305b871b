"""Consents: grant, renew, withdraw and read a subject's signed quitclaims.

Every consent change re-decides the subject's assets (``Recheck``) before it
returns, so a withdrawal has taken the images out of the library by the time
the caller hears "done".
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from quitclaim.domain.errors import (
    Conflict,
    DependencyFailed,
    NotFound,
    ValidationFailed,
)
from quitclaim.domain.models import Consent, TenantPolicy
from quitclaim.domain.registry import (
    ConsentEvent,
    ConsentView,
    Evidence,
    Subject,
)
from quitclaim.observability import audit, count, logger
from quitclaim.usecases.admin_requests import ConsentGrant, ConsentRenewal
from quitclaim.usecases.ledger import AGE_OF_CONSENT, DOCUMENT_TYPES, Ledger, consent_status, new_id


@dataclass
class ConsentAdmin(Ledger):
    """A subject's consents, their evidence and expiry schedules."""

    def grant_consent(
        self,
        tenant: str,
        subject_id: str,
        purposes: Iterable[str],
        valid_from: datetime,
        expires_at: datetime | None,
        *,
        source: str = "registry",
        consent_id: str | None = None,
        actor: str = "system",
        notify: bool = True,
        age_of_consent: int = AGE_OF_CONSENT,
        **evidence: Any,
    ) -> Consent:
        """``grant`` for callers holding the fields (``ConsentGrant``'s keyword names)."""
        request = ConsentGrant(tuple(purposes), valid_from, expires_at, **evidence)
        return self.grant(
            tenant,
            subject_id,
            request,
            source=source,
            consent_id=consent_id,
            actor=actor,
            notify=notify,
            age_of_consent=age_of_consent,
        )

    def grant(
        self,
        tenant: str,
        subject_id: str,
        request: ConsentGrant,
        *,
        source: str = "registry",
        consent_id: str | None = None,
        actor: str = "system",
        notify: bool = True,
        age_of_consent: int = AGE_OF_CONSENT,
    ) -> Consent:
        """Record a signed quitclaim for the given purposes and window.

        ``notify``: e-mail the person a confirmation with a standing withdrawal
        link (a bulk import passes False unless it asks for the mails).

        ``consent_id``: a caller that may repeat the same grant (a webhook
        redelivered) passes a stable id; the repeat then raises ``Conflict``
        (code ``exists``) instead of recording a second consent.
        """
        valid_from, expires_at = request.valid_from, request.expires_at
        wanted = _allowed_purposes(self.policy(tenant), request.purposes)
        _check_window(valid_from, expires_at)
        signer = _signer(
            self.subject(tenant, subject_id), request.signer, valid_from, age_of_consent
        )
        consent = Consent(
            tenant=tenant,
            subject_id=subject_id,
            consent_id=consent_id or new_id("con"),
            purposes=wanted,
            valid_from=valid_from,
            expires_at=expires_at,
        )
        evidence = Evidence(
            signer=signer,
            form_version=request.form_version,
            source=source,
            document_url=request.document_url,
            biometric_consent=request.biometric_consent,
        )
        if request.document is not None:
            evidence = self._store_document(
                consent, request.document, request.document_type, evidence
            )
        self.consents.save(consent, source=source, evidence=evidence, actor=actor)
        self._schedule(consent)
        audit(
            "consent.granted",
            tenant=tenant,
            subject_id=subject_id,
            consent_id=consent.consent_id,
            source=source,
        )
        self._recheck(tenant, subject_id, actor)
        if notify and self.notices is not None:
            self.notices.granted(consent)
        return consent

    def renew_consent(
        self,
        tenant: str,
        subject_id: str,
        consent_id: str,
        expires_at: datetime | None,
        *,
        valid_from: datetime | None = None,
        source: str = "registry",
        actor: str = "system",
        expected_version: int | None = None,
    ) -> Consent:
        """A new validity window for the same consent; withdrawn ones need a new grant.

        ``expected_version``: renew only that version of the consent (a
        renewal link works once); another is a ``Conflict``, and so is a
        concurrent change (the write is conditional on the version read).
        """
        consent = self._consent(tenant, subject_id, consent_id)
        if expected_version is not None and consent.version != expected_version:
            raise Conflict("the consent changed meanwhile; read it again")
        if consent.revoked_at is not None:
            raise Conflict("a withdrawn consent cannot be renewed; grant a new one", code="revoked")
        start = valid_from or consent.valid_from
        _check_window(start, expires_at)
        renewed = replace(consent, valid_from=start, expires_at=expires_at)
        result = self._change(consent, renewed, "renewed", source, actor)
        self._schedule(result)
        self._recheck(tenant, subject_id, actor)
        if self.notices is not None:
            self.notices.changed(result, "renewed")
        return result

    def revoke_consent(
        self,
        tenant: str,
        subject_id: str,
        consent_id: str,
        *,
        source: str = "registry",
        actor: str = "system",
    ) -> Consent:
        """Withdraw a consent now; the record of the withdrawal is kept."""
        consent = self._consent(tenant, subject_id, consent_id)
        if consent.revoked_at is not None:
            return consent
        revoked = self._change(
            consent, replace(consent, revoked_at=self.clock.now()), "revoked", source, actor
        )
        self._unschedule(revoked)
        self._recheck(tenant, subject_id, actor)
        if self.notices is not None:
            self.notices.changed(revoked, "revoked")
        return revoked

    def renew(
        self, tenant: str, subject_id: str, consent_id: str, request: ConsentRenewal, **how: Any
    ) -> Consent:
        """``renew_consent`` with the new window as one request (``source``, ``actor``)."""
        return self.renew_consent(
            tenant,
            subject_id,
            consent_id,
            request.expires_at,
            valid_from=request.valid_from,
            **how,
        )

    def subject_consent(self, tenant: str, subject_id: str, consent_id: str) -> ConsentView:
        """One consent of a subject that exists (``NotFound`` for either)."""
        self.subject(tenant, subject_id)
        return self.consent_view(tenant, subject_id, consent_id)

    def subject_document(self, tenant: str, subject_id: str, consent_id: str) -> tuple[bytes, str]:
        """The signed document of a subject that exists: bytes and content type."""
        self.subject(tenant, subject_id)
        return self.consent_document(tenant, subject_id, consent_id)

    def consent_views(self, tenant: str, subject_id: str) -> list[ConsentView]:
        self.subject(tenant, subject_id)
        now = self.clock.now()
        return [
            _view(c, e, h, now)
            for c, e, h in sorted(
                self.consents.details(tenant, subject_id), key=lambda d: d[0].valid_from
            )
        ]

    def consent_view(self, tenant: str, subject_id: str, consent_id: str) -> ConsentView:
        found = self.consents.get_details(tenant, subject_id, consent_id)
        if found is None:
            raise NotFound(f"consent {consent_id} not found")
        return _view(*found, self.clock.now())

    def consent_document(self, tenant: str, subject_id: str, consent_id: str) -> tuple[bytes, str]:
        view = self.consent_view(tenant, subject_id, consent_id)
        evidence = view.evidence
        if evidence is None or not evidence.document_key or self.documents is None:
            raise NotFound("this consent has no document")
        data = self.documents.read(self.documents_bucket, evidence.document_key)
        return data, evidence.document_type or "application/octet-stream"

    # -- internals ------------------------------------------------------------
    def _consent(self, tenant: str, subject_id: str, consent_id: str) -> Consent:
        consent = self.consents.get(tenant, subject_id, consent_id)
        if consent is None:
            raise NotFound(f"consent {consent_id} not found")
        return consent

    def _change(
        self, before: Consent, after: Consent, event: str, source: str, actor: str
    ) -> Consent:
        detail: dict[str, Any] = {}
        if event == "renewed":
            detail = {
                "valid_from": after.valid_from.isoformat(),
                "expires_at": after.expires_at.isoformat() if after.expires_at else None,
            }
        changed = self.consents.change(
            before, after, ConsentEvent(self.clock.now(), event, source, actor, detail)
        )
        audit(
            f"consent.{event}",
            tenant=before.tenant,
            subject_id=before.subject_id,
            consent_id=before.consent_id,
            source=source,
        )
        return changed

    def _schedule(self, consent: Consent) -> None:
        # A failed schedule is not fatal: the hourly sweep expires it anyway.
        if self.schedules is None:
            return
        try:
            self.schedules.schedule(consent)
        except DependencyFailed:
            logger.error("expiry schedule not created", consent_id=consent.consent_id)
            count("ExpiryScheduleFailed")

    def _unschedule(self, consent: Consent) -> None:
        if self.schedules is None:
            return
        try:
            self.schedules.cancel(consent)
        except DependencyFailed:
            # A leftover schedule fires, finds the consent withdrawn, does nothing.
            logger.warning("expiry schedule not removed", consent_id=consent.consent_id)
            count("ExpiryScheduleCancelFailed")

    def _recheck(self, tenant: str, subject_id: str, actor: str) -> None:
        if self.recheck is not None:
            self.recheck.recheck_subject(tenant, subject_id, actor=actor)

    def _store_document(
        self, consent: Consent, data: bytes, document_type: str | None, evidence: Evidence
    ) -> Evidence:
        if self.documents is None:
            raise ValidationFailed("documents are not configured", field="document")
        kind = (document_type or "").lower()
        magic = DOCUMENT_TYPES.get(kind)
        if magic is None:
            raise ValidationFailed(
                f"document_type must be one of {sorted(DOCUMENT_TYPES)}", field="document_type"
            )
        if not data or len(data) > self.max_document_bytes:
            raise ValidationFailed(
                f"document must be 1 byte to {self.max_document_bytes} bytes", field="document"
            )
        if not data.startswith(magic):
            raise ValidationFailed(f"document is not a {kind} file", field="document")
        digest = hashlib.sha256(data).hexdigest()
        key = f"{consent.tenant}/{consent.subject_id}/{consent.consent_id}/{digest}"
        self.documents.write(
            self.documents_bucket, key, data, {"sha256": digest}, content_type=kind
        )
        return replace(evidence, document_key=key, document_sha256=digest, document_type=kind)


def _view(
    consent: Consent,
    evidence: Evidence | None,
    history: tuple[ConsentEvent, ...],
    now: datetime,
) -> ConsentView:
    return ConsentView(
        tenant=consent.tenant,
        subject_id=consent.subject_id,
        consent_id=consent.consent_id,
        purposes=tuple(sorted(consent.purposes)),
        valid_from=consent.valid_from,
        expires_at=consent.expires_at,
        revoked_at=consent.revoked_at,
        status=consent_status(consent, now),
        version=consent.version,
        evidence=evidence,
        history=history,
    )


def _allowed_purposes(policy: TenantPolicy, purposes: Iterable[str]) -> frozenset[str]:
    wanted = frozenset(p.strip().lower() for p in purposes if p.strip())
    if not wanted:
        raise ValidationFailed("at least one purpose is required", field="purposes")
    unknown = wanted - policy.purposes
    if unknown:
        raise ValidationFailed(
            f"unknown purposes {sorted(unknown)}; this tenant allows {sorted(policy.purposes)}",
            field="purposes",
        )
    return wanted


def _signer(subject: Subject, signer: str | None, valid_from: datetime, age_of_consent: int) -> str:
    """Who signed (the subject by default); under the age of consent, the guardian must."""
    signer = (signer or subject.display_name).strip()
    age = subject.age_on(valid_from.date())
    if age is not None and age < age_of_consent:
        guardian = subject.guardian
        if guardian is None or guardian.name.strip().casefold() != signer.casefold():
            raise ValidationFailed(
                f"the subject is under {age_of_consent}: the guardian on record must sign",
                field="signer",
            )
    return signer


def _check_window(valid_from: datetime, expires_at: datetime | None) -> None:
    if valid_from.tzinfo is None:
        raise ValidationFailed("valid_from must carry a time zone", field="valid_from")
    if expires_at is not None and expires_at.tzinfo is None:
        raise ValidationFailed("expires_at must carry a time zone", field="expires_at")
    if expires_at is not None and expires_at <= valid_from:
        raise ValidationFailed("expires_at must be after valid_from", field="expires_at")
