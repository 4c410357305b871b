"""``ConsentRepository`` on the consents table (history append-only, evidence, expiry index)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import PutError, UpdateError
from pynamodb.expressions.condition import Condition

from quitclaim.adapters.dynamo.plumbing import conditional_failed, dependency, tenant_key
from quitclaim.adapters.dynamo.tables import (
    ConsentModel,
    ConsentsByExpiryDay,
    ConsentsByTenantExpiry,
    HistoryEvent,
)
from quitclaim.domain.errors import Conflict
from quitclaim.domain.models import Consent
from quitclaim.domain.registry import ConsentEvent, Evidence
from quitclaim.domain.rights import CONSENT_EVIDENCE


def _consent_from(item: ConsentModel) -> Consent:
    return Consent(
        tenant=item.tenant,
        subject_id=item.subject_id,
        consent_id=item.consent_id,
        purposes=frozenset(item.purposes or ()),
        valid_from=item.valid_from,
        expires_at=item.expires_at,
        revoked_at=item.revoked_at,
        version=int(item.version),
    )


def _history_from(item: ConsentModel) -> tuple[ConsentEvent, ...]:
    return tuple(
        ConsentEvent(
            at=event.at,
            event=event.event,
            source=event.source,
            actor=event.actor or "system",
            detail=dict(event.detail or {}),
        )
        for event in item.history or ()
    )


def _evidence_from(item: ConsentModel) -> Evidence | None:
    if not item.signer:
        return None
    return Evidence(
        signer=item.signer,
        form_version=item.form_version or "",
        source=item.source or "",
        document_key=item.document_key,
        document_sha256=item.document_sha256,
        document_type=item.document_type,
        document_url=item.document_url,
        biometric_consent=item.biometric_consent,
    )


def _event(e: ConsentEvent) -> HistoryEvent:
    return HistoryEvent(at=e.at, event=e.event, source=e.source, actor=e.actor, detail=e.detail)


class DynamoConsents:
    """ConsentRepository on the consents table (history is append-only)."""

    def for_subjects(self, tenant: str, subject_ids: Sequence[str]) -> dict[str, list[Consent]]:
        return {
            sid: [c for c, _, _ in self.details(tenant, sid)] for sid in sorted(set(subject_ids))
        }

    def details(
        self, tenant: str, subject_id: str
    ) -> list[tuple[Consent, Evidence | None, tuple[ConsentEvent, ...]]]:
        """Every consent of a subject with its evidence and history."""
        with dependency("consents query"):
            return [
                (_consent_from(item), _evidence_from(item), _history_from(item))
                for item in ConsentModel.query(
                    tenant_key(tenant, subject_id),
                    ConsentModel.sk.startswith("consent#"),
                    consistent_read=True,
                )
            ]

    def get(self, tenant: str, subject_id: str, consent_id: str) -> Consent | None:
        found = self.get_details(tenant, subject_id, consent_id)
        return found[0] if found else None

    def get_details(
        self, tenant: str, subject_id: str, consent_id: str
    ) -> tuple[Consent, Evidence | None, tuple[ConsentEvent, ...]] | None:
        with dependency("consent read"):
            try:
                item = ConsentModel.get(
                    tenant_key(tenant, subject_id), f"consent#{consent_id}", consistent_read=True
                )
            except ConsentModel.DoesNotExist:
                return None
        return _consent_from(item), _evidence_from(item), _history_from(item)

    def save(
        self,
        consent: Consent,
        *,
        source: str,
        evidence: Evidence | None = None,
        actor: str = "system",
    ) -> None:
        item = ConsentModel(
            tenant_key(consent.tenant, consent.subject_id),
            f"consent#{consent.consent_id}",
            tenant=consent.tenant,
            subject_id=consent.subject_id,
            consent_id=consent.consent_id,
            purposes=set(consent.purposes),
            valid_from=consent.valid_from,
            expires_at=consent.expires_at,
            revoked_at=consent.revoked_at,
            status="granted",
            version=consent.version,
            history=[_event(ConsentEvent(datetime.now(UTC), "granted", source, actor))],
            source=source,
            signer=evidence.signer if evidence else None,
            form_version=evidence.form_version if evidence else None,
            document_key=evidence.document_key if evidence else None,
            document_sha256=evidence.document_sha256 if evidence else None,
            document_type=evidence.document_type if evidence else None,
            document_url=evidence.document_url if evidence else None,
            biometric_consent=evidence.biometric_consent if evidence else None,
            expiry_day=_day(consent.expires_at),
        )
        with dependency("consent write"):
            try:
                item.save(condition=ConsentModel.pk.does_not_exist())
            except PutError as exc:
                if conditional_failed(exc):
                    raise Conflict(f"consent {consent.consent_id} exists", code="exists") from None
                raise

    def change(self, before: Consent, after: Consent, event: ConsentEvent) -> Consent:
        """Apply a renewal or withdrawal if nobody changed the consent meanwhile.

        The version check means a withdrawal never silently overwrites a
        concurrent renewal (or the reverse): the loser gets ``Conflict``.
        """
        item = ConsentModel(
            tenant_key(before.tenant, before.subject_id), f"consent#{before.consent_id}"
        )
        actions: list[Any] = [
            ConsentModel.valid_from.set(after.valid_from),
            ConsentModel.status.set(event.event),
            ConsentModel.version.set(before.version + 1),
            ConsentModel.history.set(ConsentModel.history.append([_event(event)])),
        ]
        if after.expires_at != before.expires_at:
            # A new window earns new reminders.
            actions.append(ConsentModel.reminders_sent.remove())
        for attr, value in (
            (ConsentModel.expires_at, after.expires_at),
            (ConsentModel.revoked_at, after.revoked_at),
        ):
            actions.append(attr.set(value) if value is not None else attr.remove())
        day = _day(after.expires_at)
        actions.append(
            ConsentModel.expiry_day.set(day) if day else ConsentModel.expiry_day.remove()
        )
        with dependency("consent update"):
            try:
                item.update(actions=actions, condition=ConsentModel.version == before.version)
            except UpdateError as exc:
                if conditional_failed(exc):
                    raise Conflict("the consent changed meanwhile; read it again") from exc
                raise
        return _consent_from(item)

    def expiring_on(
        self, day: str, *, until: datetime | None = None
    ) -> list[tuple[Consent, str, frozenset[str]]]:
        """Consents expiring on a UTC day (up to ``until``): (consent, status, reminders sent).

        Reads one partition of the expiry index, across tenants: the sweep and
        the reminders are operator jobs, and each result carries its tenant.
        """
        condition = ConsentsByExpiryDay.expires_at <= until if until is not None else None
        with dependency("expiry index query"):
            return [
                (
                    _consent_from(item),
                    item.status or "granted",
                    frozenset(item.reminders_sent or ()),
                )
                for item in ConsentModel.by_expiry_day.query(day, condition)
            ]

    def expiring_between(self, tenant: str, start: datetime, end: datetime) -> list[Consent]:
        """The tenant's consents with ``start <= expires_at < end`` (one index query)."""
        condition = ConsentsByTenantExpiry.expires_at.between(start, end)
        with dependency("tenant expiry index query"):
            found = [
                _consent_from(item)
                for item in ConsentModel.by_tenant_expiry.query(tenant, condition)
            ]
        return [c for c in found if c.expires_at is not None and c.expires_at < end]

    def mark_expired(self, consent: Consent, at: datetime) -> bool:
        """Record the expiry once; False when already expired, revoked or changed.

        The version is left as it is: the expiry only notes what the dates
        already say, it changes nothing a renewal or withdrawal read. Had it
        moved the version, a renewal that read the consent just before the
        exact-time schedule fired would lose its conditional write (Conflict)
        and the person's renewal would be refused while the images stayed
        held (tests/integration/test_races_on_stack.py, renewal vs expiry).
        The renewal still wins over a concurrent expiry the other way round:
        this write is conditional on the version the expiry read.
        """
        item = ConsentModel(
            tenant_key(consent.tenant, consent.subject_id), f"consent#{consent.consent_id}"
        )
        event = HistoryEvent(at=at, event="expired", source="expiry", actor="system", detail={})
        with dependency("consent expiry"):
            try:
                item.update(
                    actions=[
                        ConsentModel.status.set("expired"),
                        ConsentModel.history.set(ConsentModel.history.append([event])),
                    ],
                    condition=(ConsentModel.version == consent.version)
                    & ConsentModel.revoked_at.does_not_exist()
                    & (ConsentModel.status != "expired"),
                )
            except UpdateError as exc:
                if conditional_failed(exc):
                    return False
                raise
        return True

    def claim_reminder(self, consent: Consent, offsets: Sequence[str]) -> bool:
        """Mark reminders as sent, once: False when another run claimed them first."""
        item = ConsentModel(
            tenant_key(consent.tenant, consent.subject_id), f"consent#{consent.consent_id}"
        )
        condition: Condition = ConsentModel.pk.exists()
        for offset in offsets:
            condition &= ~ConsentModel.reminders_sent.contains(offset)
        with dependency("reminder claim"):
            try:
                item.update(
                    actions=[ConsentModel.reminders_sent.add(set(offsets))], condition=condition
                )
            except UpdateError as exc:
                if conditional_failed(exc):
                    return False
                raise
        return True

    def release_reminder(self, consent: Consent, offsets: Sequence[str]) -> None:
        """Undo a claim whose e-mail could not be sent, so the next run retries."""
        item = ConsentModel(
            tenant_key(consent.tenant, consent.subject_id), f"consent#{consent.consent_id}"
        )
        with dependency("reminder release"):
            item.update(actions=[ConsentModel.reminders_sent.delete(set(offsets))])

    def revoke(self, consent: Consent, at: datetime, *, source: str) -> Consent:
        from dataclasses import replace

        return self.change(
            consent,
            replace(consent, revoked_at=at),
            ConsentEvent(at, "revoked", source, "system"),
        )

    def tombstone(self, consent: Consent, at: datetime, *, actor: str) -> None:
        """Keep ids, purposes, dates, outcome and the document hash; drop the evidence.

        The history keeps its events (when, what, which source and key) without
        their details, and ends with ``erased``.
        """
        key = (tenant_key(consent.tenant, consent.subject_id), f"consent#{consent.consent_id}")
        with dependency("consent read"):
            try:
                item = ConsentModel.get(*key, consistent_read=True)
            except ConsentModel.DoesNotExist:
                return
        history = [
            HistoryEvent(at=e.at, event=e.event, source=e.source, actor=e.actor, detail={})
            for e in item.history or ()
        ]
        history.append(
            HistoryEvent(at=at, event="erased", source="erasure", actor=actor, detail={})
        )
        actions: list[Any] = [
            ConsentModel.status.set("erased"),
            ConsentModel.version.set(int(item.version) + 1),
            ConsentModel.history.set(history),
            ConsentModel.expiry_day.remove(),
            *(getattr(ConsentModel, name).remove() for name in CONSENT_EVIDENCE),
        ]
        with dependency("consent tombstone"):
            try:
                ConsentModel(*key).update(
                    actions=actions, condition=ConsentModel.version == item.version
                )
            except UpdateError as exc:
                if conditional_failed(exc):
                    raise Conflict("the consent changed meanwhile; erase again") from exc
                raise

    def leftovers(self, tenant: str, subject_id: str) -> dict[str, list[str]]:
        """Per consent, the evidence attributes still held (a tombstone holds none)."""
        found: dict[str, list[str]] = {}
        with dependency("consents query"):
            items = list(
                ConsentModel.query(
                    tenant_key(tenant, subject_id),
                    ConsentModel.sk.startswith("consent#"),
                    consistent_read=True,
                )
            )
        for item in items:
            held = [name for name in CONSENT_EVIDENCE if getattr(item, name)]
            if any(e.detail for e in item.history or ()):
                held.append("history_detail")
            if item.status != "erased":
                held.append("status")
            found[item.consent_id] = held
        return found


def _day(at: datetime | None) -> str | None:
    return at.astimezone(UTC).date().isoformat() if at else None
