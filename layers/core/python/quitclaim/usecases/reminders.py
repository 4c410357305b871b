"""Renewal reminders (each sent once) and the signed links inside them.

The e-mail carries two links of equal weight: renew and withdraw. Withdrawing
must be as easy as consenting (GDPR Art. 7(3)).

Bound links: a renewal link names the consent's version when it was sent and
works once (it moves the version on), within its TTL; following it again, or
after the consent changed otherwise, is a ``Conflict`` ``link_used`` and
changes nothing. A withdrawal link works for as long as the consent is in
force (a renewal does not end it; the consent's end does: ``link_expired``),
and withdrawing twice changes nothing (``Conflict`` ``already_withdrawn``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from quitclaim.domain.errors import Conflict, DependencyFailed, Forbidden
from quitclaim.domain.models import Consent
from quitclaim.domain.ports import (
    Clock,
    ConsentRepository,
    Email,
    EventPublisher,
    Mailer,
    SubjectRepository,
    TenantRepository,
)
from quitclaim.observability import audit, count, logger
from quitclaim.usecases.compliance_registry import Registry
from quitclaim.usecases.ledger import AGE_OF_CONSENT

ACTIONS = ("renew", "withdraw")

TEMPLATES = {
    "en": {
        "subject": "Your portrait consent expires on {date}",
        "body": (
            "Hello {name},\n\nYou allowed {tenant} to publish photographs of you. "
            "That consent expires on {date} ({days} days from now).\n\n"
            "Renew it for another year: {renew}\n"
            "Or withdraw it now: {withdraw}\n\n"
            "If you do nothing, photographs of you will no longer be published after {date}."
        ),
    },
    "nl": {
        "subject": "Uw portrettoestemming verloopt op {date}",
        "body": (
            "Beste {name},\n\nU gaf {tenant} toestemming om foto's van u te publiceren. "
            "Die toestemming verloopt op {date} (over {days} dagen).\n\n"
            "Verleng haar met een jaar: {renew}\n"
            "Of trek haar nu in: {withdraw}\n\n"
            "Doet u niets, dan worden foto's van u na {date} niet meer gepubliceerd."
        ),
    },
}


@dataclass(frozen=True, slots=True)
class LinkClaims:
    tenant: str
    subject_id: str
    consent_id: str
    action: str
    expires: int  # epoch seconds
    # The consent's version the link was sent for (renewal links: bound to it).
    version: int | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    """HMAC-SHA256 tokens: payload.signature, both base64url."""

    def __init__(self, key: Callable[[], bytes]) -> None:
        self._key = key

    def sign(self, claims: LinkClaims) -> str:
        fields: dict[str, Any] = {
            "t": claims.tenant,
            "s": claims.subject_id,
            "c": claims.consent_id,
            "a": claims.action,
            "e": claims.expires,
        }
        if claims.version is not None:
            fields["v"] = claims.version
        payload = _b64(json.dumps(fields, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload)}"

    def verify(
        self, token: str, action: str, now: datetime, *, check_expiry: bool = True
    ) -> LinkClaims:
        """The claims of an untampered, unexpired token for ``action``; else Forbidden.

        ``check_expiry=False``: the caller judges validity (a withdrawal link
        lasts as long as its consent).
        """
        payload, _, signature = (token or "").partition(".")
        if not payload or not hmac.compare_digest(signature.encode(), self._mac(payload).encode()):
            raise Forbidden("this link is not valid", code="bad_link")
        try:
            data = json.loads(_unb64(payload))
            version = data.get("v")
            claims = LinkClaims(
                data["t"],
                data["s"],
                data["c"],
                data["a"],
                int(data["e"]),
                None if version is None else int(version),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            raise Forbidden("this link is not valid", code="bad_link") from None
        if claims.action != action:
            raise Forbidden("this link is not valid", code="bad_link")
        if check_expiry and claims.expires < now.timestamp():
            raise Forbidden("this link has expired", code="link_expired")
        return claims

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key(), payload.encode(), hashlib.sha256).digest())


class Reminders:
    def __init__(
        self,
        *,
        consents: ConsentRepository,
        subjects: SubjectRepository,
        tenants: TenantRepository,
        registry: Registry,
        mailer: Mailer,
        signer: LinkSigner,
        clock: Clock,
        base_url: str,
        offsets: tuple[int, ...] = (30, 7, 1),
        renewal_days: int = 365,
        link_ttl_days: int = 45,
        events: EventPublisher | None = None,
        age_of_consent: Callable[[str], int] | None = None,
        also_daily: Callable[[], int] | None = None,
    ) -> None:
        self._events = events
        # The tenant's age of consent (the form settings); default: GDPR's 16.
        self._age_of_consent = age_of_consent or (lambda tenant: AGE_OF_CONSENT)
        # Another daily duty on the same schedule (the form's coming-of-age mails).
        self._also_daily = also_daily
        self._consents = consents
        self._subjects = subjects
        self._tenants = tenants
        self._registry = registry
        self._mailer = mailer
        self._signer = signer
        self._clock = clock
        self._base = base_url.rstrip("/")
        self._offsets = tuple(sorted(set(offsets)))
        self._renewal = timedelta(days=renewal_days)
        self._link_ttl = timedelta(days=link_ttl_days)

    def send_due(self) -> int:
        """Send every reminder due today, each (consent, offset) at most once.

        A consent expiring in ``d`` days is due the smallest offset ≥ ``d``; the
        larger ones it skipped (a missed day) are marked with it, so a late run
        sends one reminder, not three.
        """
        now = self._clock.now()
        sent = 0
        for ahead in range(0, max(self._offsets) + 1):
            day = (now + timedelta(days=ahead)).date().isoformat()
            for consent, status, already in self._consents.expiring_on(day):
                if status in ("revoked", "expired") or consent.revoked_at is not None:
                    continue
                if consent.expires_at is None or consent.expires_at <= now:
                    continue
                days_left = (consent.expires_at.date() - now.date()).days
                due = [o for o in self._offsets if o >= days_left]
                if not due or str(due[0]) in already:
                    continue
                claim = [str(o) for o in due if str(o) not in already]
                if not self._consents.claim_reminder(consent, claim):
                    continue  # a concurrent run has it
                try:
                    sent += int(self._send(consent, days_left, now))
                except DependencyFailed:
                    self._consents.release_reminder(consent, claim)
                    raise
        count("RemindersSent", sent)
        if self._also_daily is not None:
            sent += self._also_daily()
        return sent

    def _send(self, consent: Consent, days_left: int, now: datetime) -> bool:
        subject = self._subjects.get(consent.tenant, consent.subject_id)
        policy = self._tenants.policy(consent.tenant)
        if subject is None or policy is None or consent.expires_at is None:
            return False
        age_of_consent = self._age_of_consent(consent.tenant)
        minor = (subject.age_on(now.date()) or age_of_consent) < age_of_consent
        to = subject.guardian.email if minor and subject.guardian else subject.email
        if to and to == subject.email and subject.email_unreachable:
            to = None  # the address bounces for good (a newsletter tool's "cleaned")
        if not to:
            count("ReminderNoContact")
            logger.info("no contact for reminder", tenant=consent.tenant)
            return False
        links = self._links(consent, consent.expires_at, now)
        template = TEMPLATES.get(policy.language, TEMPLATES["en"])
        name = subject.guardian.name if minor and subject.guardian else subject.display_name
        fields = {
            "name": name,
            "tenant": consent.tenant,
            "date": consent.expires_at.date().isoformat(),
            "days": days_left,
            "renew": links["renew"],
            "withdraw": links["withdraw"],
        }
        text = template["body"].format(**fields)
        tags = {"tenant": consent.tenant, "subject": consent.subject_id}
        self._mailer.send(
            Email(to, template["subject"].format(**fields), text, _linked_html(text, links), tags)
        )
        self._announce(consent, consent.expires_at, days_left)
        return True

    def _links(self, consent: Consent, expires_at: datetime, now: datetime) -> dict[str, str]:
        """The signed renew and withdraw links of one reminder."""
        claims = {
            # Renewal: once, for this version of the consent, within the link TTL.
            "renew": LinkClaims(
                consent.tenant,
                consent.subject_id,
                consent.consent_id,
                "renew",
                int((now + self._link_ttl).timestamp()),
                consent.version,
            ),
            # Withdrawal: as long as the consent is in force (checked on use).
            "withdraw": LinkClaims(
                consent.tenant,
                consent.subject_id,
                consent.consent_id,
                "withdraw",
                int(expires_at.timestamp()),
            ),
        }
        return {
            action: f"{self._base}/links/{action}?token=" + self._signer.sign(claims[action])
            for action in ACTIONS
        }

    def _announce(self, consent: Consent, expires_at: datetime, days_left: int) -> None:
        """Tell the tenant's systems (``consent.expiring``) and the audit trail."""
        if self._events is not None:
            self._events.publish(
                "consent.expiring",
                consent.tenant,
                {
                    "subject_id": consent.subject_id,
                    "consent_id": consent.consent_id,
                    "expires_at": expires_at.isoformat(),
                    "days_left": days_left,
                },
            )
        audit(
            "consent.reminder_sent",
            tenant=consent.tenant,
            subject_id=consent.subject_id,
            consent_id=consent.consent_id,
            source="reminders",
        )

    def check_link(self, action: str, token: str) -> LinkClaims:
        """Verify a link without acting on it (what a GET, or a mail scanner, gets)."""
        return self._valid(action, token, self._clock.now())[0]

    def follow_link(self, action: str, token: str) -> Consent:
        """Apply a renewal or withdrawal from an e-mailed link (public route).

        A link that acted already changes nothing and raises ``Conflict``
        (``link_used`` / ``already_withdrawn``), also when two requests race.
        """
        now = self._clock.now()
        claims, consent = self._valid(action, token, now)
        if action == "withdraw":
            revoked = self._registry.revoke_consent(
                claims.tenant, claims.subject_id, claims.consent_id, source="link", actor="subject"
            )
            if revoked.version == consent.version:  # a concurrent request withdrew it
                raise Conflict("this consent is withdrawn already", code="already_withdrawn")
            return revoked
        start = max(now, consent.expires_at or now)
        try:
            return self._registry.renew_consent(
                claims.tenant,
                claims.subject_id,
                claims.consent_id,
                start + self._renewal,
                source="link",
                actor="subject",
                expected_version=claims.version,
            )
        except Conflict as exc:
            # The consent moved on between our read and the write: this link's turn is over.
            raise _used() from exc

    def _valid(self, action: str, token: str, now: datetime) -> tuple[LinkClaims, Consent]:
        """The claims of a link that may act now, and the consent it acts on."""
        claims = self._signer.verify(token, action, now, check_expiry=action != "withdraw")
        consent = self._consents.get(claims.tenant, claims.subject_id, claims.consent_id)
        if consent is None:
            raise Forbidden("this link is not valid", code="bad_link")
        if action == "withdraw":
            if consent.revoked_at is not None:
                raise Conflict("this consent is withdrawn already", code="already_withdrawn")
            if consent.expires_at is not None and consent.expires_at <= now:
                raise Forbidden("this link has expired", code="link_expired")
            return claims, consent
        if claims.version is None:
            # Sent before links were bound: it could be replayed, so it is not honoured.
            raise Forbidden("this link is not valid", code="bad_link")
        if claims.version != consent.version:
            raise _used()
        return claims, consent


def _used() -> Conflict:
    return Conflict(
        "this link was used already, or the consent changed since it was sent",
        code="link_used",
    )


def _linked_html(text: str, links: dict[str, str]) -> str:
    """The mail's text as HTML, its links clickable."""
    body = html.escape(text).replace("\n", "<br>")
    for action in ACTIONS:
        escaped = html.escape(links[action])
        body = body.replace(escaped, f'<a href="{escaped}">{escaped}</a>')
    return body
