"""Bad requests are 400 naming the field; photos without exactly one face are 422."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import FACES, REPO_ROOT
from tests.integration.api.conftest import (
    Api,
    Buckets,
    Tenant,
    assert_error,
    asset_id_of,
    b64,
    make_tenant,
    photo,
)

pytestmark = pytest.mark.integration

GRANT = {
    "purposes": ["web"],
    "valid_from": "2026-01-01",
    "signer": "Val Person",
    "form_version": "v1",
}


@pytest.fixture(scope="module")
def tenant(local_stack: Any) -> Tenant:
    return make_tenant("api-val")


@pytest.fixture(scope="module")
def subject(tenant: Tenant, chalice_api: Api) -> str:
    reply = chalice_api.call(
        "POST", "/subjects", key=tenant.admin, json_body={"display_name": "Val Person"}
    )
    assert reply.status == 201, reply.body
    return str(reply.json["subject_id"])


@pytest.fixture(scope="module")
def asset(local_stack: Any, tenant: Tenant, chalice_api: Api) -> str:
    Buckets(local_stack, tenant.id).upload("held.png", photo("uploads", "stranger-portrait.png"))
    return asset_id_of(chalice_api, tenant.admin, "held.png")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"valid_from": "2026-13-01"}, "valid_from"),
        ({"valid_from": "soon"}, "valid_from"),
        ({"expires_at": "2025-12-31"}, "expires_at"),  # before valid_from
        ({"expires_at": "2026-02-30T00:00:00Z"}, "expires_at"),
        ({"purposes": []}, "purposes"),
        ({"purposes": ["billboards"]}, "purposes"),  # not a purpose of this tenant
        ({"signer": "   "}, "signer"),
        (
            {"document_base64": "%%%not base64%%%", "document_type": "application/pdf"},
            "document_base64",
        ),
        ({"document_base64": b64(b"%PDF-1.4")}, "document_type"),
        ({"document_base64": b64(b"%PDF"), "document_type": "text/html"}, "document_type"),
        ({"scope": "everything"}, "scope"),  # unknown field
    ],
)
def test_bad_consent_is_400_naming_the_field(
    api: Api, tenant: Tenant, subject: str, changes: dict[str, Any], field: str
) -> None:
    body = {**GRANT, **changes}
    reply = api.call("POST", f"/subjects/{subject}/consents", key=tenant.admin, json_body=body)
    assert_error(reply, 400, field=field)


def test_missing_required_field_is_named(api: Api, tenant: Tenant, subject: str) -> None:
    body = {k: v for k, v in GRANT.items() if k != "signer"}
    reply = api.call("POST", f"/subjects/{subject}/consents", key=tenant.admin, json_body=body)
    error = assert_error(reply, 400, "validation_failed", "signer")
    assert "signer" in error["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"display_name": "A", "date_of_birth": "31/12/1990"}, "date_of_birth"),
        ({"display_name": "A", "date_of_birth": "2999-01-01"}, "date_of_birth"),
        ({"display_name": "A", "email": "not-an-email"}, "email"),
        ({"display_name": ""}, "display_name"),
        ({"display_name": "A", "guardian": {"email": "g@example.org"}}, "guardian.name"),
        ({}, "display_name"),
    ],
)
def test_bad_subject_is_400_naming_the_field(
    api: Api, tenant: Tenant, body: dict[str, Any], field: str
) -> None:
    assert_error(api.call("POST", "/subjects", key=tenant.admin, json_body=body), 400, field=field)


@pytest.mark.parametrize("action", ["release", "keep", "delete", "reassign"])
@pytest.mark.parametrize("justification", [None, "", "  ", "ok"])
def test_review_actions_require_a_justification(
    api: Api, tenant: Tenant, asset: str, action: str, justification: str | None
) -> None:
    body: dict[str, Any] = {"face_index": 0, "subject_id": None} if action == "reassign" else {}
    if justification is not None:
        body["justification"] = justification
    method, path = (
        ("DELETE", f"/assets/{asset}")
        if action == "delete"
        else (
            "POST",
            f"/assets/{asset}/{action}",
        )
    )
    reply = api.call(method, path, key=tenant.reviewer, json_body=body)
    assert_error(reply, 400, "validation_failed", "justification")
    # And nothing happened to the asset
    after = api.call("GET", f"/assets/{asset}", key=tenant.admin).json
    assert after["status"] == "quarantined" and "pending_release" not in after["review"]


def test_reassign_face_out_of_range_names_face_index(api: Api, tenant: Tenant, asset: str) -> None:
    body = {"face_index": 7, "subject_id": None, "justification": "wrong person"}
    reply = api.call("POST", f"/assets/{asset}/reassign", key=tenant.reviewer, json_body=body)
    assert_error(reply, 400, field="face_index")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=lots", "limit"),
        ("status=pending", "status"),
        ("since=yesterday", "since"),
        ("since=2026-05-01&until=2026-01-01", "until"),
        ("limit=5&limit=6", "limit"),
        ("colour=red", "colour"),
    ],
)
def test_bad_query_is_400_naming_the_parameter(
    api: Api, tenant: Tenant, query: str, field: str
) -> None:
    assert_error(api.call("GET", f"/assets?{query}", key=tenant.admin), 400, field=field)


@pytest.mark.parametrize(
    "raw", [b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe", b"[" * 100_000], ids=str
)
def test_malformed_json_is_400(api: Api, tenant: Tenant, raw: bytes) -> None:
    reply = api.call(
        "POST",
        "/subjects",
        key=tenant.admin,
        body=raw,
        headers={"Content-Type": "application/json"},
    )
    assert_error(reply, 400, "invalid_json", "body")


def test_unsupported_media_type_is_415_in_the_error_shape(api: Api, tenant: Tenant) -> None:
    reply = api.call(
        "POST",
        "/subjects",
        key=tenant.admin,
        body=b"name=x",
        headers={"Content-Type": "text/plain"},
    )
    assert_error(reply, 415, "unsupported_media_type")


def test_wrong_method_is_405_in_the_error_shape(api: Api, tenant: Tenant) -> None:
    assert_error(api.call("PUT", "/subjects", key=tenant.admin), 405, "method_not_allowed")


# A photo with no face at all: dogs.jpg holds a tiny printed portrait the detector sees.
NO_FACE = REPO_ROOT / "tests" / "fixtures" / "hard_faces" / "photos" / "nofaces_candles.jpg"


@pytest.mark.parametrize(("name", "found"), [("no-face", 0), ("two-portraits.jpg", 2)])
def test_photo_without_exactly_one_face_is_422_with_the_count(
    api: Api, tenant: Tenant, subject: str, name: str, found: int
) -> None:
    # Given a photo with no face / two faces
    data = NO_FACE.read_bytes() if name == "no-face" else photo("uploads", name)
    body = {"photos": [b64(data)], "biometric_consent": True}
    # When it is enrolled
    reply = api.call("POST", f"/subjects/{subject}/photos", key=tenant.admin, json_body=body)
    # Then 422 naming the photo and the count, and nothing was enrolled
    error = assert_error(reply, 422, field="photos.0")
    assert f"found {found}" in error["message"]
    assert api.call("GET", f"/subjects/{subject}", key=tenant.admin).json["templates"] == 0


def test_raw_jpeg_body_is_enrolled_or_refused_like_json(
    api: Api, tenant: Tenant, subject: str
) -> None:
    reply = api.call(
        "POST",
        f"/subjects/{subject}/photos?biometric_consent=true",
        key=tenant.admin,
        body=NO_FACE.read_bytes(),
        headers={"Content-Type": "image/jpeg"},
    )
    assert "found 0" in assert_error(reply, 422)["message"]


def test_photos_must_be_base64(api: Api, tenant: Tenant, subject: str) -> None:
    body = {"photos": [b64(b"x"), "not*base64"], "biometric_consent": True}
    reply = api.call("POST", f"/subjects/{subject}/photos", key=tenant.admin, json_body=body)
    assert_error(reply, 400, "validation_failed", "photos.1")


def test_undecodable_photo_is_refused_not_a_server_error(
    api: Api, tenant: Tenant, subject: str
) -> None:
    body = {"photos": [b64(b"GIF89a but not really an image")], "biometric_consent": True}
    reply = api.call("POST", f"/subjects/{subject}/photos", key=tenant.admin, json_body=body)
    assert 400 <= reply.status < 500, reply.body
    assert_error(reply, reply.status)


def test_ids_that_cannot_exist_are_404(api: Api, tenant: Tenant) -> None:
    for path in ("/subjects/a%23b", "/subjects/..%2F..", "/assets/" + "a" * 200):
        assert_error(api.call("GET", path, key=tenant.admin), 404, "not_found")


def test_enrolment_without_explicit_consent_to_matching_is_refused_naming_the_field(
    api: Api, tenant: Tenant, subject: str
) -> None:
    portrait = b64((FACES / "enroll" / "obama" / "obama-portrait.jpg").read_bytes())
    # Given a valid reference photo, sent without (or with a false) biometric_consent
    for body in ({"photos": [portrait]}, {"photos": [portrait], "biometric_consent": False}):
        reply = api.call("POST", f"/subjects/{subject}/photos", key=tenant.admin, json_body=body)
        # Then 400 naming the field, and no template is stored
        assert_error(reply, 400, "validation_failed", "biometric_consent")
    raw = api.call(
        "POST",
        f"/subjects/{subject}/photos",
        key=tenant.admin,
        body=(FACES / "enroll" / "obama" / "obama-portrait.jpg").read_bytes(),
        headers={"Content-Type": "image/jpeg"},
    )
    assert_error(raw, 400, "validation_failed", "biometric_consent")
    shown = api.call("GET", f"/subjects/{subject}", key=tenant.admin).json
    assert shown["templates"] == 0 and shown["biometric_consent_at"] is None
