"""Data-subject rights end to end: real photos, the real API and ingest handlers, local AWS.

One person (obama) is enrolled with a signed consent; two photos of him alone
are approved and a third (with a stranger) is held and kept by a reviewer.
Then, in order: a selfie search stores nothing; the access export lists every
asset, the consent with its document hash and every decision; the erasure
leaves nothing of him in any table, bucket or gallery but consent tombstones;
a new photo of him is an unknown face.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from chalice.test import Client

from devstack.api_server import api_dir, load_app
from quitclaim.adapters.dynamo import DynamoSubjects
from quitclaim.usecases import subject_rights as rights_module
from tests.conftest import FACES
from tests.integration.api.conftest import (
    Buckets,
    ChaliceApi,
    asset_id_of,
    b64,
    make_tenant,
    photo,
)

pytestmark = pytest.mark.e2e

TENANT = "rights-e2e"
NAME = "Barack <Obama> & Co"  # escaped in the HTML summary
DOCUMENT = b"%PDF-1.7 portrait consent signed by Barack Obama"
APPROVED = ("office.jpg", "speech.jpg")
KEPT = "with-biden.jpg"
TABLES = (
    "TenantsTable",
    "ApiKeysTable",
    "SubjectsTable",
    "ConsentsTable",
    "AssetsTable",
    "AppearancesTable",
    "WebhooksTable",
    "IdempotencyTable",
)
BUCKETS = ("UploadsBucketName", "LibraryBucketName", "QuarantineBucketName", "DocumentsBucketName")


@dataclass
class World:
    api: ChaliceApi
    admin: str
    reviewer: str
    buckets: Buckets
    subject_id: str
    consent_id: str
    assets: dict[str, str]  # path -> asset id


@pytest.fixture(scope="module")
def world(local_stack: Any) -> Iterator[World]:
    tenant = make_tenant(TENANT)
    buckets = Buckets(local_stack, TENANT)
    with Client(load_app(), stage_name="prod", project_dir=str(api_dir())) as client:
        api = ChaliceApi(client)
        # Given obama enrolled, with a signed consent for the web
        sid = api.call(
            "POST", "/subjects", key=tenant.admin, json_body={"display_name": NAME}
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
        consent = api.call(
            "POST",
            f"/subjects/{sid}/consents",
            key=tenant.admin,
            json_body={
                "purposes": ["web"],
                "valid_from": "2026-01-01",
                "expires_at": "2027-12-31",
                "signer": NAME,
                "form_version": "v3",
                "document_base64": b64(DOCUMENT),
                "document_type": "application/pdf",
            },
        )
        assert consent.status == 201, consent.body
        # And the two photos of him alone approved, a third with Biden (not enrolled)
        # held for the unknown face and kept by a reviewer
        buckets.upload("office.jpg", photo("uploads", "obama-office.jpg"))
        buckets.upload("speech.jpg", photo("uploads", "obama-speech.jpg"))
        buckets.upload(KEPT, photo("uploads", "two-portraits.jpg"))
        assets = {p: asset_id_of(api, tenant.admin, p) for p in (*APPROVED, KEPT)}
        kept = api.call(
            "POST",
            f"/assets/{assets[KEPT]}/keep",
            key=tenant.reviewer,
            json_body={"justification": "the other person must sign first"},
        )
        assert kept.status == 200, kept.body
        yield World(
            api, tenant.admin, tenant.reviewer, buckets, sid, consent.json["consent_id"], assets
        )


def _status(world: World, path: str) -> tuple[str, list[str]]:
    asset = world.api.call("GET", f"/assets/{world.assets[path]}", key=world.admin).json
    return asset["status"], asset["reasons"]


def test_given_state(world: World) -> None:
    for path in APPROVED:
        assert _status(world, path) == ("approved", [])
        assert world.buckets.places(path) == ["library"]
    assert _status(world, KEPT) == ("quarantined", ["unknown_face"])


# ---------------------------------------------------------------------- snapshots


def _table_items(stack: Any, logical_id: str) -> list[str]:
    dynamodb = stack.client("dynamodb")
    items: list[str] = []
    kwargs: dict[str, Any] = {"TableName": stack.resources[logical_id], "ConsistentRead": True}
    while True:
        page = dynamodb.scan(**kwargs)
        # The month's usage counters (counts only: the search is a billed API
        # call) are compared on their own by the test.
        items += [
            json.dumps(i, sort_keys=True, default=str)
            for i in page["Items"]
            if "#usage#" not in i.get("tenant", {}).get("S", "")
        ]
        if "LastEvaluatedKey" not in page:
            return sorted(items)
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _bucket_versions(stack: Any, output: str) -> list[tuple[str, str, bool]]:
    s3 = stack.client("s3")
    found: list[tuple[str, str, bool]] = []
    kwargs: dict[str, Any] = {"Bucket": stack.outputs[output]}
    while True:
        page = s3.list_object_versions(**kwargs)
        found += [(v["Key"], v["VersionId"], False) for v in page.get("Versions", [])]
        found += [(m["Key"], m["VersionId"], True) for m in page.get("DeleteMarkers", [])]
        if not page.get("IsTruncated"):
            return sorted(found)
        kwargs["KeyMarker"] = page["NextKeyMarker"]
        kwargs["VersionIdMarker"] = page["NextVersionIdMarker"]


def _api_calls(stack: Any) -> int:
    """The tenant's billed API calls, all months together."""
    found = stack.client("dynamodb").scan(
        TableName=stack.resources["TenantsTable"],
        FilterExpression="begins_with(tenant, :usage)",
        ExpressionAttributeValues={":usage": {"S": f"{TENANT}#usage#"}},
        ConsistentRead=True,
    )["Items"]
    return sum(int(i.get("api_calls", {}).get("N", "0")) for i in found)


def _snapshot(stack: Any) -> dict[str, Any]:
    return {
        **{t: _table_items(stack, t) for t in TABLES},
        **{b: _bucket_versions(stack, b) for b in BUCKETS},
    }


def _requests(stack: Any) -> list[dict[str, Any]]:
    table = stack.resources["RequestsTable"]
    items = stack.client("dynamodb").scan(TableName=table, ConsistentRead=True)["Items"]
    return [i for i in items if i["tenant"]["S"] == TENANT]


# ---------------------------------------------------------------------- the flow


def test_a_selfie_search_finds_his_images_and_stores_nothing(
    world: World, local_stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    audited: list[tuple[str, dict[str, Any]]] = []
    real = rights_module.audit
    monkeypatch.setattr(
        rights_module,
        "audit",
        lambda action, **fields: (audited.append((action, fields)), real(action, **fields)),
    )
    before = _snapshot(local_stack)
    calls_before = _api_calls(local_stack)
    logged = len(_requests(local_stack))
    selfie = photo("resolution", "obama-480p.jpg")
    # When the person sends another photo of himself (raw JPEG body)
    reply = world.api.call(
        "POST",
        "/appearances/search",
        key=world.admin,
        body=selfie,
        headers={"Content-Type": "image/jpeg"},
    )
    # Then his three images are found
    assert reply.status == 200, reply.body
    found = reply.json
    assert found["subject_id"] == world.subject_id and found["template_stored"] is False
    assert sorted(a["asset_id"] for a in found["appearances"]) == sorted(world.assets.values())
    assert all(len(a["faces"]) == 1 for a in found["appearances"])
    # And no table (but the requests log) and no bucket changed: no template, no photo
    local_stack.drain()
    assert _snapshot(local_stack) == before
    # And the only other change is the tenant's bill: one more API call
    assert _api_calls(local_stack) == calls_before + 1
    # And the requests log holds one new row, with counts and ids only
    rows = _requests(local_stack)
    assert len(rows) == logged + 1
    row = next(r for r in rows if r["kind"]["S"] == "search")
    assert json.loads(row["detail"]["S"]) == {
        "faces_in_photo": 1,
        "matched": True,
        "appearances": 3,
    }
    text = json.dumps(rows)
    assert NAME not in text and base64.b64encode(selfie[:64]).decode() not in text
    assert not any("B" in attr for r in rows for attr in r.values())  # no binary attribute
    # And the search and its result count were audited
    assert ("rights.search", found["request_id"], 3) in {
        (action, f.get("request_id"), f.get("results")) for action, f in audited
    }


def test_the_access_export_lists_everything_held(world: World) -> None:
    reply = world.api.call("GET", f"/subjects/{world.subject_id}/export", key=world.admin)
    assert reply.status == 200, reply.body
    data = base64.b64decode(reply.json["export_base64"])
    assert hashlib.sha256(data).hexdigest() == reply.json["sha256"]
    archive = zipfile.ZipFile(io.BytesIO(data))
    manifest = json.loads(archive.read("manifest.json"))
    # The subject, without templates (only their number)
    assert manifest["subject"]["display_name"] == NAME
    assert manifest["subject"]["templates_enrolled"] == 1
    assert "templates" not in manifest["subject"]
    # Both approved assets (and the held one), with only his own face
    listed = {a["asset_id"]: a for a in manifest["appearances"]}
    assert set(listed) == set(world.assets.values())
    for path in APPROVED:
        entry = listed[world.assets[path]]
        assert entry["status"] == "approved" and entry["path"] == path
        assert entry["location"].endswith(f"/{TENANT}/{path}")
        assert len(entry["faces"]) == 1 and entry["other_faces"] == 0
    assert listed[world.assets[KEPT]]["other_faces"] == 1
    # The consent with its history and its signed document, hash verified
    (consent,) = manifest["consents"]
    assert consent["consent_id"] == world.consent_id
    evidence = consent["evidence"]
    assert evidence["document_sha256"] == hashlib.sha256(DOCUMENT).hexdigest()
    assert evidence["document_sha256_verified"] is True
    assert archive.read(evidence["document_file"]) == DOCUMENT
    assert [e["event"] for e in consent["history"]] == ["granted"]
    # Every decision and reviewer action on those assets, as the assets record them
    for asset_id, entry in listed.items():
        recorded = world.api.call("GET", f"/assets/{asset_id}", key=world.admin).json
        assert entry["decisions"] == recorded["history"], asset_id
    actions = [d["action"] for d in listed[world.assets[KEPT]]["decisions"]]
    assert actions == ["decided", "kept"]
    # And a readable summary, with every value escaped
    summary = archive.read("summary.html").decode()
    assert "Barack &lt;Obama&gt; &amp; Co" in summary and NAME not in summary
    for path in (*APPROVED, KEPT):
        assert path in summary
    assert "the other person must sign first" in summary


def test_erasure_leaves_nothing_of_him_and_his_images_leave_the_library(
    world: World, local_stack: Any
) -> None:
    sid = world.subject_id
    # When he is erased
    reply = world.api.call("POST", f"/subjects/{sid}/erase", key=world.admin)
    assert reply.status == 200, reply.body
    local_stack.drain()
    report = reply.json
    # Then the report's verification read every store and found nothing
    verification = report["verification"]
    assert verification["ok"] is True
    assert {c["store"] for c in verification["checks"]} >= {
        "subjects table",
        "gallery",
        "consents table",
        "documents bucket",
        "appearances table",
        "assets table",
        "library bucket",
    }
    assert all(c["ok"] and c["found"] == 0 for c in verification["checks"])
    deleted = {d["store"]: d for d in report["deleted"] if d["store"] != "subjects table"}
    assert deleted["documents bucket"]["count"] == 1
    assert sorted(deleted["assets table"]["ids"]) == sorted(world.assets.values())
    assert sorted(deleted["library bucket"]["ids"]) == sorted(world.assets[p] for p in APPROVED)

    # And an independent look at every table finds his id only in consent
    # tombstones and the requests log
    for logical_id in TABLES:
        mentions = [i for i in _table_items(local_stack, logical_id) if sid in i]
        if logical_id == "ConsentsTable":
            assert len(mentions) == 1
            item = json.loads(mentions[0])
            assert item["status"] == {"S": "erased"}
            assert set(item) & {"signer", "form_version", "document_key", "document_type"} == set()
            assert item["document_sha256"]["S"] == hashlib.sha256(DOCUMENT).hexdigest()
        else:
            assert mentions == [], logical_id
    everything = json.dumps([_table_items(local_stack, t) for t in TABLES])
    assert NAME not in everything and json.dumps(NAME)[1:-1] not in everything
    # And no version of his document is left, nor any of his images in the library
    assert [v for v in _bucket_versions(local_stack, "DocumentsBucketName") if sid in v[0]] == []
    library = _bucket_versions(local_stack, "LibraryBucketName")
    assert [k for k, _, _ in library if k.startswith(f"{TENANT}/")] == []
    # And no template of his is in the gallery
    assert [s for s, _ in DynamoSubjects().templates(TENANT)] == []
    # And the images he was in are held, his face now unknown
    for path in APPROVED:
        assert _status(world, path) == ("quarantined", ["unknown_face"])
        assert world.buckets.places(path) == ["quarantine"]
    assert _status(world, KEPT) == ("quarantined", ["unknown_face"])

    # And verifying again later (GET) reads every store again and agrees
    again = world.api.call("GET", f"/subjects/{sid}/erasure", key=world.admin)
    assert again.status == 200 and again.json["verification"]["ok"] is True
    # And a second erasure finds nothing left to erase
    assert world.api.call("POST", f"/subjects/{sid}/erase", key=world.admin).status == 404


def test_after_erasure_a_new_photo_of_him_is_an_unknown_face(world: World) -> None:
    # When a new photo of him is uploaded
    world.buckets.upload("after.jpg", photo("resolution", "obama-720p.jpg"))
    asset_id = asset_id_of(world.api, world.admin, "after.jpg")
    asset = world.api.call("GET", f"/assets/{asset_id}", key=world.admin).json
    # Then nobody is recognised: it is held for an unknown face
    assert (asset["status"], asset["reasons"]) == ("quarantined", ["unknown_face"])
    assert [f["subject_id"] for f in asset["faces"]] == [None]
    # And a selfie search finds nobody either
    found = world.api.call(
        "POST",
        "/appearances/search",
        key=world.admin,
        json_body={
            "photo_base64": b64(FACES.joinpath("resolution", "obama-480p.jpg").read_bytes())
        },
    ).json
    assert found["subject_id"] is None and found["appearances"] == []
