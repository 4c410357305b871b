"""The inbound webhook worker: one queued delivery becomes a consent change.

It maps the stored payload to a consent event, finds the one person it is
about and applies it through the registry (which re-decides their images):
a consent granted, renewed or withdrawn, or the person's e-mail changed or
marked unreachable. Anything that needs a person is parked, never dropped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from quitclaim.domain.dialects import Dialect, dialect_of, reread
from quitclaim.domain.errors import Conflict, NotFound, QuitclaimError, ValidationFailed
from quitclaim.domain.ports import Clock, WebhookRepository
from quitclaim.domain.webhooks import (
    ConsentAction,
    ConsentMapping,
    InboundDelivery,
    InboundEvent,
    InboundStatus,
    WebhookSource,
)
from quitclaim.observability import audit, count
from quitclaim.usecases.compliance_registry import Registry


@dataclass
class ApplyInbound:
    """The worker: one queued delivery → a consent granted, renewed or withdrawn."""

    store: WebhookRepository
    registry: Registry
    clock: Clock

    def apply(self, tenant: str, source_name: str, delivery_id: str) -> InboundDelivery:
        found = self.store.inbound(tenant, source_name, delivery_id)
        if found is None:
            raise NotFound(f"delivery {delivery_id} not found")
        delivery, body = found
        if delivery.status is not InboundStatus.QUEUED:
            return delivery  # applied, parked or dismissed already: a redelivery changes nothing
        source = self.store.source(tenant, source_name)
        try:
            if source is None:
                raise _Park("source_removed", "source", "the source was deleted")
            payload = (
                json.loads(body or "null")
                if dialect_of(source) is Dialect.STANDARD
                else reread(dialect_of(source), body or "null")
            )
            event = ConsentMapping.parse(source.mapping).apply(payload)
            if event is None:
                outcome = replace(delivery, status=InboundStatus.IGNORED)
            else:
                outcome = self._apply(source, delivery, event, body)
        except _Park as park:
            outcome = replace(
                delivery,
                status=InboundStatus.PARKED,
                reason=park.code,
                field=park.field,
                detail=park.message,
            )
        except ValidationFailed as exc:  # the mapping, or the registry's rules (purpose, guardian)
            outcome = replace(
                delivery,
                status=InboundStatus.PARKED,
                reason=exc.code,
                field=exc.field,
                detail=exc.message,
            )
        parked = outcome.status is InboundStatus.PARKED
        with contextlib.suppress(Conflict):  # another worker finished it first
            self.store.finish_inbound(outcome, expected=InboundStatus.QUEUED, keep_payload=parked)
        count("WebhooksParked" if parked else "WebhooksApplied")
        audit(
            "webhook.inbound_" + outcome.status.value,
            tenant=tenant,
            source=source_name,
            reason=outcome.reason,
            subject_id=outcome.subject_id,
        )
        return outcome

    def _apply(
        self,
        source: WebhookSource,
        delivery: InboundDelivery,
        event: InboundEvent,
        body: str | None = None,
    ) -> InboundDelivery:
        tenant = source.tenant
        subject_id = self._one_subject(tenant, event)
        now = self.clock.now()
        changed: list[str] = []
        if event.action is ConsentAction.EMAIL_CHANGED:
            if event.new_email is None:
                raise _Park("payload_unmappable", "new_email", "the new e-mail address is missing")
            self.registry.update_subject(tenant, subject_id, {"email": event.new_email})
        elif event.action is ConsentAction.UNREACHABLE:
            self.registry.update_subject(tenant, subject_id, {"email_unreachable": True})
        elif event.action is ConsentAction.GRANTED:
            changed.append(self._grant(source, delivery, event, subject_id, now, body))
        else:
            changed = self._withdraw_or_renew(source, event, subject_id, now)
        return replace(
            delivery,
            status=InboundStatus.APPLIED,
            subject_id=subject_id,
            consent_ids=tuple(changed),
            applied_at=now,
        )

    def _one_subject(self, tenant: str, event: InboundEvent) -> str:
        """The one person the event is about; none or several park the delivery."""
        matches = self.registry.find_subjects(
            tenant, external_ref=event.external_ref, email=event.email
        )
        if not matches:
            raise _Park("unknown_subject", "subject", "no person with this reference or e-mail")
        if len(matches) > 1:
            raise _Park("ambiguous_subject", "subject", f"{len(matches)} people match")
        return matches[0]

    def _grant(
        self,
        source: WebhookSource,
        delivery: InboundDelivery,
        event: InboundEvent,
        subject_id: str,
        now: datetime,
        body: str | None,
    ) -> str:
        """A new consent, its id stable per delivery; returns that id."""
        tenant = source.tenant
        origin = f"webhook:{source.name}"
        start = event.valid_from or now
        until = event.valid_until or start + timedelta(days=source.default_validity_days)
        # Stable per delivery: a redelivered grant hits ``exists``, never a second consent.
        consent_id = (
            "con_"
            + hashlib.sha256(f"{tenant}#{source.name}#{delivery.delivery_id}".encode()).hexdigest()[
                :16
            ]
        )
        try:
            self.registry.grant_consent(
                tenant,
                subject_id,
                event.purposes or (self.registry.policy(tenant).default_purpose,),
                start,
                until,
                source=origin,
                signer=event.signer,
                form_version=source.name,
                document_url=event.evidence_url,
                # A Typeform response is itself the evidence: stored and hashed.
                document=(
                    body.encode("utf-8")
                    if body and dialect_of(source) is Dialect.TYPEFORM
                    else None
                ),
                document_type=(
                    "application/json" if dialect_of(source) is Dialect.TYPEFORM else None
                ),
                consent_id=consent_id,
                actor=origin,
            )
        except Conflict as exc:
            if exc.code != "exists":
                raise
        return consent_id

    def _withdraw_or_renew(
        self, source: WebhookSource, event: InboundEvent, subject_id: str, now: datetime
    ) -> list[str]:
        """Each live consent for the event's purposes (all when it names none); their ids."""
        tenant = source.tenant
        origin = f"webhook:{source.name}"
        wanted = set(event.purposes)
        changed: list[str] = []
        for view in self.registry.consent_views(tenant, subject_id):
            if view.revoked_at is not None or (wanted and not wanted & set(view.purposes)):
                continue
            if event.action is ConsentAction.WITHDRAWN:
                self.registry.revoke_consent(
                    tenant, subject_id, view.consent_id, source=origin, actor=origin
                )
            else:
                start = event.valid_from or now
                until = event.valid_until or start + timedelta(days=source.default_validity_days)
                self.registry.renew_consent(
                    tenant,
                    subject_id,
                    view.consent_id,
                    until,
                    valid_from=min(view.valid_from, start),
                    source=origin,
                    actor=origin,
                )
            changed.append(view.consent_id)
        if event.action is ConsentAction.RENEWED and not changed:
            raise _Park("nothing_to_renew", "subject", "the person has no consent to renew")
        return changed


class _Park(QuitclaimError):
    def __init__(self, code: str, field: str, message: str) -> None:
        super().__init__(message, code=code)
        self.field = field
