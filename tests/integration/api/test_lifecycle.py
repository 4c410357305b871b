"""The whole life of a consent through the API, with real uploads on the local stack.

subject -> enrol -> consent -> upload approved -> revoke -> out of the library
-> renew refused -> new grant -> back in the library -> renew; once through
Chalice's test client and once over HTTP against the server ``quitclaim local up`` runs.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.api.conftest import (
    Api,
    Buckets,
    assert_error,
    asset_id_of,
    b64,
    make_tenant,
    photo,
)

pytestmark = pytest.mark.integration


def test_full_lifecycle(api: Api, local_stack: Any) -> None:
    tenant = make_tenant(f"api-life-{api.name}")
    key = tenant.admin
    buckets = Buckets(local_stack, tenant.id)

    # Given a subject enrolled from one portrait
    created = api.call(
        "POST",
        "/subjects",
        key=key,
        json_body={"display_name": "Barack O.", "external_ref": "crm-17"},
    )
    assert created.status == 201, created.body
    sid = created.json["subject_id"]
    enrolled = api.call(
        "POST",
        f"/subjects/{sid}/photos",
        key=key,
        json_body={
            "photos": [b64(photo("enroll", "obama", "obama-portrait.jpg"))],
            "biometric_consent": True,
        },
    )
    assert enrolled.status == 200, enrolled.body
    assert enrolled.json["templates"] == 1
    # (the explicit consent to matching is recorded on the person: when, and through what)
    assert enrolled.json["biometric_consent_source"] == "api"
    assert enrolled.json["biometric_consent_at"]
    # (templates are counted, never returned)
    assert "encoding" not in enrolled.body.decode()

    # And a web consent with its signed document
    granted = api.call(
        "POST",
        f"/subjects/{sid}/consents",
        key=key,
        json_body={
            "purposes": ["web"],
            "valid_from": "2026-01-01",
            "expires_at": "2027-12-31",
            "signer": "Barack O.",
            "form_version": "2026-01",
            "document_base64": b64(b"%PDF-1.7 quitclaim"),
            "document_type": "application/pdf",
        },
    )
    assert granted.status == 201, granted.body
    cid = granted.json["consent_id"]
    assert granted.json["status"] == "valid"
    assert granted.json["evidence"]["document_sha256"]

    # When the DAM uploads a photo of them for the web
    buckets.upload("office.jpg", photo("uploads", "obama-office.jpg"))
    # Then it is approved and in the library
    asset_id = asset_id_of(api, key, "office.jpg")
    asset = api.call("GET", f"/assets/{asset_id}", key=key).json
    assert asset["status"] == "approved", asset
    assert sid in {f["subject_id"] for f in asset["faces"]}
    assert buckets.places("office.jpg") == ["library"]

    # When the consent is revoked through the API
    revoked = api.call("POST", f"/subjects/{sid}/consents/{cid}/revoke", key=key, json_body={})
    assert revoked.status == 200, revoked.body
    assert revoked.json["status"] == "revoked" and revoked.json["revoked_at"]
    local_stack.drain()  # anything the change queued (streams, rechecks) runs now
    # Then the photo has left the library for quarantine, with the reason
    assert buckets.places("office.jpg") == ["quarantine"]
    held = api.call("GET", f"/assets/{asset_id}", key=key).json
    assert (held["status"], held["reasons"]) == ("quarantined", ["consent_revoked"])
    queue = api.call("GET", f"/assets?reason=consent_revoked&subject={sid}", key=key).json
    assert [a["asset_id"] for a in queue["items"]] == [asset_id]

    # When the withdrawn consent is "renewed"
    renewed = api.call(
        "POST",
        f"/subjects/{sid}/consents/{cid}/renew",
        key=key,
        json_body={"expires_at": "2028-12-31"},
    )
    # Then that is refused: a withdrawal is final, and the photo stays held
    assert_error(renewed, 409, "revoked")
    assert buckets.places("office.jpg") == ["quarantine"]

    # When the person signs again (a new grant)
    regrant = api.call(
        "POST",
        f"/subjects/{sid}/consents",
        key=key,
        json_body={
            "purposes": ["web"],
            "valid_from": "2026-11-01",
            "expires_at": "2027-06-30",
            "signer": "Barack O.",
            "form_version": "2026-11",
        },
    )
    assert regrant.status == 201, regrant.body
    local_stack.drain()
    # Then the photo is back in the library
    assert buckets.places("office.jpg") == ["library"]
    back = api.call("GET", f"/assets/{asset_id}", key=key).json
    assert (back["status"], back["reasons"]) == ("approved", [])

    # And renewing the new consent extends it and keeps the photo published
    new_cid = regrant.json["consent_id"]
    extended = api.call(
        "POST",
        f"/subjects/{sid}/consents/{new_cid}/renew",
        key=key,
        json_body={"expires_at": "2029-06-30"},
    )
    assert extended.status == 200, extended.body
    assert extended.json["expires_at"] == "2029-06-30T00:00:00Z"
    assert [e["event"] for e in extended.json["history"]] == ["granted", "renewed"]
    local_stack.drain()
    assert buckets.places("office.jpg") == ["library"]

    # And the withdrawn consent's record is kept, with its history
    old = api.call("GET", f"/subjects/{sid}/consents/{cid}", key=key).json
    assert old["status"] == "revoked"
    assert [e["event"] for e in old["history"]] == ["granted", "revoked"]
    listed = api.call("GET", f"/subjects/{sid}/consents", key=key).json["items"]
    assert {c["consent_id"]: c["status"] for c in listed} == {cid: "revoked", new_cid: "valid"}
