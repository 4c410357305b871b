"""Mail and notices to people."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from quitclaim.domain.models import Consent


@dataclass(frozen=True, slots=True)
class Email:
    to: str
    subject: str
    text: str
    html: str
    # Ids only (SES message tags): a bounce or complaint names them back
    # (usecases/mail_feedback.py), so it can be recorded on the subject.
    tags: Mapping[str, str] = field(default_factory=dict)


class Mailer(Protocol):
    def send(self, email: Email) -> None:
        """Send one e-mail; ``DependencyFailed`` when the provider refuses."""
        ...


class ConsentNotifier(Protocol):
    """Tells the person about their own consent (a confirmation, a receipt).

    Never raises for a failed send: the consent change it reports stands.
    """

    def granted(self, consent: Consent) -> bool: ...

    def changed(self, consent: Consent, event: str) -> bool: ...
