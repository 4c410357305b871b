"""The person's e-mails, pages and own requests, with in-memory ports."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

import pytest

from quitclaim.api import person_pages
from quitclaim.domain.errors import DependencyFailed, Forbidden, ValidationFailed
from quitclaim.domain.models import Consent, TenantPolicy
from quitclaim.domain.person_requests import PersonRequest, checked_request, one_month_after
from quitclaim.domain.ports import Email
from quitclaim.domain.registry import Guardian, Subject
from quitclaim.domain.rights import AccessExport
from quitclaim.usecases.handle_person_requests import PersonRequests
from quitclaim.usecases.notices import OPEN_ENDED, ConsentMail
from quitclaim.usecases.reminders import LinkSigner
from tests.unit.fakes import FakeTenants, FixedClock

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
SIGNER = LinkSigner(lambda: b"k" * 32)


@dataclass
class Outbox:
    sent: list[Email] = field(default_factory=list)
    fail: bool = False

    def send(self, email: Email) -> None:
        if self.fail:
            raise DependencyFailed("SES send failed: Throttling")
        self.sent.append(email)


@dataclass
class People:
    subjects: dict[str, Subject] = field(default_factory=dict)

    def get(self, tenant: str, subject_id: str) -> Subject | None:
        return self.subjects.get(subject_id)


def _consent(expires: datetime | None = NOW + timedelta(days=90)) -> Consent:
    return Consent("t1", "sub_a", "con_1", frozenset({"web", "print"}), NOW, expires)


def _mail(
    subject: Subject, language: str = "en", outbox: Outbox | None = None
) -> tuple[ConsentMail, Outbox]:
    box = outbox or Outbox()
    tenants = FakeTenants({"t1": TenantPolicy(tenant="t1", language=language)})
    mail = ConsentMail(
        subjects=People({subject.subject_id: subject}),  # type: ignore[arg-type]
        tenants=tenants,  # type: ignore[arg-type]
        mailer=box,
        signer=SIGNER,
        clock=FixedClock(NOW),
        base_url="https://q.example/",
        contact=lambda tenant: "dpo@t1.example",
    )
    return mail, box


ADULT = Subject("t1", "sub_a", "Ada Adult", email="ada@example.org")


# ---------------------------------------------------------------- the person's e-mails


def test_a_grant_confirmation_carries_a_withdrawal_link_valid_until_the_consent_ends() -> None:
    mail, box = _mail(ADULT)
    consent = _consent()
    assert mail.granted(consent)
    [sent] = box.sent
    assert sent.to == "ada@example.org" and "print, web" in sent.text
    token = sent.text.split("/links/withdraw?token=")[1].split()[0]
    claims = SIGNER.verify(token, "withdraw", NOW)
    assert (claims.consent_id, claims.expires) == ("con_1", int(consent.expires_at.timestamp()))  # type: ignore[union-attr]
    assert f'<a href="https://q.example/links/withdraw?token={token}">' in sent.html


def test_an_open_ended_consent_gets_a_link_that_does_not_run_out() -> None:
    mail, box = _mail(ADULT)
    mail.granted(_consent(expires=None))
    token = box.sent[0].text.split("token=")[1].split()[0]
    claims = SIGNER.verify(token, "withdraw", NOW + timedelta(days=3650))
    assert claims.expires == int((NOW + OPEN_ENDED).timestamp())
    assert "with no end date" in box.sent[0].text


def test_a_minor_s_mails_go_to_the_guardian_in_the_tenant_s_language() -> None:
    minor = replace(
        ADULT,
        date_of_birth=date(2015, 1, 1),
        guardian=Guardian("Gus Guardian", "gus@example.org", "parent"),
    )
    mail, box = _mail(minor, language="nl")
    mail.changed(_consent(), "revoked")
    [sent] = box.sent
    assert sent.to == "gus@example.org"
    assert sent.text.startswith("Beste Gus Guardian") and "dpo@t1.example" in sent.text


def test_no_mail_without_a_reachable_address_and_a_failed_send_is_swallowed() -> None:
    mail, box = _mail(replace(ADULT, email_unreachable=True))
    assert not mail.granted(_consent()) and box.sent == []
    failing, _ = _mail(ADULT, outbox=Outbox(fail=True))
    assert failing.granted(_consent()) is False  # the grant stands; nothing raised
    mail, box = _mail(ADULT)
    assert not mail.changed(_consent(), "expired") and box.sent == []
    assert mail.changed(_consent(), "renewed") and "renewed" in box.sent[0].subject


# ---------------------------------------------------------------- the pages


HOSTILE = '<script>alert(1)</script>"onmouseover="x'


def test_every_value_on_a_page_is_escaped() -> None:
    page = person_pages.link_confirm(
        "en",
        "withdraw",
        HOSTILE,
        tenant=HOSTILE,
        purposes=(HOSTILE,),
        expires_at=None,
        renews_until=None,
        contact=HOSTILE + "@x.org",
    )
    assert "<script>" not in page.body and 'onmouseover="x' not in page.body
    assert "&lt;script&gt;" in page.body
    assert "script-src" not in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    problem = person_pages.link_problem("nl", HOSTILE, HOSTILE)
    assert "<script>" not in problem.body and "Er ging iets mis" in problem.body
    form = person_pages.request_form("en", "t1", email=HOSTILE, error="email")
    assert "<script>" not in form.body and 'role="alert"' in form.body


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),
        ("application/json", False),
        ("", False),
        (None, False),
        ("*/*", False),
        ("application/json, text/html;q=0.5", False),
        ("text/html;q=0", False),
    ],
)
def test_a_browser_gets_a_page_and_an_api_client_json(accept: str | None, html: bool) -> None:
    assert person_pages.wants_html(accept) is html


@pytest.mark.parametrize(
    ("stored", "accept", "lang"),
    [
        ("nl", "en-GB,en", "nl"),
        (None, "nl-NL,nl;q=0.9,en;q=0.8", "nl"),
        (None, "de-DE,de;q=0.9,en;q=0.5,nl;q=0.4", "en"),
        (None, "fr-FR", "en"),
        (None, None, "en"),
        (None, "en;q=0.2,nl;q=0.8", "nl"),
    ],
)
def test_the_page_language(stored: str | None, accept: str | None, lang: str) -> None:
    assert person_pages.pick_language(stored, accept) == lang


# ---------------------------------------------------------------- requests


@dataclass
class Requests:
    items: dict[str, PersonRequest] = field(default_factory=dict)
    due: dict[tuple[str, str, str, int], bool] = field(default_factory=dict)
    sweeps: set[tuple[str, str, str, str]] = field(default_factory=set)

    def create(self, request: PersonRequest) -> None:
        assert request.request_id not in self.items
        self.items[request.request_id] = request

    def get(self, tenant: str, request_id: str) -> PersonRequest | None:
        found = self.items.get(request_id)
        return found if found is not None and found.tenant == tenant else None

    def mark_verified(self, request: PersonRequest) -> bool:
        if self.items[request.request_id].status != "unverified":
            return False
        self.items[request.request_id] = request
        return True

    def update(self, request: PersonRequest) -> None:
        self.items[request.request_id] = request

    def verified(self, tenant: str) -> list[PersonRequest]:
        return [r for r in self.items.values() if r.tenant == tenant and r.status != "unverified"]

    def add_reminder(self, day: str, tenant: str, request_id: str, days_before: int) -> None:
        self.due[(day, tenant, request_id, days_before)] = False

    def reminders_on(self, day: str) -> list[tuple[str, str, int]]:
        return [(t, r, n) for (d, t, r, n), sent in self.due.items() if d == day and not sent]

    def claim_reminder(self, day: str, tenant: str, request_id: str, days_before: int) -> bool:
        if self.due[(day, tenant, request_id, days_before)]:
            return False
        self.due[(day, tenant, request_id, days_before)] = True
        return True

    def release_reminder(self, day: str, tenant: str, request_id: str, days_before: int) -> None:
        self.due[(day, tenant, request_id, days_before)] = False

    def delete(self, tenant: str, request_id: str) -> None:
        self.items.pop(request_id, None)

    def add_sweep(self, day: str, tenant: str, request_id: str, what: str) -> None:
        self.sweeps.add((day, tenant, request_id, what))

    def sweeps_on(self, day: str) -> list[tuple[str, str, str]]:
        return [(t, r, w) for (d, t, r, w) in self.sweeps if d == day]

    def drop_sweep(self, day: str, tenant: str, request_id: str, what: str) -> None:
        self.sweeps.discard((day, tenant, request_id, what))


class Spy:
    """The subjects lookup; ``armed`` makes any call fail the test."""

    def __init__(self) -> None:
        self.armed = True
        self.calls: list[tuple[str, str]] = []

    def __call__(self, tenant: str, email: str) -> list[str]:
        if self.armed:
            raise AssertionError("the subjects were read before the address was verified")
        self.calls.append((tenant, email))
        return ["sub_a"] if email == "ada@example.org" else []


def _service(clock: FixedClock) -> tuple[PersonRequests, Requests, Outbox, Spy]:
    store, box, spy = Requests(), Outbox(), Spy()

    def export(tenant: str, subject_id: str) -> AccessExport:
        return AccessExport("req_1", subject_id, f"{subject_id}.zip", b"PK", "00", {})

    class Links:
        def publish(self, tenant: str, request_id: str, filename: str, data: bytes) -> str:
            return f"https://s3.example/{tenant}/{request_id}/{filename}?X-Amz-Expires=604800"

        def remove(self, tenant: str, request_id: str) -> int:
            return 0

    service = PersonRequests(
        store=store,
        tenants=FakeTenants({"t1": TenantPolicy(tenant="t1")}),  # type: ignore[arg-type]
        find_subjects=spy,
        export=export,
        links=Links(),
        mailer=box,
        signer=SIGNER,
        clock=clock,
        base_url="https://q.example",
        contact=lambda tenant: "dpo@t1.example",
    )
    return service, store, box, spy


def _token(email: Email) -> str:
    return email.text.split("verify?token=")[1].split()[0]


def test_a_request_reads_nothing_about_the_address_until_it_is_verified() -> None:
    clock = FixedClock(NOW)
    service, _, box, spy = _service(clock)
    # When a known and an unknown address ask / Then the spy was never called
    service.submit("t1", "Ada@Example.org ", "access", "en")
    service.submit("t1", "nobody@example.org", "access", "en")
    assert [e.to for e in box.sent] == ["ada@example.org", "nobody@example.org"]
    assert box.sent[0].text.replace(_token(box.sent[0]), "") == box.sent[1].text.replace(
        _token(box.sent[1]), ""
    )
    # And checking the link (a mail scanner) reads nothing either
    assert service.pending("t1", _token(box.sent[0])).status == "unverified"
    # When the owner verifies
    spy.armed = False
    done = service.verify("t1", _token(box.sent[0]))
    # Then the lookup happens, the export link is given and mailed
    assert spy.calls == [("t1", "ada@example.org")]
    assert done.request.status == "answered" and len(done.downloads) == 1
    assert done.downloads[0] in box.sent[-1].text
    # And a second verification changes nothing
    assert service.verify("t1", _token(box.sent[0])).already


def test_an_erasure_gets_a_one_month_deadline_and_two_officer_reminders() -> None:
    clock = FixedClock(NOW)
    service, _, box, spy = _service(clock)
    service.submit("t1", "ada@example.org", "erasure", "nl")
    assert "Bevestig" in box.sent[0].subject
    spy.armed = False
    done = service.verify("t1", _token(box.sent[0]))
    assert done.request.status == "open" and done.downloads == ()
    assert done.request.deadline == datetime(2026, 12, 26, 12, tzinfo=UTC)
    sent = []
    for day in range(0, 31):
        clock.at = NOW + timedelta(days=day)
        before = len(box.sent)
        service.remind_officers()
        sent += [(day, e.subject) for e in box.sent[before:]]
    assert sent == [
        (23, "Erasure request due in 7 days (t1)"),
        (28, "Erasure request due in 2 days (t1)"),
    ]
    assert all("ada@example.org" not in e.text for e in box.sent[2:])


def test_bad_requests_and_links_are_refused() -> None:
    service, _, _, _ = _service(FixedClock(NOW))
    with pytest.raises(ValidationFailed) as err:
        service.submit("t1", "not an address", "access", "en")
    assert err.value.field == "email"
    with pytest.raises(ValidationFailed) as err:
        service.submit("t1", "a@example.org", "delete-everything", "en")
    assert err.value.field == "kind"
    with pytest.raises(Forbidden):
        service.pending("t1", "x" * 20 + ".y")


def test_one_month_after_keeps_the_day_or_takes_the_month_s_last() -> None:
    assert one_month_after(datetime(2026, 1, 31, tzinfo=UTC)) == datetime(2026, 2, 28, tzinfo=UTC)
    assert one_month_after(datetime(2026, 12, 5, tzinfo=UTC)) == datetime(2027, 1, 5, tzinfo=UTC)
    assert checked_request(" A@B.example ", "erasure") == ("a@b.example", "erasure")
