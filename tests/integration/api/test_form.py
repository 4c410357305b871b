"""The hosted quitclaim form on the local stack, over real HTTP, as a browser posts it.

An officer publishes a form version and issues links; people sign (an adult
from an event link, minors from personal links); the consent, its evidence PDF
(stored and hashed like an uploaded document), the access export, the
guardian's reminders and the coming-of-age e-mail are checked on the stack.
"""

from __future__ import annotations

import base64
import io
import json
import re
import zipfile
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import pytest

from quitclaim import bootstrap
from quitclaim.bootstrap import registry_service, reminders_service
from quitclaim.usecases.limits import PublicLimits
from tests.conftest import DEMO_NOW
from tests.integration.api.conftest import (
    HttpApi,
    Reply,
    Tenant,
    assert_error,
    make_tenant,
    photo,
)

pytestmark = pytest.mark.integration
TENANT = "api-form"
TEXTS = {
    "en": {"title": "Portrait consent", "body": "You allow us to publish photographs of you."},
    "nl": {"title": "Portrettoestemming", "body": "U staat ons toe foto's van u te publiceren."},
}
FORM = "application/x-www-form-urlencoded"


@pytest.fixture(scope="module")
def tenant(local_stack: Any, http_api: HttpApi) -> Tenant:
    # Given a tenant that published form version v1 (purposes web and print, one year)
    found = make_tenant(TENANT)
    reply = http_api.call(
        "POST",
        "/forms",
        key=found.admin,
        json_body={"version": "v1", "texts": TEXTS, "purposes": ["web", "print"]},
    )
    assert reply.status == 201, reply.body
    return found


def _token(url: str) -> str:
    return parse_qs(urlparse(url).query)["token"][0]


def _link(api: HttpApi, tenant: Tenant, **body: Any) -> dict[str, Any]:
    reply = api.call("POST", "/form-links", key=tenant.admin, json_body=body)
    assert reply.status == 201, reply.body
    result: dict[str, Any] = reply.json
    return result


def _post(api: HttpApi, token: str, fields: dict[str, Any], lang: str = "en") -> Reply:
    return api.call(
        "POST",
        f"/form?token={token}&lang={lang}",
        body=urlencode(fields, doseq=True).encode(),
        headers={"Content-Type": FORM},
    )


def _consents(api: HttpApi, tenant: Tenant, sid: str) -> list[dict[str, Any]]:
    reply = api.call("GET", f"/subjects/{sid}/consents", key=tenant.admin)
    assert reply.status == 200, reply.body
    items: list[dict[str, Any]] = reply.json["items"]
    return items


def _person(api: HttpApi, tenant: Tenant, name: str, email: str) -> str:
    reply = api.call(
        "POST", "/subjects", key=tenant.admin, json_body={"display_name": name, "email": email}
    )
    assert reply.status == 201, reply.body
    return str(reply.json["subject_id"])


def _mails_to(stack: Any, address: str) -> list[dict[str, Any]]:
    return [m for m in stack.sent_emails() if address in str(m["to"])]


def test_a_published_version_is_never_rewritten(http_api: HttpApi, tenant: Tenant) -> None:
    # When the officer publishes v1 again with another text
    changed = {"en": {"title": "Other", "body": "Something else entirely."}}
    reply = http_api.call(
        "POST",
        "/forms",
        key=tenant.admin,
        json_body={"version": "v1", "texts": changed, "purposes": ["web"]},
    )
    # Then it is refused, and v1 still reads as first published
    assert_error(reply, 409, "version_exists")
    form = http_api.call("GET", "/forms/v1", key=tenant.reviewer).json
    assert form["texts"]["en"] == TEXTS["en"] and form["purposes"] == ["print", "web"]
    # And the age of consent is a setting between 13 and 16
    bad = http_api.call(
        "PATCH", "/form-settings", key=tenant.admin, json_body={"age_of_consent": 12}
    )
    assert_error(bad, 400, field="age_of_consent")
    settings = http_api.call("GET", "/form-settings", key=tenant.reviewer).json
    assert settings["age_of_consent"] == 16 and settings["current"] == "v1"


def test_an_adult_signs_at_an_event_and_the_evidence_is_verified_in_the_export(
    local_stack: Any, http_api: HttpApi, tenant: Tenant
) -> None:
    # Given an event link, shown as a QR code
    link = _link(http_api, tenant, event="summer-fair", days=2)
    assert link["qr_svg"].lstrip().startswith("<svg") and link["sent_to"] is None
    token = _token(link["url"])
    # When a visitor opens it
    page = http_api.call("GET", f"/form?token={token}", headers={"Accept-Language": "nl-NL"})
    # Then a Dutch page with the dashboard's strict headers shows the text and each purpose
    assert page.status == 200 and page.header("Content-Type").startswith("text/html")
    assert "frame-ancestors 'none'" in page.header("Content-Security-Policy")
    assert page.header("X-Frame-Options") == "DENY"
    html = page.body.decode()
    assert '<html lang="nl">' in html and "Portrettoestemming" in html
    assert html.count('name="purposes"') == 2
    # When they sign with a typed name for web only
    fields = {
        "form_version": "v1",
        "name": "Ada <b>Visitor</b>",
        "email": "ada@example.org",
        "date_of_birth": "1991-04-02",
        "purposes": ["web"],
        "signature": "Ada <b>Visitor</b>",
        "agree": "on",
    }
    done = _post(http_api, token, fields)
    assert done.status == 201, done.body
    assert "<b>Visitor" not in done.body.decode()  # escaped
    # Then a person and a consent exist, from the form, with the evidence PDF's hash
    [sid] = registry_service().find_subjects(TENANT, email="ada@example.org")
    [consent] = _consents(http_api, tenant, sid)
    evidence = consent["evidence"]
    assert consent["purposes"] == ["web"] and evidence["source"] == "form"
    assert evidence["form_version"] == "v1/en" and evidence["biometric_consent"] is False
    digest = evidence["document_sha256"]
    assert re.fullmatch(r"[0-9a-f]{64}", digest) and digest in done.body.decode()
    document = http_api.call(
        "GET", f"/subjects/{sid}/consents/{consent['consent_id']}/document", key=tenant.admin
    ).json
    pdf = base64.b64decode(document["document_base64"])
    assert pdf.startswith(b"%PDF-") and b"Form version: v1 \\(en\\)" in pdf
    assert b"IP address, HMAC-SHA256" in pdf and b"127.0.0.1" not in pdf

    # When the person asks for their data
    manifest = _export(http_api, tenant, sid)
    # Then the export carries the PDF and says it matches its stored hash
    [entry] = manifest["consents"]
    assert entry["evidence"]["document_sha256"] == digest
    assert entry["evidence"]["document_sha256_verified"] is True

    # When one byte of the stored PDF is changed
    s3 = local_stack.client("s3")
    bucket = local_stack.outputs["DocumentsBucketName"]
    [key] = [
        o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"{TENANT}/{sid}/")["Contents"]
    ]
    stored = bytearray(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    stored[len(stored) // 2] ^= 0x01
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(stored))
    # Then the export reports the mismatch
    [entry] = _export(http_api, tenant, sid)["consents"]
    assert entry["evidence"]["document_sha256_verified"] is False


def _export(api: HttpApi, tenant: Tenant, sid: str) -> dict[str, Any]:
    reply = api.call("GET", f"/subjects/{sid}/export", key=tenant.admin)
    assert reply.status == 200, reply.body
    archive = zipfile.ZipFile(io.BytesIO(base64.b64decode(reply.json["export_base64"])))
    manifest: dict[str, Any] = json.loads(archive.read("manifest.json"))
    return manifest


def test_a_minor_needs_a_guardian_who_then_gets_the_reminders(
    local_stack: Any, http_api: HttpApi, tenant: Tenant
) -> None:
    # Given a form version that runs 10 days, and a personal link e-mailed to a
    # 12-year-old's address
    short = {"version": "v2-short", "texts": TEXTS, "purposes": ["web", "print"], "period_days": 10}
    assert http_api.call("POST", "/forms", key=tenant.admin, json_body=short).status == 201
    sid = _person(http_api, tenant, "Kim Young", "kim@example.org")
    link = _link(http_api, tenant, subject_id=sid)
    assert link["sent_to"] == "person"
    [mail] = _mails_to(local_stack, "kim@example.org")
    assert link["url"] in mail["text"]
    token = _token(link["url"])
    minor = {
        "form_version": "v2-short",
        "name": "Kim Young",
        "date_of_birth": (DEMO_NOW.date() - timedelta(days=12 * 365 + 30)).isoformat(),
        "purposes": ["web", "print"],
        "signature": "Kim Young",
        "agree": "on",
    }
    # When the form is posted without a guardian
    refused = _post(http_api, token, minor)
    # Then the server refuses it, naming the guardian's field, and nothing is recorded
    assert refused.status == 400
    page = refused.body.decode()
    assert 'id="guardian_name-error"' in page and "guardian_name is required" in page
    assert _consents(http_api, tenant, sid) == []
    # When the guardian's name and typed signature are given
    guardian = {
        "guardian_name": "Pat Young",
        "guardian_email": "pat@example.org",
        "guardian_signature": "Pat Young",
    }
    done = _post(http_api, token, {**minor, **guardian})
    assert done.status == 201, done.body
    # Then the consent names the guardian as its signer, and the person's guardian is on record
    [consent] = _consents(http_api, tenant, sid)
    assert consent["evidence"]["signer"] == "Pat Young"
    subject = http_api.call("GET", f"/subjects/{sid}", key=tenant.admin).json
    assert subject["guardian"]["name"] == "Pat Young"
    # And the link works once
    again = _post(http_api, token, {**minor, **guardian})
    assert again.status == 409 and "signed already" in again.body.decode()

    # When the daily reminder run goes (the consent ends in 10 days: the 30-day reminder
    # is due; the run the schedule starts, called as test_links does: a multi-day tick
    # would also fire other tenants' expiries on the shared stack)
    reminders_service().send_due()
    # Then the reminder goes to the guardian, not to the child
    # (the grant's confirmation carries only a withdrawal link; the reminder a renewal link too)
    to_guardian = _mails_to(local_stack, "pat@example.org")
    reminders = [m for m in to_guardian if "/links/renew" in m["text"]]
    assert len(reminders) == 1 and "Pat Young" in reminders[0]["text"]
    confirmations = [m for m in to_guardian if "/links/renew" not in m["text"]]
    assert len(confirmations) == 1 and "/links/withdraw" in confirmations[0]["text"]
    assert not [m for m in _mails_to(local_stack, "kim@example.org") if "/links/" in m["text"]]


def test_coming_of_age_asks_the_person_to_confirm_and_keeps_the_guardians_consent(
    local_stack: Any, http_api: HttpApi, tenant: Tenant
) -> None:
    # Given a person who turns 16 tomorrow, whose guardian signed
    born = DEMO_NOW.date().replace(year=DEMO_NOW.year - 16) + timedelta(days=1)
    sid = _person(http_api, tenant, "Sam Almost", "sam@example.org")
    token = _token(_link(http_api, tenant, subject_id=sid, send=False)["url"])
    fields = {
        "form_version": "v1",
        "name": "Sam Almost",
        "date_of_birth": born.isoformat(),
        "purposes": ["web"],
        "guardian_name": "Robin Almost",
        "guardian_signature": "Robin Almost",
        "agree": "on",
    }
    assert _post(http_api, token, fields).status == 201
    [consent] = _consents(http_api, tenant, sid)

    def asks() -> list[dict[str, Any]]:
        return [m for m in _mails_to(local_stack, "sam@example.org") if "confirm" in m["text"]]

    try:
        # When the daily run goes today, nothing is asked yet
        reminders_service().send_due()
        assert asks() == []
        # When the clock passes their 16th birthday and the next daily runs go
        for day in (1, 2):
            local_stack.clock.set(DEMO_NOW + timedelta(days=day, hours=1))
            reminders_service().send_due()
        # Then they are asked, once, by e-mail, to confirm it themselves with a form link
        [ask] = asks()
        assert "Robin Almost" in ask["text"] and "/form?token=" in ask["text"]
        # And the guardian's consent stays valid
        [still] = _consents(http_api, tenant, sid)
        assert still["consent_id"] == consent["consent_id"] and still["status"] == "valid"
    finally:
        local_stack.clock.set(DEMO_NOW)


def test_a_forged_link_gets_a_page_that_says_so(http_api: HttpApi, tenant: Tenant) -> None:
    reply = http_api.call("GET", "/form?token=" + "x" * 20 + "." + "y" * 20)
    assert reply.status == 403 and "not valid" in reply.body.decode()
    assert reply.header("Content-Type").startswith("text/html")


def _multipart(fields: dict[str, Any], photo: bytes) -> tuple[bytes, str]:
    boundary = "qc-form-test-boundary"
    parts = []
    for name, value in fields.items():
        for one in value if isinstance(value, list) else [value]:
            head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            parts.append(f"{head}{one}\r\n".encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; filename="me.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n".encode()
        + photo
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def test_a_reference_photo_is_enrolled_only_with_the_biometric_consent(
    http_api: HttpApi, tenant: Tenant
) -> None:
    token = _token(_link(http_api, tenant, event="photo-booth", days=1)["url"])
    fields: dict[str, Any] = {
        "form_version": "v1",
        "name": "Barack Booth",
        "email": "booth@example.org",
        "date_of_birth": "1961-08-04",
        "purposes": ["web"],
        "signature": "Barack Booth",
        "agree": "on",
    }

    def post(extra: dict[str, Any], image: bytes) -> Reply:
        body, content_type = _multipart({**fields, **extra}, image)
        return http_api.call(
            "POST", f"/form?token={token}", body=body, headers={"Content-Type": content_type}
        )

    # When a photo comes without the separate consent to matching
    refused = post({}, photo("enroll", "obama", "obama-portrait.jpg"))
    # Then it is refused naming that box, and no one is recorded
    assert refused.status == 400 and 'id="biometric_consent-error"' in refused.body.decode()
    # When the photo shows no face, the enrolment gates refuse it (422), still no one recorded
    faceless = post({"biometric_consent": "on"}, photo("uploads", "stranger-portrait.png")[:64])
    assert faceless.status == 422 and 'id="photo-error"' in faceless.body.decode()
    assert registry_service().find_subjects(TENANT, email="booth@example.org") == []
    # When the box is ticked with a good photo
    done = post({"biometric_consent": "on"}, photo("enroll", "obama", "obama-portrait.jpg"))
    assert done.status == 201, done.body
    # Then the person is enrolled and the consent records the biometric consent
    [sid] = registry_service().find_subjects(TENANT, email="booth@example.org")
    assert http_api.call("GET", f"/subjects/{sid}", key=tenant.admin).json["templates"] == 1
    [consent] = _consents(http_api, tenant, sid)
    assert consent["evidence"]["biometric_consent"] is True


def test_signing_is_rate_limited_per_source(
    http_api: HttpApi, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the public pages' bound at one post from one address (the real one: 20)
    small = PublicLimits(source_rate=0.01, source_burst=1)
    monkeypatch.setattr(bootstrap, "public_limits", lambda: small)
    token = _token(_link(http_api, tenant, event="crowded-fair", days=1)["url"])
    # When one client posts the form twice at once (the first without a name)
    first = _post(http_api, token, {"form_version": "v1"})
    second = _post(http_api, token, {"form_version": "v1"})
    # Then the first gets the form again naming the field, the second 429 with Retry-After
    assert first.status == 400
    assert second.status == 429
    assert second.json["error"] == "rate_limited"
    assert int(second.header("Retry-After") or 0) >= 1
