"""Reminder rules and signed links, with in-memory ports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from quitclaim.domain.errors import DependencyFailed, Forbidden
from quitclaim.domain.models import Consent, TenantPolicy
from quitclaim.domain.ports import Email
from quitclaim.domain.registry import Guardian, Subject
from quitclaim.usecases.reminders import LinkClaims, LinkSigner, Reminders
from tests.unit.fakes import FakeTenants, FixedClock

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def signer() -> LinkSigner:
    return LinkSigner(lambda: b"k" * 32)


def claims(action: str = "renew", expires: datetime = NOW + timedelta(days=1)) -> LinkClaims:
    return LinkClaims("t1", "sub_a", "con_1", action, int(expires.timestamp()))


def test_a_signed_link_verifies() -> None:
    token = signer().sign(claims())
    assert signer().verify(token, "renew", NOW) == claims()


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature
        lambda t: "x" + t,  # payload
        lambda t: t.split(".")[0],  # no signature
        lambda t: "",
    ],
)
def test_a_tampered_link_is_refused(mangle: Any) -> None:
    with pytest.raises(Forbidden) as err:
        signer().verify(mangle(signer().sign(claims())), "renew", NOW)
    assert err.value.code == "bad_link"


def test_a_link_for_another_action_or_key_is_refused() -> None:
    token = signer().sign(claims("renew"))
    with pytest.raises(Forbidden):
        signer().verify(token, "withdraw", NOW)
    with pytest.raises(Forbidden):
        LinkSigner(lambda: b"other" * 8).verify(token, "renew", NOW)


def test_an_expired_link_is_refused() -> None:
    token = signer().sign(claims(expires=NOW - timedelta(seconds=1)))
    with pytest.raises(Forbidden) as err:
        signer().verify(token, "renew", NOW)
    assert err.value.code == "link_expired"


@dataclass
class Ledger:
    """Consents with an expiry index and reminder claims."""

    consents: list[Consent] = field(default_factory=list)
    sent: dict[str, set[str]] = field(default_factory=dict)

    def expiring_on(self, day: str, *, until: datetime | None = None) -> list[Any]:
        return [
            (c, "granted", frozenset(self.sent.get(c.consent_id, set())))
            for c in self.consents
            if c.expires_at and c.expires_at.date().isoformat() == day
        ]

    def claim_reminder(self, consent: Consent, offsets: Sequence[str]) -> bool:
        have = self.sent.setdefault(consent.consent_id, set())
        if have & set(offsets):
            return False
        have.update(offsets)
        return True

    def release_reminder(self, consent: Consent, offsets: Sequence[str]) -> None:
        self.sent[consent.consent_id] -= set(offsets)


@dataclass
class People:
    subject: Subject

    def get(self, tenant: str, subject_id: str) -> Subject | None:
        return self.subject


@dataclass
class Outbox:
    emails: list[Email] = field(default_factory=list)
    fail: bool = False

    def send(self, email: Email) -> None:
        if self.fail:
            raise DependencyFailed("SES send failed: Throttling")
        self.emails.append(email)


def world(
    expires_in_days: float, subject: Subject | None = None
) -> tuple[Reminders, Outbox, FixedClock]:
    consent = Consent(
        "t1",
        "sub_a",
        "con_1",
        frozenset({"web"}),
        NOW - timedelta(days=300),
        NOW + timedelta(days=expires_in_days),
    )
    clock = FixedClock(NOW)
    outbox = Outbox()
    person = subject or Subject("t1", "sub_a", "Ann Example", email="ann@example.org")
    reminders = Reminders(
        consents=Ledger([consent]),  # type: ignore[arg-type]
        subjects=People(person),  # type: ignore[arg-type]
        tenants=FakeTenants({"t1": TenantPolicy("t1", language="nl")}),
        registry=None,  # type: ignore[arg-type]
        mailer=outbox,
        signer=signer(),
        clock=clock,
        base_url="https://qc.example/",
    )
    return reminders, outbox, clock


def test_each_reminder_is_sent_once_across_daily_runs() -> None:
    # Given a consent expiring in 31 days, and a daily run for 31 days
    reminders, outbox, clock = world(31)
    days_sent = []
    for day in range(31):
        clock.at = NOW + timedelta(days=day)
        for _ in range(2):  # the same day run twice: nothing doubles
            if reminders.send_due():
                days_sent.append(day)
    # Then exactly the 30-, 7- and 1-day reminders went out, on those days
    assert days_sent == [1, 24, 30]
    assert len(outbox.emails) == 3
    # In the tenant's language, with both links
    assert outbox.emails[0].subject.startswith("Uw portrettoestemming verloopt")
    assert "/links/renew?token=" in outbox.emails[0].text
    assert "/links/withdraw?token=" in outbox.emails[0].text


def test_a_late_run_sends_one_reminder_not_three() -> None:
    reminders, outbox, _ = world(5)
    assert reminders.send_due() == 1
    assert reminders.send_due() == 0
    assert len(outbox.emails) == 1


def test_a_failed_send_is_retried_by_the_next_run() -> None:
    reminders, outbox, _ = world(7)
    outbox.fail = True
    with pytest.raises(DependencyFailed):
        reminders.send_due()
    outbox.fail = False
    assert reminders.send_due() == 1


def test_a_minor_is_reached_through_the_guardian() -> None:
    child = Subject(
        "t1",
        "sub_a",
        "Kid",
        email="kid@example.org",
        date_of_birth=NOW.date().replace(year=2016),
        guardian=Guardian("Parent P", "parent@example.org"),
    )
    reminders, outbox, _ = world(1, child)
    reminders.send_due()
    assert [e.to for e in outbox.emails] == ["parent@example.org"]
    assert "Parent P" in outbox.emails[0].text
