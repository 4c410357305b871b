"""Webhook dialects over real HTTP on loopback: HubSpot batches, Mailchimp forms, Typeform.

The tools post in their own wire formats to ``/webhooks/{tenant}/{source}``;
the API verifies each the tool's way, stores one delivery per event (the
tool's own event id) and the inbound worker (run by the local runtime)
applies them through the registry. HubSpot signs the public URI it called,
derived from the stack's public base URL (QC_PUBLIC_BASE_URL), not from the
loopback address the test server listens on.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import pytest

from quitclaim.bootstrap import registry_service
from quitclaim.config import get_settings
from quitclaim.domain.dialects import hubspot_v3, typeform_signature
from tests.conftest import DEMO_NOW
from tests.integration.api.conftest import (
    Buckets,
    HttpApi,
    assert_error,
    b64,
    make_tenant,
    photo,
)

pytestmark = pytest.mark.integration

SAMPLES = resources.files("quitclaim") / "webhook_mappings" / "samples"
HS_SECRET = "5b0c8e2a-6f0e-4f55-9c3e-2d1f8e7a9b10"
TF_SECRET = "typeform-secret-of-this-form"


@dataclass
class Person:
    subject_id: str
    consent_ids: list[str]


def person(
    api: HttpApi,
    tenant: Any,
    buckets: Buckets | None,
    *,
    ref: str,
    email: str,
    purposes: tuple[str, ...] = ("web",),
    enroll: tuple[str, ...] | None = None,
    upload: str | None = None,
) -> Person:
    """A person with one consent per purpose; with ``upload``, their photo in the library."""
    created = api.call(
        "POST",
        "/subjects",
        key=tenant.admin,
        json_body={"display_name": f"Person {ref}", "external_ref": ref, "email": email},
    )
    assert created.status == 201, created.body
    sid = created.json["subject_id"]
    ids = [
        registry_service()
        .grant_consent(
            tenant.id,
            sid,
            [purpose],
            DEMO_NOW - timedelta(days=1),
            DEMO_NOW + timedelta(days=30),
            source="test",
        )
        .consent_id
        for purpose in purposes
    ]
    if enroll and upload and buckets:
        enrolled = api.call(
            "POST",
            f"/subjects/{sid}/photos",
            key=tenant.admin,
            json_body={"photos": [b64(photo("enroll", *enroll))], "biometric_consent": True},
        )
        assert enrolled.status == 200, enrolled.body
        buckets.upload(upload, photo("uploads", upload))
        assert buckets.places(upload) == ["library"]
    return Person(sid, ids)


def views(tenant: Any, who: Person) -> list[Any]:
    return registry_service().consent_views(tenant.id, who.subject_id)


def deliveries(api: HttpApi, tenant: Any, source: str) -> dict[str, dict[str, Any]]:
    reply = api.call("GET", f"/webhook-sources/{source}/deliveries", key=tenant.admin)
    assert reply.status == 200, reply.body
    return {d["delivery_id"]: d for d in reply.json["items"]}


# ---------------------------------------------------------------- HubSpot


@dataclass
class HubSpot:
    tenant: Any
    buckets: Buckets
    path: str
    withdrawn: Person
    renewed: Person


@pytest.fixture(scope="module")
def hubspot(http_api: HttpApi, local_stack: Any) -> HubSpot:
    tenant = make_tenant("hooks-hubspot")
    buckets = Buckets(local_stack, tenant.id)
    withdrawn = person(
        http_api,
        tenant,
        buckets,
        ref="201",
        email="kit@example.org",
        enroll=("kit_harington", "kit-portrait.jpg"),
        upload="kit-closeup.jpg",
    )
    renewed = person(http_api, tenant, None, ref="202", email="alex@example.org")
    created = http_api.call(
        "POST",
        "/webhook-sources",
        key=tenant.admin,
        json_body={
            "name": "crm",
            "dialect": "hubspot",
            "preset": "hubspot-contact-property",
            "secret": HS_SECRET,
        },
    )
    assert created.status == 201, created.body
    # The tool owns the secret: it is stored, never answered
    assert created.json["secret"] is None
    assert HS_SECRET not in created.body.decode()
    assert created.json["source"]["dialect"] == "hubspot"
    listed = http_api.call("GET", "/webhook-sources", key=tenant.admin)
    assert HS_SECRET not in listed.body.decode()
    return HubSpot(tenant, buckets, created.json["url_path"], withdrawn, renewed)


def batch(attempt: int = 0) -> bytes:
    """Three contact.propertyChange events in HubSpot's wire format."""
    occurred = int(DEMO_NOW.timestamp() * 1000)
    [template] = json.loads((SAMPLES / "hubspot-contact-property.json").read_text("utf-8"))
    events = [
        {**template, "eventId": 5001, "objectId": 201, "propertyValue": "withdrawn"},
        {**template, "eventId": 5002, "objectId": 202, "propertyValue": "renewed"},
        {**template, "eventId": 5003, "objectId": 999, "propertyValue": "withdrawn"},
    ]
    for event in events:
        event.update(occurredAt=occurred, attemptNumber=attempt)
    return json.dumps(events).encode()


def hubspot_headers(
    hook: HubSpot, body: bytes, *, secret: str = HS_SECRET, at: datetime | None = None
) -> dict[str, str]:
    stamp = str(int((at or datetime.now(UTC)).timestamp() * 1000))
    uri = get_settings().public_base_url.rstrip("/") + hook.path
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": hubspot_v3(secret, "POST", uri, body, stamp),
        "X-HubSpot-Request-Timestamp": stamp,
    }


def hubspot_state(api: HttpApi, hook: HubSpot) -> tuple[Any, ...]:
    return (
        [
            (v.consent_id, v.status, v.version, v.expires_at)
            for v in views(hook.tenant, hook.withdrawn)
        ],
        [
            (v.consent_id, v.status, v.version, v.expires_at)
            for v in views(hook.tenant, hook.renewed)
        ],
        sorted((k, d["status"]) for k, d in deliveries(api, hook.tenant, "crm").items()),
        hook.buckets.places("kit-closeup.jpg"),
    )


@pytest.mark.parametrize(
    "tamper", ["altered_body", "stale_timestamp", "wrong_secret", "lambda_host"]
)
def test_a_hubspot_request_that_fails_verification_is_a_401_and_changes_nothing(
    http_api: HttpApi, local_stack: Any, hubspot: HubSpot, tamper: str
) -> None:
    # Given the state before, and a batch tampered with one way
    before = hubspot_state(http_api, hubspot)
    body = batch()
    headers = hubspot_headers(hubspot, body)
    if tamper == "altered_body":
        body = body.replace(b'"objectId": 999', b'"objectId": 998')
    elif tamper == "stale_timestamp":
        headers = hubspot_headers(hubspot, body, at=datetime.now(UTC) - timedelta(minutes=6))
    elif tamper == "wrong_secret":
        headers = hubspot_headers(hubspot, body, secret="ffffffff-ffff-ffff-ffff-ffffffffffff")
    elif tamper == "lambda_host":
        # Signed for the address the server happens to listen on, not the public URL
        stamp = headers["X-HubSpot-Request-Timestamp"]
        uri = http_api.base_url + hubspot.path
        headers["X-HubSpot-Signature-v3"] = hubspot_v3(HS_SECRET, "POST", uri, body, stamp)
    # When it is posted
    reply = http_api.call("POST", hubspot.path, body=body, headers=headers)
    local_stack.drain()
    # Then it is refused, and nothing changed
    assert_error(reply, 401, "invalid_signature")
    assert hubspot_state(http_api, hubspot) == before


def test_a_hubspot_batch_applies_each_event_once_and_parks_the_unknown_contact(
    http_api: HttpApi, local_stack: Any, hubspot: HubSpot
) -> None:
    # Given a withdrawal, a renewal and an event for a contact Quitclaim does not know
    assert hubspot.buckets.places("kit-closeup.jpg") == ["library"]
    body = batch()
    # When HubSpot posts the batch
    reply = http_api.call("POST", hubspot.path, body=body, headers=hubspot_headers(hubspot, body))
    assert reply.status == 202, reply.body
    assert reply.json["status"] == "accepted"
    assert reply.json["deliveries"] == ["hs-5001", "hs-5002", "hs-5003"]
    local_stack.drain()
    # Then two events are applied and one is parked, each by HubSpot's event id
    found = deliveries(http_api, hubspot.tenant, "crm")
    assert {k: d["status"] for k, d in found.items()} == {
        "hs-5001": "applied",
        "hs-5002": "applied",
        "hs-5003": "parked",
    }
    assert found["hs-5003"]["reason"] == "unknown_subject"
    # And the withdrawal withdrew and pulled the photo; the renewal extended the consent
    assert [v.status for v in views(hubspot.tenant, hubspot.withdrawn)] == ["revoked"]
    assert hubspot.buckets.places("kit-closeup.jpg") == ["quarantine"]
    [renewed] = views(hubspot.tenant, hubspot.renewed)
    assert renewed.status == "valid"
    assert renewed.expires_at == DEMO_NOW + timedelta(days=365)

    # When HubSpot redelivers the same batch (its retry raises attemptNumber)
    before = hubspot_state(http_api, hubspot)
    again = batch(attempt=1)
    reply = http_api.call("POST", hubspot.path, body=again, headers=hubspot_headers(hubspot, again))
    local_stack.drain()
    # Then it is acknowledged as a duplicate and changes nothing
    assert reply.status == 202, reply.body
    assert reply.json["status"] == "duplicate"
    assert hubspot_state(http_api, hubspot) == before


def test_a_hubspot_secret_cannot_be_rotated_by_quitclaim(
    http_api: HttpApi, hubspot: HubSpot
) -> None:
    reply = http_api.call(
        "POST", "/webhook-sources/crm/rotate", key=hubspot.tenant.admin, json_body={}
    )
    assert_error(reply, 409, "tool_owned_secret")


def test_a_tool_owned_secret_is_required_and_others_refuse_one(
    http_api: HttpApi, hubspot: HubSpot
) -> None:
    for body in (
        {"name": "nosecret", "dialect": "typeform", "preset": "typeform-quitclaim"},
        {
            "name": "given",
            "dialect": "mailchimp",
            "preset": "mailchimp-unsubscribe",
            "secret": "x" * 12,
        },
    ):
        reply = http_api.call("POST", "/webhook-sources", key=hubspot.tenant.admin, json_body=body)
        assert_error(reply, 400, field="secret")
    unknown = {"name": "odd", "dialect": "salesforce", "preset": "generic-form"}
    reply = http_api.call("POST", "/webhook-sources", key=hubspot.tenant.admin, json_body=unknown)
    assert_error(reply, 400, field="dialect")


# ---------------------------------------------------------------- Mailchimp


@dataclass
class Mailchimp:
    tenant: Any
    buckets: Buckets
    url: str  # path with its token
    token: str
    rose: Person


@pytest.fixture(scope="module")
def mailchimp(http_api: HttpApi, local_stack: Any) -> Mailchimp:
    tenant = make_tenant("hooks-mailchimp")
    buckets = Buckets(local_stack, tenant.id)
    rose = person(
        http_api,
        tenant,
        buckets,
        ref="mc-rose",
        email="rose.leslie@example.org",
        purposes=("web", "social"),
        enroll=("rose_leslie", "rose-portrait.jpg"),
        upload="rose-red-carpet.jpg",
    )
    created = http_api.call(
        "POST",
        "/webhook-sources",
        key=tenant.admin,
        json_body={"name": "newsletter", "dialect": "mailchimp", "preset": "mailchimp-unsubscribe"},
    )
    assert created.status == 201, created.body
    token = created.json["secret"]
    assert created.json["url_path"] == f"/webhooks/{tenant.id}/newsletter?token={token}"
    return Mailchimp(tenant, buckets, created.json["url_path"], token, rose)


def form_post(api: HttpApi, url: str, body: bytes) -> Any:
    headers = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "MailChimp"}
    return api.call("POST", url, body=body, headers=headers)


def test_mailchimp_checks_the_url_with_a_get_and_a_wrong_token_is_refused(
    http_api: HttpApi, mailchimp: Mailchimp
) -> None:
    ok = http_api.call("GET", mailchimp.url)
    assert ok.status == 200, ok.body
    assert ok.json == {"status": "ready"}
    wrong = mailchimp.url.replace(mailchimp.token, mailchimp.token[:-2] + "xx")
    assert_error(http_api.call("GET", wrong), 401, "invalid_signature")
    bare = mailchimp.url.split("?")[0]
    assert_error(http_api.call("GET", bare), 401, "invalid_signature")
    before = [v.status for v in views(mailchimp.tenant, mailchimp.rose)]
    body = (SAMPLES / "mailchimp-unsubscribe.txt").read_bytes()
    assert_error(form_post(http_api, wrong, body), 401, "invalid_signature")
    assert [v.status for v in views(mailchimp.tenant, mailchimp.rose)] == before


def test_a_mailchimp_unsubscribe_withdraws_every_consent_and_pulls_the_photo(
    http_api: HttpApi, local_stack: Any, mailchimp: Mailchimp
) -> None:
    # Given the person with two consents and their photo in the library
    assert [v.status for v in views(mailchimp.tenant, mailchimp.rose)] == ["valid", "valid"]
    assert mailchimp.buckets.places("rose-red-carpet.jpg") == ["library"]
    # When Mailchimp posts the (form-encoded) unsubscribe of that address
    body = (SAMPLES / "mailchimp-unsubscribe.txt").read_bytes()
    reply = form_post(http_api, mailchimp.url, body)
    assert reply.status == 202, reply.body
    local_stack.drain()
    # Then every consent is withdrawn and the photo left the library by the time the worker is done
    assert [v.status for v in views(mailchimp.tenant, mailchimp.rose)] == ["revoked", "revoked"]
    assert mailchimp.buckets.places("rose-red-carpet.jpg") == ["quarantine"]
    [done] = deliveries(http_api, mailchimp.tenant, "newsletter").values()
    assert (done["status"], done["subject_id"]) == ("applied", mailchimp.rose.subject_id)
    # And the same form again is a duplicate
    again = form_post(http_api, mailchimp.url, body)
    assert again.status == 202 and again.json["status"] == "duplicate"


def test_mailchimp_upemail_moves_the_lookup_and_cleaned_marks_the_address_unreachable(
    http_api: HttpApi, local_stack: Any, mailchimp: Mailchimp
) -> None:
    # Given a second person of the list
    other = person(http_api, mailchimp.tenant, None, ref="mc-biden", email="joe@example.org")
    # When Mailchimp reports the address change, then a hard bounce of the new address
    moved = urllib.parse.urlencode(
        {
            "type": "upemail",
            "fired_at": "2026-11-26 11:00:00",
            "data[list_id]": "a6b5da1054",
            "data[new_email]": "Joe@New.example",
            "data[old_email]": "joe@example.org",
        }
    ).encode()
    cleaned = urllib.parse.urlencode(
        {
            "type": "cleaned",
            "fired_at": "2026-11-26 11:05:00",
            "data[list_id]": "a6b5da1054",
            "data[reason]": "hard",
            "data[email]": "joe@new.example",
        }
    ).encode()
    assert form_post(http_api, mailchimp.url, moved).status == 202
    local_stack.drain()
    subject = registry_service().subject(mailchimp.tenant.id, other.subject_id)
    assert (subject.email, subject.email_unreachable) == ("joe@new.example", False)
    assert form_post(http_api, mailchimp.url, cleaned).status == 202
    local_stack.drain()
    # Then the person is found by the new address, marked unreachable, and keeps the consent
    subject = registry_service().subject(mailchimp.tenant.id, other.subject_id)
    assert subject.email_unreachable is True
    assert [v.status for v in views(mailchimp.tenant, other)] == ["valid"]
    # And a later change of address makes the person reachable again
    again = moved.replace(b"Joe%40New.example", b"joe%40third.example").replace(
        b"joe%40example.org", b"joe%40new.example"
    )
    assert form_post(http_api, mailchimp.url, again).status == 202
    local_stack.drain()
    subject = registry_service().subject(mailchimp.tenant.id, other.subject_id)
    assert (subject.email, subject.email_unreachable) == ("joe@third.example", False)


def test_a_rotated_mailchimp_token_keeps_the_old_url_for_its_overlap(
    http_api: HttpApi, mailchimp: Mailchimp
) -> None:
    rotated = http_api.call(
        "POST",
        "/webhook-sources/newsletter/rotate",
        key=mailchimp.tenant.admin,
        json_body={"overlap_hours": 0},
    )
    assert rotated.status == 200, rotated.body
    new = rotated.json["secret"]
    assert new != mailchimp.token and not new.startswith("whsec_")
    fresh = mailchimp.url.replace(mailchimp.token, new)
    assert http_api.call("GET", fresh).status == 200
    assert_error(http_api.call("GET", mailchimp.url), 401, "invalid_signature")
    mailchimp.url, mailchimp.token = fresh, new


# ---------------------------------------------------------------- Typeform


def test_a_signed_typeform_response_grants_with_the_response_as_evidence(
    http_api: HttpApi, local_stack: Any
) -> None:
    # Given a person known by the form's hidden reference, and a Typeform source
    tenant = make_tenant("hooks-typeform")
    rose = person(http_api, tenant, None, ref="crm-1042", email="rose@example.org", purposes=())
    created = http_api.call(
        "POST",
        "/webhook-sources",
        key=tenant.admin,
        json_body={
            "name": "form",
            "dialect": "typeform",
            "preset": "typeform-quitclaim",
            "secret": TF_SECRET,
        },
    )
    assert created.status == 201, created.body
    body = (SAMPLES / "typeform-quitclaim.json").read_bytes()
    # When a response is posted with a wrong signature, then with the right one
    bad = {
        "Content-Type": "application/json",
        "Typeform-Signature": typeform_signature("nope-nope", body),
    }
    assert_error(http_api.call("POST", created.json["url_path"], body=body, headers=bad), 401)
    good = {
        "Content-Type": "application/json",
        "Typeform-Signature": typeform_signature(TF_SECRET, body),
    }
    reply = http_api.call("POST", created.json["url_path"], body=body, headers=good)
    assert reply.status == 202, reply.body
    local_stack.drain()
    # Then the consent is granted for the chosen purposes, the response stored and hashed
    [granted] = views(tenant, rose)
    assert set(granted.purposes) == {"social", "web"}
    assert granted.evidence is not None
    assert granted.evidence.signer == "Rose Leslie"
    assert granted.evidence.document_sha256 == hashlib.sha256(body).hexdigest()
