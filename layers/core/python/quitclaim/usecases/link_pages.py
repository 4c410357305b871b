"""What the person-facing pages of an e-mailed link show.

The pages (``api/person_pages.py``) render what this returns; the checks and
the change itself are ``Reminders.check_link`` / ``follow_link``, unchanged,
so a page and a JSON client get the same answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from quitclaim.domain.errors import QuitclaimError
from quitclaim.domain.models import Consent
from quitclaim.domain.ports import Clock, ConsentRepository, SubjectRepository
from quitclaim.usecases.notices import subject_language
from quitclaim.usecases.reminders import LinkSigner, Reminders


@dataclass(frozen=True, slots=True)
class LinkView:
    """A link's consent as its page shows it (no names: the page may be shared)."""

    action: str
    tenant: str
    purposes: tuple[str, ...]
    expires_at: datetime | None  # the consent's end now (after a renewal: the new one)
    renews_until: datetime | None = None  # renewal links: the end a renewal gives
    language: str | None = None  # the person's own, where stored
    contact: str | None = None


@dataclass(frozen=True, slots=True)
class LinkProblem:
    """Why a link cannot act, and whom to ask (None where the link is forged)."""

    code: str  # bad_link | link_expired | link_used | already_withdrawn | ...
    status: int
    contact: str | None = None
    tenant: str | None = None
    language: str | None = None


class LinkPages:
    def __init__(
        self,
        *,
        reminders: Reminders,
        signer: LinkSigner,
        consents: ConsentRepository,
        subjects: SubjectRepository,
        clock: Clock,
        contact: Callable[[str], str | None],
        renewal_days: int = 365,
    ) -> None:
        self._reminders = reminders
        self._signer = signer
        self._consents = consents
        self._subjects = subjects
        self._clock = clock
        self._contact = contact
        self._renewal = timedelta(days=renewal_days)

    def describe(self, action: str, token: str) -> LinkView:
        """What confirming would change (raises what ``check_link`` raises)."""
        claims = self._reminders.check_link(action, token)
        consent = self._consents.get(claims.tenant, claims.subject_id, claims.consent_id)
        if consent is None:  # check_link found it a moment ago
            raise QuitclaimError("the consent vanished")
        renews = None
        if action == "renew":
            renews = max(self._clock.now(), consent.expires_at or self._clock.now()) + self._renewal
        return self._view(action, consent, renews)

    def confirm(self, action: str, token: str) -> LinkView:
        """Act on the link (raises what ``follow_link`` raises)."""
        return self._view(action, self._reminders.follow_link(action, token), None)

    def problem(self, token: str, exc: QuitclaimError, status: int) -> LinkProblem:
        """Whom to contact about a link that cannot act (nobody named for a forged one)."""
        tenant = subject_id = None
        for action in ("renew", "withdraw"):
            try:
                claims = self._signer.verify(token, action, self._clock.now(), check_expiry=False)
            except QuitclaimError:
                continue
            tenant, subject_id = claims.tenant, claims.subject_id
            break
        if tenant is None or subject_id is None:
            return LinkProblem(exc.code, status)
        subject = self._subjects.get(tenant, subject_id)
        return LinkProblem(
            exc.code, status, self._contact(tenant), tenant, subject_language(subject)
        )

    def _view(self, action: str, consent: Consent, renews: datetime | None) -> LinkView:
        subject = self._subjects.get(consent.tenant, consent.subject_id)
        return LinkView(
            action,
            consent.tenant,
            tuple(sorted(consent.purposes)),
            consent.expires_at,
            renews,
            subject_language(subject),
            self._contact(consent.tenant),
        )
