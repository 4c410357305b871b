"""Consent expiry at the exact time, the reconciling sweep, and TTL purges.

Validity never depends on any of this having run: decisions compute it from
the dates. These jobs exist so that images *leave the library* on time.
"""

from __future__ import annotations

from datetime import timedelta

from quitclaim.domain.models import Consent
from quitclaim.domain.ports import (
    AssetRepository,
    Clock,
    ConsentRepository,
    EventPublisher,
    TenantRepository,
)
from quitclaim.observability import audit, count, logger
from quitclaim.usecases.recheck import Recheck


class Expiry:
    def __init__(
        self,
        *,
        consents: ConsentRepository,
        tenants: TenantRepository,
        assets: AssetRepository,
        recheck: Recheck,
        clock: Clock,
        lookback_days: int = 3,
        events: EventPublisher | None = None,
    ) -> None:
        self._events = events
        self._consents = consents
        self._tenants = tenants
        self._assets = assets
        self._recheck = recheck
        self._clock = clock
        self._lookback = lookback_days

    def expire_consent(self, tenant: str, subject_id: str, consent_id: str) -> bool:
        """Handle one exact-time schedule. True when this call recorded the expiry.

        A schedule can fire early (renewed since) or late (retried): the
        consent's dates decide, not the schedule.
        """
        consent = self._consents.get(tenant, subject_id, consent_id)
        now = self._clock.now()
        if consent is None or consent.expires_at is None or consent.expires_at > now:
            logger.info("expiry schedule not due", tenant=tenant, consent_id=consent_id)
            return False
        return self._expire(consent)

    def sweep(self) -> int:
        """Expire everything past its time in the last few days of the expiry index."""
        now = self._clock.now()
        expired = 0
        for back in range(self._lookback, -1, -1):
            day = (now - timedelta(days=back)).date().isoformat()
            for consent, status, _ in self._consents.expiring_on(day, until=now):
                if status in ("expired", "revoked") or consent.revoked_at is not None:
                    continue
                expired += int(self._expire(consent))
        count("ConsentsExpiredBySweep", expired)
        return expired

    def _expire(self, consent: Consent) -> bool:
        recorded = self._consents.mark_expired(consent, self._clock.now())
        if recorded:
            audit(
                "consent.expired",
                tenant=consent.tenant,
                subject_id=consent.subject_id,
                consent_id=consent.consent_id,
                source="expiry",
            )
            count("ConsentsExpired")
            if self._events is not None:
                self._events.publish(
                    "consent.expired",
                    consent.tenant,
                    {
                        "subject_id": consent.subject_id,
                        "consent_id": consent.consent_id,
                        "expires_at": consent.expires_at.isoformat()
                        if consent.expires_at
                        else None,
                    },
                )
        # Re-decide even if another run recorded it: that run may have crashed
        # before moving the images, and re-deciding twice changes nothing.
        self._recheck.recheck_subject(consent.tenant, consent.subject_id, actor="expiry")
        return recorded

    def purge_subject(self, tenant: str, subject_id: str) -> None:
        """A subject record outlived its retention (TTL): drop what hangs off it.

        Its templates went with the item; bumping the gallery version makes
        every warm container reload the gallery without them. Appearance rows
        go too; the assets keep their (pseudonymous) decision records.
        """
        self._tenants.bump_gallery_version(tenant)
        for asset_id in self._assets.appearances(tenant, subject_id):
            self._assets.remove_appearance(tenant, subject_id, asset_id)
        audit("subject.purged", tenant=tenant, subject_id=subject_id, source="ttl")
        if self._events is not None:
            self._events.publish("subject.erased", tenant, {"subject_id": subject_id})
