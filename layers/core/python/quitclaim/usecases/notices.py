"""The e-mails a person gets about their own consent: a confirmation on every
grant, and a receipt after every change (renewal, withdrawal).

The confirmation carries a standing withdrawal link (the same signed link as
the reminders', ``usecases/reminders.py``) that works until the consent ends:
withdrawing must be as easy as consenting (GDPR Art. 7(3)), also for a
consent without an end date or one that never gets a reminder.

A failed send never undoes the consent change it reports: it is counted and
logged with ids only (no names, no addresses).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import datetime, timedelta

from quitclaim.domain.errors import DependencyFailed
from quitclaim.domain.models import Consent
from quitclaim.domain.ports import Clock, Email, Mailer, SubjectRepository, TenantRepository
from quitclaim.domain.registry import Subject
from quitclaim.observability import count, logger
from quitclaim.usecases.ledger import AGE_OF_CONSENT
from quitclaim.usecases.reminders import LinkClaims, LinkSigner

# A consent without an end: its withdrawal link carries a far-off expiry (the
# link is judged against the consent when used, never against this claim).
OPEN_ENDED = timedelta(days=100 * 366)

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "granted.subject": "Your consent to {tenant} is recorded",
        "granted.body": (
            "Hello {name},\n\nYou allowed {tenant} to use photographs of you for: {purposes}.\n"
            "Your consent runs from {start} {until}.\n\n"
            "You can withdraw it at any time, as easily as you gave it. This link works "
            "until the consent ends: {withdraw}\n\n"
            "Keep this e-mail: it is your copy."
        ),
        "renewed.subject": "Your consent to {tenant} is renewed",
        "renewed.body": (
            "Hello {name},\n\nYour consent for {tenant} to use photographs of you for "
            "{purposes} is renewed {until}.\n\n"
            "You can still withdraw it at any time: {withdraw}"
        ),
        "revoked.subject": "Your consent to {tenant} is withdrawn",
        "revoked.body": (
            "Hello {name},\n\nYou withdrew your consent for {tenant} to use photographs of "
            "you for {purposes} on {today}.\n\n"
            "Photographs of you are taken out of the published library for these purposes "
            "and will not be published for them again. Questions: {contact}"
        ),
        "until": "until {date}",
        "open": "with no end date",
    },
    "nl": {
        "granted.subject": "Uw toestemming aan {tenant} is vastgelegd",
        "granted.body": (
            "Beste {name},\n\nU gaf {tenant} toestemming om foto's van u te gebruiken voor: "
            "{purposes}.\nUw toestemming loopt vanaf {start} {until}.\n\n"
            "U kunt haar altijd intrekken, even gemakkelijk als u haar gaf. Deze link werkt "
            "zolang de toestemming loopt: {withdraw}\n\n"
            "Bewaar deze e-mail: het is uw kopie."
        ),
        "renewed.subject": "Uw toestemming aan {tenant} is verlengd",
        "renewed.body": (
            "Beste {name},\n\nUw toestemming aan {tenant} om foto's van u te gebruiken voor "
            "{purposes} is verlengd {until}.\n\n"
            "U kunt haar nog altijd intrekken: {withdraw}"
        ),
        "revoked.subject": "Uw toestemming aan {tenant} is ingetrokken",
        "revoked.body": (
            "Beste {name},\n\nU trok op {today} uw toestemming in aan {tenant} om foto's van "
            "u te gebruiken voor {purposes}.\n\n"
            "Foto's van u worden voor deze doelen uit de gepubliceerde bibliotheek gehaald en "
            "daarvoor niet meer gepubliceerd. Vragen: {contact}"
        ),
        "until": "tot en met {date}",
        "open": "zonder einddatum",
    },
}


def subject_language(subject: Subject | None) -> str | None:
    """The person's own language where the record holds one (nl or en)."""
    language = getattr(subject, "language", None)
    return language if language in TEXTS else None


class ConsentMail:
    """Sends the confirmation and the receipts; ``Registry`` calls it."""

    def __init__(
        self,
        *,
        subjects: SubjectRepository,
        tenants: TenantRepository,
        mailer: Mailer,
        signer: LinkSigner,
        clock: Clock,
        base_url: str,
        contact: Callable[[str], str | None] | None = None,
    ) -> None:
        self._subjects = subjects
        self._tenants = tenants
        self._mailer = mailer
        self._signer = signer
        self._clock = clock
        self._base = base_url.rstrip("/")
        # The tenant's contact address (whom a person asks about their photos).
        self._contact = contact or (lambda _tenant: None)

    def withdraw_link(self, consent: Consent) -> str:
        """The standing withdrawal link: valid while the consent is in force."""
        end = consent.expires_at or (self._clock.now() + OPEN_ENDED)
        claims = LinkClaims(
            consent.tenant,
            consent.subject_id,
            consent.consent_id,
            "withdraw",
            int(end.timestamp()),
        )
        return f"{self._base}/links/withdraw?token=" + self._signer.sign(claims)

    def granted(self, consent: Consent) -> bool:
        return self._send(consent, "granted")

    def changed(self, consent: Consent, event: str) -> bool:
        """A receipt after ``renewed`` or ``revoked``; other events send nothing."""
        if event not in ("renewed", "revoked"):
            return False
        return self._send(consent, event)

    def _send(self, consent: Consent, event: str) -> bool:
        try:
            return self._compose_and_send(consent, event)
        except DependencyFailed:
            # The consent change stands; the person can still act through any link.
            count("ConsentMailFailed")
            logger.warning(
                "consent mail not sent",
                tenant=consent.tenant,
                consent_id=consent.consent_id,
                mail=event,
            )
            return False

    def _compose_and_send(self, consent: Consent, event: str) -> bool:
        subject = self._subjects.get(consent.tenant, consent.subject_id)
        policy = self._tenants.policy(consent.tenant)
        if subject is None or policy is None:
            return False
        now = self._clock.now()
        age = subject.age_on(now.date())
        minor = age is not None and age < AGE_OF_CONSENT
        to = subject.guardian.email if minor and subject.guardian else subject.email
        if to and to == subject.email and subject.email_unreachable:
            to = None
        if not to:
            count("ConsentMailNoContact")
            return False
        language = subject_language(subject) or (
            policy.language if policy.language in TEXTS else "en"
        )
        texts = TEXTS[language]
        name = subject.guardian.name if minor and subject.guardian else subject.display_name
        withdraw = self.withdraw_link(consent)
        until = (
            texts["until"].format(date=_day(consent.expires_at))
            if consent.expires_at is not None
            else texts["open"]
        )
        fields = {
            "name": name,
            "tenant": consent.tenant,
            "purposes": ", ".join(sorted(consent.purposes)),
            "start": _day(consent.valid_from),
            "until": until,
            "today": _day(now),
            "withdraw": withdraw,
            "contact": self._contact(consent.tenant) or consent.tenant,
        }
        text = texts[f"{event}.body"].format(**fields)
        body = html.escape(text).replace("\n", "<br>")
        escaped = html.escape(withdraw)
        body = body.replace(escaped, f'<a href="{escaped}">{escaped}</a>')
        self._mailer.send(Email(to, texts[f"{event}.subject"].format(**fields), text, body))
        count(f"ConsentMail.{event}")
        return True


def _day(at: datetime) -> str:
    return at.date().isoformat()
