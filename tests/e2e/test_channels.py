"""Clearance per channel end to end: the real API and handlers, the local stack (moto S3 tags).

Obama is enrolled with two quitclaims: one for the web, one for social media;
none for print. The tenant publishes what is cleared for the web. His photo
is in the library, and its object tags (what the DAM reads) say web and
social cleared, print and internal held, until the social quitclaim expires.
Withdrawing social re-tags it in place; withdrawing web (the publishing
purpose) pulls it from the library. The conservation checker agrees at each
step, and reports a tag that no longer says what the decision does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from chalice.test import Client

from devstack.api_server import api_dir, load_app
from quitclaim.bootstrap import conservation_service
from tests.integration.api.conftest import (
    Buckets,
    ChaliceApi,
    asset_id_of,
    b64,
    make_tenant,
    photo,
)

pytestmark = pytest.mark.e2e

TENANT = "channels-e2e"
PATH = "office.jpg"
WEB_UNTIL = "2027-12-31T00:00:00Z"
SOCIAL_UNTIL = "2027-06-30T00:00:00Z"


@dataclass
class World:
    stack: Any
    api: ChaliceApi
    admin: str
    buckets: Buckets
    subject_id: str
    consents: dict[str, str]  # purpose -> consent id
    asset_id: str


@pytest.fixture(scope="module")
def world(local_stack: Any) -> Iterator[World]:
    tenant = make_tenant(TENANT)
    buckets = Buckets(local_stack, TENANT)
    with Client(load_app(), stage_name="prod", project_dir=str(api_dir())) as client:
        api = ChaliceApi(client)
        # Given a tenant that publishes what is cleared for the web: a change that
        # lets print uploads through on less, so two administrators make it
        change = {"publishing_purposes": ["web"]}
        asked = api.call("PATCH", "/policy", key=tenant.admin, json_body=change)
        assert asked.status == 202, asked.body
        assert asked.json["pending_change"]["loosens"] == ["publishing_purposes"]
        second = api.call(
            "POST",
            "/keys",
            key=tenant.admin,
            json_body={"role": "admin", "label": "second admin", "person": "second admin"},
        ).json["secret"]
        done = api.call("PATCH", "/policy", key=second, json_body=change)
        assert done.status == 200, done.body
        assert done.json["publishing_purposes"] == ["web"]
        assert {"web", "social", "print", "internal"} <= set(done.json["purposes"])
        # And obama enrolled, with one quitclaim for the web and one for social media
        sid = api.call(
            "POST", "/subjects", key=tenant.admin, json_body={"display_name": "Barack Obama"}
        ).json["subject_id"]
        enrolled = api.call(
            "POST",
            f"/subjects/{sid}/photos",
            key=tenant.admin,
            json_body={
                "photos": [b64(photo("enroll", "obama", "obama-portrait.jpg"))],
                "biometric_consent": True,
            },
        )
        assert enrolled.status == 200, enrolled.body
        consents = {}
        for purpose, until in (("web", "2027-12-31"), ("social", "2027-06-30")):
            granted = api.call(
                "POST",
                f"/subjects/{sid}/consents",
                key=tenant.admin,
                json_body={
                    "purposes": [purpose],
                    "valid_from": "2026-01-01",
                    "expires_at": until,
                    "signer": "Barack Obama",
                    "form_version": "v3",
                },
            )
            assert granted.status == 201, granted.body
            consents[purpose] = granted.json["consent_id"]
        # When a photo of him is uploaded (the DAM's purpose says print)
        buckets.upload(PATH, photo("uploads", "obama-office.jpg"), purpose="print")
        asset_id = asset_id_of(api, tenant.admin, PATH)
        yield World(local_stack, api, tenant.admin, buckets, sid, consents, asset_id)


def _tags(world: World, place: str) -> dict[str, str]:
    bucket = world.buckets.library if place == "library" else world.buckets.quarantine
    found = world.buckets.s3.get_object_tagging(Bucket=bucket, Key=f"{TENANT}/{PATH}")
    return {t["Key"]: t["Value"] for t in found["TagSet"]}


def _withdraw(world: World, purpose: str) -> None:
    reply = world.api.call(
        "POST",
        f"/subjects/{world.subject_id}/consents/{world.consents[purpose]}/revoke",
        key=world.admin,
    )
    assert reply.status == 200, reply.body
    world.stack.drain()


def _rules() -> list[str]:
    return sorted(v.rule for v in conservation_service().check(TENANT).violations)


def test_1_cleared_for_web_and_social_it_is_published_with_tags_saying_so(world: World) -> None:
    # Then it is in the library, cleared for the web (its publishing purpose)
    assert world.buckets.places(PATH) == ["library"]
    asset = world.api.call("GET", f"/assets/{world.asset_id}", key=world.admin).json
    assert (asset["status"], asset["reasons"]) == ("approved", [])
    # And its tags say per channel what is cleared, until when, and which asset it is
    assert _tags(world, "library") == {
        "quitclaim-asset-id": world.asset_id,
        "quitclaim-channel-web": "cleared",
        "quitclaim-channel-social": "cleared",
        "quitclaim-channel-print": "held",
        "quitclaim-channel-internal": "held",
        "quitclaim-cleared-until": SOCIAL_UNTIL,
    }
    assert _rules() == []


def test_2_withdrawing_social_updates_the_tags_in_place(world: World) -> None:
    # When the social quitclaim is withdrawn
    _withdraw(world, "social")
    # Then the image stays in the library, its tags say social is held now
    assert world.buckets.places(PATH) == ["library"]
    tags = _tags(world, "library")
    assert tags["quitclaim-channel-social"] == "held"
    assert tags["quitclaim-channel-web"] == "cleared"
    assert tags["quitclaim-cleared-until"] == WEB_UNTIL
    assert _rules() == []


def test_3_the_checker_reports_tags_that_disagree_with_the_decision(world: World) -> None:
    # When the library copy's tags are changed behind the decision's back
    key = f"{TENANT}/{PATH}"
    s3 = world.buckets.s3
    saved = _tags(world, "library")
    wrong = {**saved, "quitclaim-channel-social": "cleared"}
    tagging = {"TagSet": [{"Key": k, "Value": v} for k, v in wrong.items()]}
    s3.put_object_tagging(Bucket=world.buckets.library, Key=key, Tagging=tagging)
    # Then the checker reports it, and no longer once they are put back
    assert _rules() == ["tags_disagree"]
    tagging = {"TagSet": [{"Key": k, "Value": v} for k, v in saved.items()]}
    s3.put_object_tagging(Bucket=world.buckets.library, Key=key, Tagging=tagging)
    assert _rules() == []


def test_4_withdrawing_web_a_publishing_purpose_pulls_it(world: World) -> None:
    # When the web quitclaim is withdrawn too
    _withdraw(world, "web")
    # Then the image leaves the library, and its held copy says why
    assert world.buckets.places(PATH) == ["quarantine"]
    asset = world.api.call("GET", f"/assets/{world.asset_id}", key=world.admin).json
    assert (asset["status"], asset["reasons"]) == ("quarantined", ["consent_revoked"])
    tags = _tags(world, "quarantine")
    assert tags["quitclaim-channel-web"] == "held"
    assert tags["quitclaim-channel-social"] == "held"
    assert "quitclaim-cleared-until" not in tags
    assert _rules() == []
