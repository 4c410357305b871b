"""Invariant I2, four eyes: nobody moves an image into the library alone.

Besides the ingest decision, every path into the library (release, reassign,
redact) and every policy change that lets the gate see less needs a second,
*different person*: API keys are bound to a named person, so one person's two
keys count once. Photo-heavy, so through Chalice's client only.
"""

from __future__ import annotations

from typing import Any

import pytest

from quitclaim.adapters.dynamo import DynamoAssets
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


def _key(api: Api, tenant: Tenant, role: str, label: str, person: str) -> str:
    reply = api.call(
        "POST",
        "/keys",
        key=tenant.admin,
        json_body={"role": role, "label": label, "person": person},
    )
    assert reply.status == 201, reply.body
    assert reply.json["person"] == person
    return str(reply.json["secret"])


def _person(api: Api, tenant: Tenant, folder: str, upload: str | None = None) -> dict[str, str]:
    """Register, enrol and give a web consent to one fixture person."""
    sid = api.call(
        "POST", "/subjects", key=tenant.admin, json_body={"display_name": folder.title()}
    ).json["subject_id"]
    enrolled = api.call(
        "POST",
        f"/subjects/{sid}/photos",
        key=tenant.admin,
        json_body={
            "photos": [b64(photo("enroll", folder, upload or f"{folder}-portrait.jpg"))],
            "biometric_consent": True,
        },
    )
    assert enrolled.status == 200, enrolled.body
    consent = api.call(
        "POST",
        f"/subjects/{sid}/consents",
        key=tenant.admin,
        json_body={
            "purposes": ["web"],
            "valid_from": "2026-01-01",
            "signer": "signer",
            "form_version": "v1",
        },
    )
    assert consent.status == 201, consent.body
    return {"subject_id": sid, "consent_id": consent.json["consent_id"]}


def _me(api: Api, key: str) -> dict[str, Any]:
    me: dict[str, Any] = api.call("GET", "/me", key=key).json
    return me


def _twin(api: Api, tenant: Tenant, key: str) -> str:
    """Another key for the same person as ``key`` (an admin may mint any number)."""
    me = _me(api, key)
    return _key(api, tenant, me["role"], f"{me['label']} (second key)", me["person"])


@pytest.fixture(scope="module")
def world(chalice_api: Api, local_stack: Any) -> dict[str, Any]:
    tenant = make_tenant("api-four-eyes")
    return {"api": chalice_api, "tenant": tenant, "buckets": Buckets(local_stack, tenant.id)}


def test_a_reviewer_alone_cannot_publish_by_reassigning_a_withdrawn_face(
    world: dict[str, Any],
) -> None:
    api, tenant, buckets = world["api"], world["tenant"], world["buckets"]
    kit = _person(api, tenant, "kit_harington", "kit-portrait.jpg")
    rose = _person(api, tenant, "rose_leslie", "rose-portrait.jpg")
    path = "press/kit.jpg"
    buckets.upload(path, photo("uploads", "kit-closeup.jpg"))
    asset_id = asset_id_of(api, tenant.admin, path)
    # Given Kit's photo, held after he withdrew his consent
    revoked = api.call(
        "POST",
        f"/subjects/{kit['subject_id']}/consents/{kit['consent_id']}/revoke",
        key=tenant.admin,
        json_body={},
    )
    assert revoked.status == 200, revoked.body
    held = api.call("GET", f"/assets/{asset_id}", key=tenant.admin).json
    assert (held["status"], held["reasons"]) == ("quarantined", ["consent_revoked"])
    assert buckets.places(path) == ["quarantine"]
    original = held["faces"][0]
    assert original["subject_id"] == kit["subject_id"]
    body = {"face_index": 0, "subject_id": rose["subject_id"], "justification": "it is Rose"}

    # When one reviewer says the face is Rose (who has a valid consent)
    asked = api.call("POST", f"/assets/{asset_id}/reassign", key=tenant.reviewer, json_body=body)
    # Then it is only a request: still held, the faces unchanged, nothing in the library
    assert asked.status == 202, asked.body
    assert asked.json["status"] == "quarantined"
    assert asked.json["faces"][0]["subject_id"] == kit["subject_id"]
    pending = asked.json["review"]["pending_reassign"]
    ana = _me(api, tenant.reviewer)["person"]
    assert (pending["face_index"], pending["subject_id"], pending["person"]) == (
        0,
        rose["subject_id"],
        ana,
    )
    assert buckets.places(path) == ["quarantine"]

    # When the same person confirms with her other key
    again = api.call(
        "POST",
        f"/assets/{asset_id}/reassign",
        key=_twin(api, tenant, tenant.reviewer),
        json_body=body,
    )
    # Then 403, and still nothing is published
    assert_error(again, 403, "same_reviewer")
    assert buckets.places(path) == ["quarantine"]

    # When a different person confirms
    confirmed = api.call(
        "POST",
        f"/assets/{asset_id}/reassign",
        key=tenant.second_reviewer,
        json_body={**body, "justification": "compared with her portrait"},
    )
    # Then it is decided again and published
    assert confirmed.status == 200, confirmed.body
    after = confirmed.json
    assert (after["status"], after["faces"][0]["subject_id"]) == ("approved", rose["subject_id"])
    assert buckets.places(path) == ["library"]
    assert "pending_reassign" not in after["review"]
    # And the original match is recorded, with both people
    done = after["history"][-1]
    assert done["action"] == "reassigned"
    assert done["original"]["subject_id"] == kit["subject_id"]
    assert done["original"]["distance"] == original["distance"]
    assert done["people"] == [ana, _me(api, tenant.second_reviewer)["person"]]
    # And Kit's appearance row is kept (his rights requests still find the photo)
    assets = DynamoAssets()
    assert asset_id in assets.appearances(tenant.id, kit["subject_id"])
    assert asset_id in assets.appearances(tenant.id, rose["subject_id"])

    # When Kit is later erased, the recorded original match no longer names him
    erased = api.call("POST", f"/subjects/{kit['subject_id']}/erase", key=tenant.admin)
    assert erased.status == 200, erased.body
    record = api.call("GET", f"/assets/{asset_id}", key=tenant.admin)
    assert kit["subject_id"] not in record.body.decode()
    assert record.json["status"] == "approved"
    assert asset_id not in assets.appearances(tenant.id, kit["subject_id"])


def test_a_redaction_by_one_person_does_not_publish_until_a_second_confirms(
    world: dict[str, Any],
) -> None:
    api, tenant, buckets = world["api"], world["tenant"], world["buckets"]
    for folder in ("obama", "biden"):
        _person(api, tenant, folder)
    buckets.upload("events/stage.jpg", photo("uploads", "stage-with-child.jpg"))
    asset_id = asset_id_of(api, tenant.admin, "events/stage.jpg")
    variant = "events/stage.redacted.png"
    why = {"justification": "publish without the child"}
    # When one reviewer asks for the pixelated copy
    asked = api.call("POST", f"/assets/{asset_id}/redact", key=tenant.reviewer, json_body=why)
    # Then it is a request on the held original; no variant exists
    assert asked.status == 202, asked.body
    assert asked.json["asset_id"] == asset_id and asked.json["status"] == "quarantined"
    ana = _me(api, tenant.reviewer)["person"]
    assert asked.json["review"]["pending_redaction"]["person"] == ana
    assert buckets.places(variant) == []
    # When the same person confirms with her other key: 403, still nothing published
    twin = _twin(api, tenant, tenant.reviewer)
    again = api.call("POST", f"/assets/{asset_id}/redact", key=twin, json_body=why)
    assert_error(again, 403, "same_reviewer")
    assert buckets.places(variant) == []
    # When a different person confirms
    done = api.call(
        "POST",
        f"/assets/{asset_id}/redact",
        key=tenant.second_reviewer,
        json_body={"justification": "checked the pixelation"},
    )
    # Then the variant is published, and records both people
    assert done.status == 201, done.body
    assert done.json["status"] == "approved" and buckets.places(variant) == ["library"]
    ben = _me(api, tenant.second_reviewer)["person"]
    assert done.json["review"]["redacted_from"]["people"] == [ana, ben]


@pytest.fixture(scope="module")
def policy_tenant(local_stack: Any) -> Tenant:
    return make_tenant("api-four-eyes-policy")


def test_one_admin_alone_cannot_raise_min_face_px(
    world: dict[str, Any], policy_tenant: Tenant
) -> None:
    api, tenant = world["api"], policy_tenant
    before = api.call("GET", "/policy", key=tenant.admin).json["min_face_px"]
    # When one admin raises min_face_px (large faces would count as not identifiable)
    asked = api.call("PATCH", "/policy", key=tenant.admin, json_body={"min_face_px": 400})
    # Then the change only waits for a second person; the gate still uses the old value
    assert asked.status == 202, asked.body
    assert asked.json["min_face_px"] == before
    assert asked.json["pending_change"]["changes"] == {"min_face_px": 400}
    assert api.call("GET", "/policy", key=tenant.admin).json["min_face_px"] == before
    # When the same admin confirms with another of their keys: 403
    twin = _twin(api, tenant, tenant.admin)
    again = api.call("PATCH", "/policy", key=twin, json_body={"min_face_px": 400})
    assert_error(again, 403, "same_reviewer")
    assert api.call("GET", "/policy", key=tenant.admin).json["min_face_px"] == before
    # When a second admin confirms the same change, it applies
    cleo = _key(api, tenant, "admin", "cleo's laptop", "cleo")
    done = api.call("PATCH", "/policy", key=cleo, json_body={"min_face_px": 400})
    assert done.status == 200, done.body
    assert api.call("GET", "/policy", key=tenant.admin).json["min_face_px"] == 400
    # And a change that lets the gate see more applies at once, with one admin
    tighter = api.call("PATCH", "/policy", key=tenant.admin, json_body={"min_face_px": 40})
    assert tighter.status == 200 and tighter.json["min_face_px"] == 40


def test_switching_a_collection_to_no_face_scan_needs_two_admins(
    world: dict[str, Any], policy_tenant: Tenant
) -> None:
    api, tenant = world["api"], policy_tenant
    change = {"scan_modes": {"products": "off"}}
    asked = api.call("PATCH", "/policy", key=tenant.admin, json_body=change)
    assert asked.status == 202, asked.body
    assert "products" not in asked.json["scan_modes"]
    cleo = _key(api, tenant, "admin", "cleo's second laptop", "cleo")
    done = api.call("PATCH", "/policy", key=cleo, json_body=change)
    assert done.status == 200 and done.json["scan_modes"]["products"] == "off"


def test_one_persons_second_key_cannot_confirm_their_own_release(world: dict[str, Any]) -> None:
    api, tenant, buckets = world["api"], world["tenant"], world["buckets"]
    path = "release/stranger.png"
    buckets.upload(path, photo("uploads", "stranger-portrait.png"))
    asset_id = asset_id_of(api, tenant.admin, path)
    why = {"justification": "model release on file"}
    # Given a release asked for by one reviewer
    asked = api.call("POST", f"/assets/{asset_id}/release", key=tenant.reviewer, json_body=why)
    assert asked.status == 202, asked.body
    # When she confirms it with a second key an admin minted for her
    twin = _twin(api, tenant, tenant.reviewer)
    again = api.call("POST", f"/assets/{asset_id}/release", key=twin, json_body=why)
    # Then 403: one person, however many keys
    assert_error(again, 403, "same_reviewer")
    assert buckets.places(path) == ["quarantine"]
    # When another person confirms, it is published, and both people are named
    done = api.call(
        "POST", f"/assets/{asset_id}/release", key=tenant.second_reviewer, json_body=why
    )
    assert done.status == 200, done.body
    assert buckets.places(path) == ["library"]
    people = done.json["review"]["released"]["people"]
    assert people == [_me(api, k)["person"] for k in (tenant.reviewer, tenant.second_reviewer)]
