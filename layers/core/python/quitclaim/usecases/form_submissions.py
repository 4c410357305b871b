"""The hosted quitclaim form: publish versions, send links, sign, and come of age.

A form link is a signed token (``LinkSigner``, action ``form``): a personal
link names the person (and the consent id its signature will get, so a second
submission of the same link is refused as ``exists``); an event link names an
event and makes a new person per signature. Signing goes through
``Registry.grant_consent`` with an evidence PDF as its document, so the PDF is
stored and hashed like any uploaded quitclaim and the access export verifies it.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from quitclaim.domain.errors import Conflict, DependencyFailed, NotFound, ValidationFailed
from quitclaim.domain.forms import (
    Answers,
    FormSettings,
    FormText,
    FormVersion,
    MajorityDue,
    check_age_of_consent,
    check_answers,
    check_version,
    majority_day,
)
from quitclaim.domain.pdf import render
from quitclaim.domain.ports import Clock, Email, FormStore, Mailer
from quitclaim.domain.registry import Guardian, Subject
from quitclaim.observability import audit, count, logger
from quitclaim.usecases.compliance_registry import Registry
from quitclaim.usecases.reminders import LinkClaims, LinkSigner

ACTION = "form"
EVENT_PREFIX = "event-"
MAJORITY_LOOKBACK_DAYS = 7

MAILS = {
    "en": {
        "link_subject": "Your portrait consent form",
        "link_body": (
            "Hello {name},\n\n{tenant} asks for your consent to publish photographs "
            "of you. Read the form and choose what you allow: {url}\n\n"
            "The link works until {until}."
        ),
        "majority_subject": "Please confirm your portrait consent yourself",
        "majority_body": (
            "Hello {name},\n\nWhen you were younger, {guardian} consented on your behalf "
            "to {tenant} publishing photographs of you. That consent stays valid until "
            "{end}, unless it is withdrawn. You have now reached the age at which you "
            "decide yourself. Please read the form and confirm what you allow: {url}"
        ),
        "until_withdrawn": "it is withdrawn",
    },
    "nl": {
        "link_subject": "Uw toestemmingsformulier voor portretten",
        "link_body": (
            "Beste {name},\n\n{tenant} vraagt uw toestemming om foto's van u te "
            "publiceren. Lees het formulier en kies wat u toestaat: {url}\n\n"
            "De link werkt tot {until}."
        ),
        "majority_subject": "Bevestig uw portrettoestemming zelf",
        "majority_body": (
            "Beste {name},\n\nToen u jonger was, gaf {guardian} namens u toestemming aan "
            "{tenant} om foto's van u te publiceren. Die toestemming blijft geldig tot "
            "{end}, tenzij ze wordt ingetrokken. U hebt nu de leeftijd waarop u zelf "
            "beslist. Lees het formulier en bevestig wat u toestaat: {url}"
        ),
        "until_withdrawn": "ze wordt ingetrokken",
    },
}


@dataclass(frozen=True, slots=True)
class OpenForm:
    """What the form page shows for a valid link."""

    tenant: str
    form: FormVersion
    settings: FormSettings
    subject: Subject | None  # a personal link's person (prefilled); None: an event link
    event: str | None
    token: str
    valid_until: datetime | None
    today: str
    language: str = "en"  # the tenant's, for a browser that asks for neither


@dataclass(frozen=True, slots=True)
class Signed:
    """The outcome of a signature: what the thank-you page says."""

    tenant: str
    subject_id: str
    consent_id: str
    purposes: tuple[str, ...]
    expires_at: datetime | None
    minor: bool
    guardian: str | None
    enrolled: bool
    document_sha256: str


@dataclass(frozen=True, slots=True)
class IssuedLink:
    url: str
    expires_at: datetime
    sent_to: str | None = None  # "person" | "guardian" | None (no e-mail sent)
    qr_svg: str | None = None


def ip_digest(key: bytes, address: str) -> str:
    """A keyed hash of the signer's IP address: comparable, never reversible by enumeration."""
    return hmac.new(key, f"ip:{address}".encode(), hashlib.sha256).hexdigest()


def qr_svg(url: str) -> str:
    """The URL as a QR code (SVG, error correction M), via segno (BSD, pure Python)."""
    import segno  # only the officer's event link needs it

    out = io.BytesIO()
    segno.make_qr(url, error="m").save(out, kind="svg", scale=6, border=4, xmldecl=False)
    return out.getvalue().decode()


class Forms:
    def __init__(
        self,
        *,
        registry: Registry,
        store: FormStore,
        signer: LinkSigner,
        mailer: Mailer,
        clock: Clock,
        base_url: str,
        hash_key: Callable[[], bytes],
        link_days: int = 30,
    ) -> None:
        self._registry = registry
        self._store = store
        self._signer = signer
        self._mailer = mailer
        self._clock = clock
        self._base = base_url.rstrip("/")
        self._hash_key = hash_key
        self._link_days = link_days

    # -- the officer -------------------------------------------------------------
    def publish(
        self,
        tenant: str,
        version: str,
        texts: Mapping[str, Mapping[str, str]],
        purposes: Sequence[str],
        period_days: int | None,
    ) -> FormVersion:
        """Publish a new form version (a version is never rewritten: 409 version_exists)."""
        policy = self._registry.policy(tenant)
        form = check_version(
            FormVersion(
                tenant=tenant,
                version=version,
                texts={
                    lang: FormText(str(t.get("title", "")), str(t.get("body", "")))
                    for lang, t in texts.items()
                },
                purposes=tuple(sorted({p.strip().lower() for p in purposes})),
                period_days=period_days,
                created_at=self._clock.now(),
            ),
            policy.purposes,
        )
        self._store.add_version(form)
        audit("form.published", tenant=tenant, source="forms")
        return form

    def settings(self, tenant: str) -> FormSettings:
        self._registry.policy(tenant)
        return self._store.settings(tenant)

    def set_age_of_consent(self, tenant: str, age: int) -> FormSettings:
        self._registry.policy(tenant)
        settings = self._store.set_age_of_consent(tenant, check_age_of_consent(age))
        audit("form.settings_changed", tenant=tenant, source="forms")
        return settings

    def version(self, tenant: str, version: str) -> FormVersion:
        found = self._store.version(tenant, version)
        if found is None:
            raise NotFound(f"form version {version} not found")
        return found

    def link(
        self,
        tenant: str,
        *,
        subject_id: str | None,
        event: str | None,
        days: int = 7,
        send: bool = True,
    ) -> IssuedLink:
        """A personal link (``subject_id``) or an event link (``event``): exactly one."""
        if bool(subject_id) == bool(event):
            raise ValidationFailed("give subject_id or event, not both", field="subject_id")
        if subject_id:
            return self.personal_link(tenant, subject_id, send=send)
        assert event is not None
        return self.event_link(tenant, event, days)

    def personal_link(self, tenant: str, subject_id: str, *, send: bool = True) -> IssuedLink:
        """A form link for one person, e-mailed to them (their guardian while a minor)."""
        self._current(tenant)
        subject = self._registry.subject(tenant, subject_id)
        now = self._clock.now()
        expires = now + timedelta(days=self._link_days)
        claims = LinkClaims(tenant, subject_id, _new_consent_id(), ACTION, int(expires.timestamp()))
        url = self._url(claims)
        sent_to = None
        if send:
            sent_to = self._mail_link(tenant, subject, url, expires)
        audit("form.link_issued", tenant=tenant, subject_id=subject_id, source="forms")
        return IssuedLink(url, expires, sent_to)

    def event_link(self, tenant: str, event: str, days: int) -> IssuedLink:
        """A form link anyone at an event may open (shown as a QR code); a new person each."""
        self._current(tenant)
        if not 1 <= days <= 90:
            raise ValidationFailed("days must be 1 to 90", field="days")
        expires = self._clock.now() + timedelta(days=days)
        claims = LinkClaims(tenant, "", EVENT_PREFIX + event, ACTION, int(expires.timestamp()))
        url = self._url(claims)
        audit("form.link_issued", tenant=tenant, source="forms")
        return IssuedLink(url, expires, None, qr_svg(url))

    # -- the signer ----------------------------------------------------------------
    def open(self, token: str) -> OpenForm:
        """The form a link opens; ``Forbidden`` (bad_link, link_expired) otherwise."""
        claims = self._signer.verify(token, ACTION, self._clock.now())
        settings = self._store.settings(claims.tenant)
        form = self._current(claims.tenant)
        subject = None
        if claims.subject_id:
            subject = self._registry.subject(claims.tenant, claims.subject_id)
            if self._already_signed(claims):
                raise Conflict("this form was signed already", code="already_signed")
        return OpenForm(
            claims.tenant,
            form,
            settings,
            subject,
            None if claims.subject_id else claims.consent_id.removeprefix(EVENT_PREFIX),
            token,
            datetime.fromtimestamp(claims.expires, self._clock.now().tzinfo),
            self._clock.now().date().isoformat(),
            self._language(claims.tenant),
        )

    def submit(
        self,
        token: str,
        values: Mapping[str, str],
        purposes: list[str],
        *,
        ip: str,
        language: str,
        photo: bytes | None = None,
    ) -> Signed:
        """Check the answers, create (or update) the person, the consent and its evidence."""
        now = self._clock.now()
        claims = self._signer.verify(token, ACTION, now)
        tenant = claims.tenant
        settings = self._store.settings(tenant)
        form = self._signed_version(tenant, values)
        answers = check_answers(
            values, purposes, form, now.date(), settings.age_of_consent, has_photo=bool(photo)
        )
        personal = bool(claims.subject_id)
        if personal and self._already_signed(claims):
            raise Conflict("this form was signed already", code="already_signed")
        subject_id = self._person(tenant, claims, answers, photo)
        expires_at = None if form.period_days is None else now + timedelta(days=form.period_days)
        consent_id = claims.consent_id if personal else _new_consent_id()
        evidence = self._evidence(
            tenant,
            form,
            language,
            answers,
            now,
            expires_at,
            ip,
            subject_id,
            consent_id,
            personal=personal,
            enrolled=bool(photo),
        )
        consent = self._registry.grant_consent(
            tenant,
            subject_id,
            answers.purposes,
            now,
            expires_at,
            source="form",
            signer=answers.signature,
            form_version=f"{form.version}/{language}",
            document=evidence,
            document_type="application/pdf",
            consent_id=consent_id,
            actor="form",
            age_of_consent=settings.age_of_consent,
            biometric_consent=answers.biometric_consent,
        )
        if answers.minor:
            self._remember_majority(
                tenant, subject_id, consent.consent_id, answers, expires_at, settings
            )
        count("FormsSigned")
        return self._receipt(tenant, subject_id, consent.consent_id, answers, expires_at, photo)

    def _receipt(
        self,
        tenant: str,
        subject_id: str,
        consent_id: str,
        answers: Answers,
        expires_at: datetime | None,
        photo: bytes | None,
    ) -> Signed:
        """What the thank-you page shows, with the stored evidence's hash."""
        view = self._registry.consent_view(tenant, subject_id, consent_id)
        return Signed(
            tenant,
            subject_id,
            consent_id,
            answers.purposes,
            expires_at,
            answers.minor,
            answers.guardian_name,
            bool(photo),
            view.evidence.document_sha256 or "" if view.evidence else "",
        )

    def _signed_version(self, tenant: str, values: Mapping[str, str]) -> FormVersion:
        """The form version the person saw (named in the answers), one of this tenant's."""
        version = (values.get("form_version") or "").strip()
        if not version:
            raise ValidationFailed("form_version is required", field="form_version")
        form = self._store.version(tenant, version)
        if form is None:
            raise ValidationFailed(
                "form_version is not a form of this tenant", field="form_version"
            )
        return form

    def _remember_majority(
        self,
        tenant: str,
        subject_id: str,
        consent_id: str,
        answers: Answers,
        expires_at: datetime | None,
        settings: FormSettings,
    ) -> None:
        """A guardian's consent outlasting the minority: ask the person when they come of age."""
        day = majority_day(answers.date_of_birth, settings.age_of_consent)
        if expires_at is None or day < expires_at.date():
            self._store.add_majority(MajorityDue(tenant, subject_id, consent_id, day.isoformat()))

    # -- coming of age (called by the daily reminder run) ------------------------------
    def ask_majority(self) -> int:
        """Ask each person who came of age to confirm their guardian's consent themselves."""
        now = self._clock.now()
        asked = 0
        for back in range(MAJORITY_LOOKBACK_DAYS, -1, -1):
            day = (now - timedelta(days=back)).date().isoformat()
            for due in self._store.majority_on(day):
                if not self._store.claim_majority(due):
                    continue
                try:
                    asked += int(self._ask(due, now))
                except NotFound:
                    continue  # the tenant or the person is gone: nothing to ask
                except DependencyFailed:
                    self._store.release_majority(due)  # the next daily run asks again
                    raise
        count("MajorityAsked", asked)
        return asked

    def _ask(self, due: MajorityDue, now: datetime) -> bool:
        subject = self._registry.subject(due.tenant, due.subject_id)
        view = self._registry.consent_view(due.tenant, due.subject_id, due.consent_id)
        if view.status != "valid":
            return False  # ended or withdrawn: nothing to confirm
        audit(
            "consent.majority_reached",
            tenant=due.tenant,
            subject_id=due.subject_id,
            consent_id=due.consent_id,
            source="forms",
        )
        if not subject.email or subject.email_unreachable:
            logger.info("no contact for coming of age", tenant=due.tenant)
            return False
        link = self.personal_link(due.tenant, due.subject_id, send=False)
        language = self._language(due.tenant)
        mail = MAILS[language]
        end = view.expires_at.date().isoformat() if view.expires_at else mail["until_withdrawn"]
        fields = {
            "name": subject.display_name,
            "guardian": subject.guardian.name if subject.guardian else "",
            "tenant": due.tenant,
            "end": end,
            "url": link.url,
        }
        self._send(subject.email, mail["majority_subject"], mail["majority_body"], fields, link.url)
        return True

    # -- internals -----------------------------------------------------------------------
    def _current(self, tenant: str) -> FormVersion:
        settings = self._store.settings(tenant)
        if settings.current is None:
            raise NotFound("this tenant has published no form yet")
        return self.version(tenant, settings.current)

    def _url(self, claims: LinkClaims) -> str:
        return f"{self._base}/form?token={self._signer.sign(claims)}"

    def _language(self, tenant: str) -> str:
        language = self._registry.policy(tenant).language
        return language if language in MAILS else "en"

    def _already_signed(self, claims: LinkClaims) -> bool:
        try:
            self._registry.consent_view(claims.tenant, claims.subject_id, claims.consent_id)
        except NotFound:
            return False
        return True

    def _mail_link(self, tenant: str, subject: Subject, url: str, expires: datetime) -> str | None:
        today = self._clock.now().date()
        minor = (subject.age_on(today) or 99) < self._store.settings(tenant).age_of_consent
        if minor and subject.guardian and subject.guardian.email:
            to, name, who = subject.guardian.email, subject.guardian.name, "guardian"
        elif subject.email and not subject.email_unreachable:
            to, name, who = subject.email, subject.display_name, "person"
        else:
            return None
        mail = MAILS[self._language(tenant)]
        fields = {"name": name, "tenant": tenant, "url": url, "until": expires.date().isoformat()}
        self._send(to, mail["link_subject"], mail["link_body"], fields, url)
        return who

    def _send(self, to: str, subject: str, body: str, fields: Mapping[str, Any], url: str) -> None:
        text = body.format(**fields)
        escaped = html.escape(url)
        page = html.escape(text).replace("\n", "<br>")
        page = page.replace(escaped, f'<a href="{escaped}">{escaped}</a>')
        try:
            self._mailer.send(Email(to, subject.format(**fields), text, page))
        except DependencyFailed:
            logger.warning("form mail not sent")
            raise

    def _person(
        self,
        tenant: str,
        claims: LinkClaims,
        answers: Answers,
        photo: bytes | None,
    ) -> str:
        """The signer's subject id: the link's person, or a new one (event links).

        A reference photo passes the enrolment quality gates before anything is
        written, so a refused photo leaves no half-made person behind.
        """
        guardian = (
            Guardian(answers.guardian_name, answers.guardian_email, "guardian")
            if answers.minor and answers.guardian_name
            else None
        )
        details: dict[str, Any] = {"date_of_birth": answers.date_of_birth, "guardian": guardian}
        if claims.subject_id:
            subject = self._registry.subject(tenant, claims.subject_id)
            if answers.email and not subject.email:
                details["email"] = answers.email
            if photo:
                # A photo comes only with the ticked consent to matching (domain/forms.py).
                self._registry.enrol_subject(
                    tenant,
                    subject.display_name,
                    [photo],
                    subject_id=subject.subject_id,
                    biometric_consent=answers.biometric_consent,
                )
            self._registry.update_subject(tenant, subject.subject_id, details)
            return subject.subject_id
        if photo:
            subject_id = self._registry.enrol_subject(
                tenant, answers.name, [photo], biometric_consent=answers.biometric_consent
            )
            self._registry.update_subject(tenant, subject_id, {**details, "email": answers.email})
            return subject_id
        return self._registry.create_subject(
            tenant,
            answers.name,
            email=answers.email,
            date_of_birth=answers.date_of_birth,
            guardian=guardian,
        ).subject_id

    def _evidence(
        self,
        tenant: str,
        form: FormVersion,
        language: str,
        answers: Answers,
        now: datetime,
        expires_at: datetime | None,
        ip: str,
        subject_id: str,
        consent_id: str,
        *,
        personal: bool,
        enrolled: bool,
    ) -> bytes:
        """The evidence PDF: the text as shown, the answers, when, and a hash of the IP."""
        text = form.text(language)
        ip_hash = ip_digest(self._hash_key(), ip)
        digest = hashlib.sha256(f"{text.title}\n{text.body}".encode()).hexdigest()
        yes = {True: "yes", False: "no"}
        lines = [
            f"Tenant: {tenant}",
            f"Form version: {form.version} ({language}), text SHA-256 {digest}",
            f"Signed at (UTC): {now.isoformat()}",
            f"Signer's IP address, HMAC-SHA256: {ip_hash}",
            f"Link: {'personal' if personal else 'event'}; subject {subject_id}; "
            f"consent {consent_id}",
            "",
            f"--- The text the signer read ({language}) ---",
            text.title,
            text.body,
            "",
            "--- Answers ---",
            f"Name: {answers.name}",
            f"E-mail: {answers.email or '-'}",
            f"Date of birth: {answers.date_of_birth.isoformat()} (age {answers.age})",
            f"Purposes agreed: {', '.join(answers.purposes)}",
            f"Valid from: {now.isoformat()}",
            f"Valid until: {expires_at.isoformat() if expires_at else 'until withdrawn'}",
            f"Minor (guardian signs): {yes[answers.minor]}",
        ]
        if answers.minor:
            lines += [
                f"Guardian: {answers.guardian_name}",
                f"Guardian e-mail: {answers.guardian_email or '-'}",
            ]
        lines += [
            f"Typed signature: {answers.signature}",
            f"Drawn signature given: {yes[answers.drawn_signature]}",
            "Agreed to the text above: yes",
            f"Consent to biometric face matching (GDPR Art. 9(2)(a)): "
            f"{yes[answers.biometric_consent]}",
            f"Reference photo enrolled: {yes[enrolled]}",
        ]
        return render(
            "Quitclaim - evidence of consent", lines, created=now.strftime("D:%Y%m%d%H%M%SZ")
        )


def _new_consent_id() -> str:
    from quitclaim.usecases.ledger import new_id

    return new_id("con")
