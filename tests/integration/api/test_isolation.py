"""Tenant B's key cannot read, list, change or infer tenant A's data: 404, never data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

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

SECRET_NAME = "Ada Isolation-Secret"
DOCUMENT = b"%PDF-1.4 signed quitclaim of tenant A"


@dataclass
class World:
    a: Tenant
    b: Tenant
    subject: str
    consent: str
    asset: str
    b_asset: str


@pytest.fixture(scope="module")
def world(local_stack: Any, chalice_api: Api) -> World:
    # Given tenant A with a subject, a consent with its signed document and a
    # quarantined asset, and tenant B with an asset of its own
    a, b = make_tenant("api-iso-a"), make_tenant("api-iso-b")
    api = chalice_api
    subject = api.call("POST", "/subjects", key=a.admin, json_body={"display_name": SECRET_NAME})
    sid = subject.json["subject_id"]
    consent = api.call(
        "POST",
        f"/subjects/{sid}/consents",
        key=a.admin,
        json_body={
            "purposes": ["web"],
            "valid_from": "2026-01-01",
            "signer": SECRET_NAME,
            "form_version": "v1",
            "document_base64": b64(DOCUMENT),
            "document_type": "application/pdf",
        },
    )
    assert consent.status == 201, consent.body
    stranger = photo("uploads", "stranger-portrait.png")
    Buckets(local_stack, a.id).upload("stranger.png", stranger)
    Buckets(local_stack, b.id).upload("stranger.png", stranger)
    return World(
        a,
        b,
        sid,
        consent.json["consent_id"],
        asset_id_of(api, a.admin, "stranger.png"),
        asset_id_of(api, b.admin, "stranger.png"),
    )


def _attempts(w: World) -> list[tuple[str, str, Any]]:
    s, c, x = w.subject, w.consent, w.asset
    why = {"justification": "tenant B trying"}
    return [
        ("GET", f"/subjects/{s}", None),
        ("PATCH", f"/subjects/{s}", {"display_name": "Changed by B"}),
        ("DELETE", f"/subjects/{s}", None),
        ("POST", f"/subjects/{s}/photos", {"photos": [b64(b"not even an image")]}),
        ("GET", f"/subjects/{s}/consents", None),
        (
            "POST",
            f"/subjects/{s}/consents",
            {"purposes": ["web"], "valid_from": "2026-01-01", "signer": "B", "form_version": "1"},
        ),
        ("GET", f"/subjects/{s}/consents/{c}", None),
        ("GET", f"/subjects/{s}/consents/{c}/document", None),
        ("POST", f"/subjects/{s}/consents/{c}/revoke", {}),
        ("POST", f"/subjects/{s}/consents/{c}/renew", {"expires_at": "2030-01-01"}),
        ("GET", f"/assets/{x}", None),
        ("GET", f"/assets/{x}/thumbnail", None),
        ("POST", f"/assets/{x}/release", why),
        ("POST", f"/assets/{x}/keep", why),
        ("POST", f"/assets/{x}/reassign", {"face_index": 0, "subject_id": None, **why}),
        ("DELETE", f"/assets/{x}", why),
    ]


def test_b_gets_404_for_every_one_of_as_ids(api: Api, world: World) -> None:
    for method, path, body in _attempts(world):
        # When B's admin key (every role) names A's ids
        for key in (world.b.admin, world.b.reviewer):
            reply = api.call(method, path, key=key, json_body=body)
            # Then 404, or 403 where a reviewer key meets an admin-only route (the role
            # is checked before anything is looked up), and never any of A's data
            admin_only = method != "GET" and path.startswith("/subjects")
            expected = 403 if key == world.b.reviewer and admin_only else 404
            assert_error(reply, expected)
            text = reply.body.decode()
            assert SECRET_NAME not in text and b64(DOCUMENT) not in text, (method, path)


def test_as_data_is_unchanged_after_bs_attempts(api: Api, world: World) -> None:
    # Given all of B's attempts above (run here too, so the order of tests does not matter)
    for method, path, body in _attempts(world):
        api.call(method, path, key=world.b.admin, json_body=body)
    # Then A still sees its subject, consent, document and asset exactly as before
    subject = api.call("GET", f"/subjects/{world.subject}", key=world.a.admin)
    assert subject.status == 200 and subject.json["display_name"] == SECRET_NAME
    consent = api.call(
        "GET", f"/subjects/{world.subject}/consents/{world.consent}", key=world.a.admin
    )
    assert consent.json["status"] == "valid" and consent.json["revoked_at"] is None
    assert [e["event"] for e in consent.json["history"]] == ["granted"]
    document = api.call(
        "GET", f"/subjects/{world.subject}/consents/{world.consent}/document", key=world.a.admin
    )
    assert document.json["content_type"] == "application/pdf"
    assert document.json["document_base64"] == b64(DOCUMENT)
    asset = api.call("GET", f"/assets/{world.asset}", key=world.a.admin).json
    assert asset["status"] == "quarantined" and asset["review"] == {}
    assert [h["action"] for h in asset["history"]][-1] != "release_requested"


def test_lists_never_show_the_other_tenant(api: Api, world: World) -> None:
    # When B lists subjects and assets (every status)
    subjects = api.call("GET", "/subjects?limit=100", key=world.b.admin)
    assets = api.call("GET", "/assets?status=all&limit=100", key=world.b.admin)
    # Then only B's own items appear
    assert subjects.status == 200 and assets.status == 200
    assert world.subject not in {s["subject_id"] for s in subjects.json["items"]}
    assert {a["tenant"] for a in subjects.json["items"]} <= {world.b.id}
    assert [a["asset_id"] for a in assets.json["items"]] == [world.b_asset]
    assert SECRET_NAME not in subjects.body.decode() + assets.body.decode()
    # And filtering B's assets by A's subject id finds nothing
    by_subject = api.call("GET", f"/assets?status=all&subject={world.subject}", key=world.b.admin)
    assert by_subject.status == 200 and by_subject.json["items"] == []


def test_b_cannot_link_its_asset_to_as_subject(api: Api, world: World) -> None:
    # When B says a face in B's own asset is A's subject
    reply = api.call(
        "POST",
        f"/assets/{world.b_asset}/reassign",
        key=world.b.admin,
        json_body={"face_index": 0, "subject_id": world.subject, "justification": "guessing"},
    )
    # Then A's subject does not exist for B
    assert_error(reply, 404, "not_found")


def test_a_tenant_in_the_body_or_query_is_ignored_or_refused(api: Api, world: World) -> None:
    # A body naming another tenant is refused (unknown field), never obeyed
    reply = api.call(
        "POST",
        "/subjects",
        key=world.b.admin,
        json_body={"display_name": "x", "tenant": world.a.id},
    )
    assert_error(reply, 400, "validation_failed", "tenant")
    listed = api.call("GET", f"/subjects?tenant={world.a.id}", key=world.b.admin)
    assert_error(listed, 400, "validation_failed", "tenant")
