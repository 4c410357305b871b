"""The hosted form's rules, its evidence PDF, and its page parsing (no network)."""

from __future__ import annotations

import re
from datetime import date
from types import SimpleNamespace
from typing import Any

import pytest

from quitclaim.api.form_pages import form_page, language, parse
from quitclaim.api.routing import Posted
from quitclaim.domain.errors import DependencyFailed, NotFound, ValidationFailed
from quitclaim.domain.forms import (
    FormSettings,
    FormText,
    FormVersion,
    MajorityDue,
    check_age_of_consent,
    check_answers,
    check_version,
    majority_day,
)
from quitclaim.domain.models import TenantPolicy
from quitclaim.domain.pdf import render
from quitclaim.domain.ports import Email
from quitclaim.domain.registry import Guardian, Subject
from quitclaim.usecases.form_submissions import Forms, OpenForm, ip_digest, qr_svg
from quitclaim.usecases.reminders import LinkSigner
from tests.unit.fakes import FixedClock

TODAY = date(2026, 11, 26)
FORM = FormVersion(
    "t1",
    "v1",
    {
        "en": FormText("Portrait consent", "You allow us to publish photos of you."),
        "nl": FormText("Toestemming", "U staat toe..."),
    },
    ("print", "web"),
    365,
)
ADULT = {
    "name": "Ann Example",
    "date_of_birth": "1990-05-01",
    "signature": "ann example",
    "agree": "on",
}
MINOR = {
    "name": "Kim Young",
    "date_of_birth": "2014-01-10",  # 12 on TODAY
    "guardian_name": "Pat Young",
    "guardian_email": "pat@example.org",
    "guardian_signature": "Pat Young",
    "agree": "on",
}


def _refused(values: dict[str, str], purposes: list[str] | None = None, **kw: object) -> str:
    with pytest.raises(ValidationFailed) as caught:
        check_answers(values, ["web"] if purposes is None else purposes, FORM, TODAY, 16, **kw)  # type: ignore[arg-type]
    return caught.value.field


def test_an_adult_signs_with_their_own_typed_name() -> None:
    answers = check_answers(ADULT, ["web", "print"], FORM, TODAY, 16)
    assert (answers.minor, answers.age, answers.purposes) == (False, 36, ("print", "web"))
    assert answers.guardian_name is None
    assert _refused({**ADULT, "signature": "Someone Else"}) == "signature"
    assert _refused({**ADULT, "agree": ""}) == "agree"
    assert _refused(ADULT, purposes=[]) == "purposes"
    assert _refused(ADULT, purposes=["billboard"]) == "purposes"
    assert _refused({**ADULT, "date_of_birth": "2030-01-01"}) == "date_of_birth"


@pytest.mark.parametrize("missing", ["guardian_name", "guardian_signature"])
def test_a_minor_without_a_guardian_is_refused_naming_the_field(missing: str) -> None:
    # Given a 12-year-old's answers without the guardian's name or signature
    # Then the server refuses, naming that field (not only the page's `required`)
    assert _refused({**MINOR, missing: ""}) == missing
    # And an adult's typed signature does not stand in for a guardian's
    assert _refused({**MINOR, "guardian_signature": "", "signature": "Kim Young"}) == (
        "guardian_signature"
    )


def test_a_minor_with_a_guardian_is_signed_by_the_guardian() -> None:
    answers = check_answers(MINOR, ["web"], FORM, TODAY, 16)
    assert answers.minor and answers.age == 12
    assert (answers.signature, answers.guardian_name) == ("Pat Young", "Pat Young")
    assert _refused({**MINOR, "guardian_signature": "Kim Young"}) == "guardian_signature"


def test_the_age_of_consent_is_the_tenants_between_13_and_16() -> None:
    fourteen = {**MINOR, "date_of_birth": "2012-06-01", "signature": "Kim Young"}
    assert not check_answers(fourteen, ["web"], FORM, TODAY, 13).minor
    assert check_answers(fourteen, ["web"], FORM, TODAY, 16).minor
    for wrong in (12, 17):
        with pytest.raises(ValidationFailed):
            check_age_of_consent(wrong)
    assert majority_day(date(2014, 1, 10), 16) == date(2030, 1, 10)
    assert majority_day(date(2012, 2, 29), 13) == date(2025, 3, 1)


def test_a_photo_needs_the_separate_biometric_consent() -> None:
    assert _refused(ADULT, has_photo=True) == "biometric_consent"
    answers = check_answers(
        {**ADULT, "biometric_consent": "on"}, ["web"], FORM, TODAY, 16, has_photo=True
    )
    assert answers.biometric_consent


def test_a_version_names_only_the_tenants_purposes_and_languages() -> None:
    assert check_version(FORM, frozenset({"web", "print"})) is FORM
    with pytest.raises(ValidationFailed) as caught:
        check_version(FORM, frozenset({"web"}))
    assert caught.value.field == "purposes"
    with pytest.raises(ValidationFailed) as caught:
        check_version(
            FormVersion("t1", "v1", {"de": FormText("a", "b")}, ("web",), 1), frozenset({"web"})
        )
    assert caught.value.field == "texts.de"


def test_the_evidence_pdf_is_well_formed() -> None:
    # Given a long text with characters PDF strings must escape
    lines = ["Name: Ann (Example) \\ Zoë", *[f"line {n} " + "x" * 150 for n in range(120)]]
    pdf = render("Evidence", lines, created="D:20261126120000Z")
    # Then it is a PDF whose cross-reference table points at each object
    assert pdf.startswith(b"%PDF-1.4") and pdf.endswith(b"%%EOF\n")
    xref = int(re.search(rb"startxref\n(\d+)", pdf).group(1))  # type: ignore[union-attr]
    assert pdf[xref:].startswith(b"xref")
    offsets = [int(o) for o in re.findall(rb"(\d{10}) 00000 n", pdf)]
    for number, offset in enumerate(offsets, start=1):
        assert pdf[offset:].startswith(f"{number} 0 obj".encode())
    assert b"Ann \\(Example\\) \\\\ Zo\xeb" in pdf  # WinAnsi, escaped
    assert pdf.count(b"/Type /Page ") >= 3  # wrapped onto several pages


def test_the_ip_is_kept_only_as_a_keyed_hash() -> None:
    digest = ip_digest(b"k" * 32, "203.0.113.9")
    assert "203.0.113.9" not in digest and len(digest) == 64
    assert digest != ip_digest(b"j" * 32, "203.0.113.9")


def test_an_event_link_is_a_qr_code_in_svg() -> None:
    svg = qr_svg("https://qc.example/form?token=abc.def")
    assert svg.lstrip().startswith("<svg") and "<path" in svg


def test_a_posted_form_is_read_from_either_encoding() -> None:
    urlencoded = Posted(
        b"name=Ann&purposes=web&purposes=print&agree=on&evil=x",
        "application/x-www-form-urlencoded",
        "1.2.3.4",
    )
    values, purposes, photo = parse(urlencoded)
    assert values == {"name": "Ann", "agree": "on"} and purposes == ["web", "print"]
    assert photo is None
    boundary = "XyZ"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nZoë\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="purposes"\r\n\r\nweb\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; filename="a.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + b"\xff\xd8\xff\x00\r\n"
        + f"--{boundary}--\r\n".encode()
    )
    values, purposes, photo = parse(
        Posted(body, f"multipart/form-data; boundary={boundary}", "1.2.3.4")
    )
    assert values == {"name": "Zoë"} and purposes == ["web"] and photo == b"\xff\xd8\xff\x00"
    with pytest.raises(ValidationFailed):
        parse(Posted(b"{}", "application/json", ""))


def test_the_page_escapes_what_it_shows_and_names_the_refused_field() -> None:
    opened = OpenForm("t1", FORM, FormSettings("t1"), None, "fair", "tok" * 10, None, "2026-11-26")
    error = ValidationFailed("guardian_name is required", field="guardian_name")
    reply = form_page(
        opened, "en", values={"name": "<script>alert(1)</script>"}, error=error, status=400
    )
    page = reply.payload.body
    assert reply.status == 400
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'id="guardian_name-error"' in page and 'aria-invalid="true"' in page
    assert "form-action 'self'" in reply.payload.headers["Content-Security-Policy"]
    assert language(None, "nl-NL,nl;q=0.9,en;q=0.8", "en") == "nl"
    assert language("en", "nl-NL", "nl") == "en"


class _Store:
    """The FormStore port in memory (only what coming of age uses)."""

    def __init__(self, due: MajorityDue) -> None:
        self.due = [due]
        self.asked: set[str] = set()

    def settings(self, tenant: str) -> FormSettings:
        return FormSettings(tenant, current="v1", versions=("v1",))

    def version(self, tenant: str, version: str) -> FormVersion:
        return FORM

    def majority_on(self, day: str) -> list[MajorityDue]:
        return [d for d in self.due if d.day == day and d.consent_id not in self.asked]

    def claim_majority(self, due: MajorityDue) -> bool:
        if due.consent_id in self.asked:
            return False
        self.asked.add(due.consent_id)
        return True

    def release_majority(self, due: MajorityDue) -> None:
        self.asked.discard(due.consent_id)


class _Registry:
    def __init__(self, gone: bool = False) -> None:
        self.gone = gone

    def subject(self, tenant: str, subject_id: str) -> Subject:
        if self.gone:
            raise NotFound("subject gone")
        return Subject(
            tenant, subject_id, "Sam", email="sam@example.org", guardian=Guardian("Robin")
        )

    def consent_view(self, tenant: str, subject_id: str, consent_id: str) -> Any:
        return SimpleNamespace(status="valid", expires_at=None)

    def policy(self, tenant: str) -> TenantPolicy:
        return TenantPolicy(tenant, language="nl")


class _Mailer:
    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.sent: list[Email] = []

    def send(self, email: Email) -> None:
        if self.fail:
            raise DependencyFailed("SES send failed: Throttling")
        self.sent.append(email)


def _forms(store: _Store, registry: _Registry, mailer: _Mailer) -> Forms:
    return Forms(
        registry=registry,  # type: ignore[arg-type]
        store=store,  # type: ignore[arg-type]
        signer=LinkSigner(lambda: b"k" * 32),
        mailer=mailer,
        clock=FixedClock(),
        base_url="https://qc.example",
        hash_key=lambda: b"k" * 32,
    )


def test_coming_of_age_is_asked_once_and_again_after_a_failed_mail() -> None:
    # Given a guardian's consent whose person came of age yesterday
    due = MajorityDue("t1", "sub_a", "con_a", "2026-11-25")
    store = _Store(due)
    # When the mail cannot be sent
    with pytest.raises(DependencyFailed):
        _forms(store, _Registry(), _Mailer(fail=True)).ask_majority()
    # Then the ask is released for the next run, which sends it, in the tenant's language
    mailer = _Mailer(fail=False)
    assert _forms(store, _Registry(), mailer).ask_majority() == 1
    [mail] = mailer.sent
    assert mail.to == "sam@example.org" and "Robin" in mail.text and "/form?token=" in mail.text
    assert mail.subject == "Bevestig uw portrettoestemming zelf"
    # And a later run does not ask again
    assert _forms(store, _Registry(), mailer).ask_majority() == 0


def test_coming_of_age_skips_a_person_who_is_gone() -> None:
    store = _Store(MajorityDue("t1", "sub_a", "con_a", "2026-11-26"))
    assert _forms(store, _Registry(gone=True), _Mailer(fail=False)).ask_majority() == 0
