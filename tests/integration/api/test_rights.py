"""Data-subject rights through the API: export, erasure, redaction, records of processing.

The photo-heavy flows (redaction, auto-redaction) run once, through Chalice's
client; the cheap checks run over both transports.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import main
from quitclaim.bootstrap import face_engine
from quitclaim.domain.models import Box
from quitclaim.faces.imaging import decode_image
from quitclaim.faces.redaction import padded
from tests.integration.api.conftest import (
    Api,
    Buckets,
    HttpApi,
    Tenant,
    assert_error,
    asset_id_of,
    b64,
    make_tenant,
    photo,
)

pytestmark = pytest.mark.integration

DOCUMENT = b"%PDF-1.4 signed quitclaim"
MATCH_THRESHOLD = 0.5  # the default tenant policy


@pytest.fixture(scope="module")
def tenant(local_stack: Any) -> Tenant:
    return make_tenant("api-rights")


@pytest.fixture(scope="module")
def spec(chalice_api: Api) -> dict[str, Any]:
    served: dict[str, Any] = chalice_api.call("GET", "/openapi.json").json
    return served


def _conforms(spec: dict[str, Any], schema: str, body: Any) -> None:
    document = {"$ref": f"#/components/schemas/{schema}", "components": spec["components"]}
    jsonschema.validate(body, document, cls=jsonschema.Draft202012Validator)


def _subject(api: Api, tenant: Tenant, name: str, *, document: bool = True) -> tuple[str, str]:
    sid = api.call("POST", "/subjects", key=tenant.admin, json_body={"display_name": name}).json[
        "subject_id"
    ]
    body: dict[str, Any] = {
        "purposes": ["web"],
        "valid_from": "2026-01-01",
        "signer": name,
        "form_version": "v1",
    }
    if document:
        body |= {"document_base64": b64(DOCUMENT), "document_type": "application/pdf"}
    consent = api.call("POST", f"/subjects/{sid}/consents", key=tenant.admin, json_body=body)
    assert consent.status == 201, consent.body
    return sid, consent.json["consent_id"]


# ---------------------------------------------------------------------- access


def test_export_is_for_admins_of_the_tenant_only(api: Api, tenant: Tenant) -> None:
    sid, _ = _subject(api, tenant, f"Private {api.name}")
    other = make_tenant("api-rights-other")
    # A reviewer may not export; another tenant's admin does not even see the person
    assert_error(api.call("GET", f"/subjects/{sid}/export", key=tenant.reviewer), 403)
    for method, path in (
        ("GET", f"/subjects/{sid}/export"),
        ("POST", f"/subjects/{sid}/erase"),
        ("GET", f"/subjects/{sid}/erasure"),
        ("DELETE", f"/subjects/{sid}"),
    ):
        reply = api.call(method, path, key=other.admin)
        assert_error(reply, 404)
        assert f"Private {api.name}" not in reply.body.decode()
    # And the person is still there, whole
    assert api.call("GET", f"/subjects/{sid}/export", key=tenant.admin).status == 200


def test_export_answers_a_zip_with_manifest_summary_and_document(
    api: Api, tenant: Tenant, spec: dict[str, Any]
) -> None:
    sid, cid = _subject(api, tenant, f"Export {api.name}")
    reply = api.call("GET", f"/subjects/{sid}/export", key=tenant.admin)
    assert reply.status == 200, reply.body
    _conforms(spec, "AccessExport", reply.json)
    archive = zipfile.ZipFile(io.BytesIO(base64.b64decode(reply.json["export_base64"])))
    assert sorted(archive.namelist()) == [
        f"documents/{cid}.pdf",
        "manifest.json",
        "summary.html",
    ]
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["appearances"] == [] and manifest["counts"]["documents"] == 1
    assert archive.read(f"documents/{cid}.pdf") == DOCUMENT
    assert "thumbnails" in manifest["not_exported"]


def test_cli_writes_the_export_to_a_file(http_api: HttpApi, tenant: Tenant, tmp_path: Path) -> None:
    sid, _ = _subject(http_api, tenant, "Cli Export")
    out = tmp_path / "export.zip"
    env = {"QUITCLAIM_URL": http_api.base_url, "QUITCLAIM_KEY": tenant.admin}
    result = CliRunner().invoke(
        main, ["api", "subjects", "export", sid, "--out", str(out)], env=env
    )
    assert result.exit_code == 0, result.output
    assert zipfile.ZipFile(out).read("manifest.json")
    assert str(out) in result.stdout and sid in result.stdout


def test_cli_erases_verifies_and_searches(
    http_api: HttpApi, tenant: Tenant, tmp_path: Path
) -> None:
    sid, _ = _subject(http_api, tenant, "Cli Erase")
    env = {"QUITCLAIM_URL": http_api.base_url, "QUITCLAIM_KEY": tenant.admin}

    def cli(*args: str) -> str:
        result = CliRunner().invoke(main, ["api", *args], env=env)
        assert result.exit_code == 0, result.output
        return result.stdout

    erased = cli("subjects", "erase", sid)
    assert "verification (complete):" in erased and "documents bucket" in erased
    assert json.loads(cli("subjects", "erasure", sid, "--json"))["verification"]["ok"] is True
    # A selfie of nobody enrolled in this tenant: no match, and nothing kept
    selfie = tmp_path / "selfie.jpg"
    selfie.write_bytes(photo("resolution", "obama-240p.jpg"))
    found = json.loads(cli("subjects", "search", str(selfie), "--json"))
    assert (found["subject_id"], found["appearances"], found["template_stored"]) == (
        None,
        [],
        False,
    )


# ---------------------------------------------------------------------- erasure


def _versions(local_stack: Any, prefix: str) -> list[dict[str, Any]]:
    s3 = local_stack.client("s3")
    page = s3.list_object_versions(Bucket=local_stack.outputs["DocumentsBucketName"], Prefix=prefix)
    return [*page.get("Versions", []), *page.get("DeleteMarkers", [])]


def test_erasure_deletes_every_document_version_and_proves_it(
    api: Api, tenant: Tenant, local_stack: Any, spec: dict[str, Any]
) -> None:
    sid, cid = _subject(api, tenant, f"Erase {api.name}")
    prefix = f"{tenant.id}/{sid}/"
    # Given the signed document overwritten once and then deleted (a delete marker):
    # three versions under the person's prefix
    s3 = local_stack.client("s3")
    bucket = local_stack.outputs["DocumentsBucketName"]
    (key,) = {v["Key"] for v in _versions(local_stack, prefix)}
    s3.put_object(Bucket=bucket, Key=key, Body=DOCUMENT)
    s3.delete_object(Bucket=bucket, Key=key)
    assert len(_versions(local_stack, prefix)) == 3
    # When the person is erased
    reply = api.call("POST", f"/subjects/{sid}/erase", key=tenant.admin)
    assert reply.status == 200, reply.body
    _conforms(spec, "ErasureReport", reply.json)
    # Then no version is left, and the report names each one it deleted
    assert _versions(local_stack, prefix) == []
    documents = next(d for d in reply.json["deleted"] if d["store"] == "documents bucket")
    assert documents["count"] == 3 and all(i.startswith(key) for i in documents["ids"])
    assert reply.json["verification"]["ok"] is True
    # And the consent is a tombstone: ids, dates, outcome and the document's hash
    table = local_stack.resources["ConsentsTable"]
    item = local_stack.client("dynamodb").get_item(
        TableName=table,
        Key={"pk": {"S": f"{tenant.id}#{sid}"}, "sk": {"S": f"consent#{cid}"}},
        ConsistentRead=True,
    )["Item"]
    assert item["status"]["S"] == "erased" and "revoked_at" in item
    assert {"signer", "form_version", "document_key", "document_type"} & set(item) == set()
    assert item["document_sha256"]["S"] == hashlib.sha256(DOCUMENT).hexdigest()
    events = [e["M"]["event"]["S"] for e in item["history"]["L"]]
    assert events == ["granted", "revoked", "erased"]
    # And the person is gone from the API; the erasure can be verified again
    assert_error(api.call("GET", f"/subjects/{sid}", key=tenant.admin), 404)
    again = api.call("GET", f"/subjects/{sid}/erasure", key=tenant.admin)
    assert again.status == 200 and again.json["verification"]["ok"] is True
    _conforms(spec, "ErasureStatus", again.json)
    assert again.json["request_id"] == reply.json["request_id"]
    # And erasing (or deleting) again finds nothing left
    assert_error(api.call("POST", f"/subjects/{sid}/erase", key=tenant.admin), 404)
    assert_error(api.call("DELETE", f"/subjects/{sid}", key=tenant.admin), 404)


def test_an_interrupted_erasure_is_reported_incomplete_and_finished_by_a_second_call(
    chalice_api: Api, tenant: Tenant, local_stack: Any
) -> None:
    api = chalice_api
    sid, _ = _subject(api, tenant, "Interrupted")
    # Given an erasure that stopped right after deleting the subject record
    # (as a crash would leave it): the document and the consent's evidence remain
    local_stack.client("dynamodb").delete_item(
        TableName=local_stack.resources["SubjectsTable"],
        Key={"tenant": {"S": tenant.id}, "subject_id": {"S": sid}},
    )
    # When the erasure is asked for again
    reply = api.call("POST", f"/subjects/{sid}/erase", key=tenant.admin)
    # Then it completes what was left, and proves it
    assert reply.status == 200, reply.body
    assert reply.json["verification"]["ok"] is True
    assert _versions(local_stack, f"{tenant.id}/{sid}/") == []


def test_a_failed_check_is_reported(chalice_api: Api, tenant: Tenant, local_stack: Any) -> None:
    api = chalice_api
    sid, _ = _subject(api, tenant, "Leftover")
    reply = api.call("POST", f"/subjects/{sid}/erase", key=tenant.admin)
    assert reply.json["verification"]["ok"] is True
    # Given a document version that reappeared under the person's prefix (a restore)
    local_stack.client("s3").put_object(
        Bucket=local_stack.outputs["DocumentsBucketName"],
        Key=f"{tenant.id}/{sid}/restored",
        Body=DOCUMENT,
    )
    # When the erasure is verified again, then that store fails the check
    checks = api.call("GET", f"/subjects/{sid}/erasure", key=tenant.admin).json["verification"]
    assert checks["ok"] is False
    failed = [c for c in checks["checks"] if not c["ok"]]
    assert [(c["store"], c["found"]) for c in failed] == [("documents bucket", 1)]
    # And erasing again removes it
    assert api.call("POST", f"/subjects/{sid}/erase", key=tenant.admin).status == 200
    assert api.call("GET", f"/subjects/{sid}/erasure", key=tenant.admin).json["verification"]["ok"]


# ---------------------------------------------------------------------- redaction


@pytest.fixture(scope="module")
def stage(chalice_api: Api, local_stack: Any) -> dict[str, Any]:
    """obama and biden enrolled with web consents; the stage photo with the child held."""
    api = chalice_api
    tenant = make_tenant("api-redact")
    for person in ("obama", "biden"):
        sid, _ = _subject(api, tenant, person.title(), document=False)
        enrolled = api.call(
            "POST",
            f"/subjects/{sid}/photos",
            key=tenant.admin,
            json_body={
                "photos": [b64(photo("enroll", person, f"{person}-portrait.jpg"))],
                "biometric_consent": True,
            },
        )
        assert enrolled.status == 200, enrolled.body
    buckets = Buckets(local_stack, tenant.id)
    buckets.upload("events/stage.jpg", photo("uploads", "stage-with-child.jpg"))
    asset_id = asset_id_of(api, tenant.admin, "events/stage.jpg")
    held = api.call("GET", f"/assets/{asset_id}", key=tenant.admin).json
    assert (held["status"], held["reasons"]) == ("quarantined", ["unknown_face"])
    return {"api": api, "tenant": tenant, "buckets": buckets, "asset": held}


def test_redaction_publishes_a_variant_the_engine_cannot_reidentify(
    stage: dict[str, Any], local_stack: Any, spec: dict[str, Any]
) -> None:
    api, tenant, held = stage["api"], stage["tenant"], stage["asset"]
    child = next(i for i, f in enumerate(held["faces"]) if f["reason"] == "unknown_face")
    # A justification is required, as for every review action
    no_reason = api.call(
        "POST", f"/assets/{held['asset_id']}/redact", key=tenant.reviewer, json_body={}
    )
    assert_error(no_reason, 400, field="justification")
    # When a reviewer asks for the held photo redacted, and a second reviewer confirms
    asked = api.call(
        "POST",
        f"/assets/{held['asset_id']}/redact",
        key=tenant.reviewer,
        json_body={"justification": "publish without the child"},
    )
    assert asked.status == 202, asked.body
    _conforms(spec, "AssetRecord", asked.json)
    reply = api.call(
        "POST",
        f"/assets/{held['asset_id']}/redact",
        key=tenant.second_reviewer,
        json_body={"justification": "publish without the child"},
    )
    # Then a variant is recorded and published, approved on its own scan
    assert reply.status == 201, reply.body
    _conforms(spec, "AssetRecord", reply.json)
    variant = reply.json
    key = f"{tenant.id}/events/stage.redacted.png"
    assert (variant["status"], variant["dest_key"]) == ("approved", key)
    assert variant["review"]["redacted_from"]["asset_id"] == held["asset_id"]
    assert variant["history"][0]["justification"] == "publish without the child"
    consented = sorted(f["subject_id"] for f in variant["faces"] if f["subject_id"])
    assert consented == sorted(f["subject_id"] for f in held["faces"] if f["subject_id"])
    assert all(f["verdict"] == "valid" for f in variant["faces"] if f["identifiable"])
    s3 = local_stack.client("s3")
    published = s3.get_object(Bucket=local_stack.outputs["LibraryBucketName"], Key=key)
    assert published["Metadata"]["quitclaim-asset-id"] == variant["asset_id"]
    published_bytes = published["Body"].read()
    # And it carries its own clearance per channel, as the DAM reads it (docs/channels.md)
    tagging = s3.get_object_tagging(Bucket=local_stack.outputs["LibraryBucketName"], Key=key)
    tags = {t["Key"]: t["Value"] for t in tagging["TagSet"]}
    assert tags["quitclaim-asset-id"] == variant["asset_id"]
    assert tags["quitclaim-channel-web"] == "cleared"
    assert variant["clearance"]["channels"]["web"] == {"cleared": True, "reasons": []}
    # And the original stays held, naming its variant
    original = api.call("GET", f"/assets/{held['asset_id']}", key=tenant.admin).json
    assert original["status"] == "quarantined"
    assert original["review"]["redacted"]["asset_id"] == variant["asset_id"]
    assert stage["buckets"].places("events/stage.jpg") == ["quarantine"]

    # And outside the padded box of the child's face every pixel is the original's
    limits = {"max_bytes": 50 << 20, "max_pixels": 60_000_000, "max_frames": 1}
    before = decode_image(photo("uploads", "stage-with-child.jpg"), **limits).frames[0]
    after = decode_image(published_bytes, **limits).frames[0]
    assert before.shape == after.shape
    box = padded(Box(*held["faces"][child]["box"]), before.shape[1], before.shape[0])
    outside = np.ones(before.shape[:2], dtype=bool)
    outside[box.top : box.bottom, box.left : box.right] = False
    assert np.array_equal(before[outside], after[outside])
    assert not np.array_equal(before[~outside], after[~outside])

    # And the engine finds no face there that is the child's (or anyone enrolled)
    def inside(left: int, top: int, right: int, bottom: int) -> bool:
        x, y = (left + right) / 2, (top + bottom) / 2
        return box.left <= x < box.right and box.top <= y < box.bottom

    assert not [f for f in variant["faces"] if inside(*f["box"]) and f["subject_id"]]
    engine = face_engine()
    original_child = next(
        o
        for o in engine.analyze(engine.decode(photo("uploads", "stage-with-child.jpg")))
        if o.box == Box(*held["faces"][child]["box"])
    )
    for face in engine.analyze(engine.decode(published_bytes)):
        if inside(*face.box.as_list()):
            distance = float(np.linalg.norm(face.encoding - original_child.encoding))
            assert distance > MATCH_THRESHOLD

    # And a second redaction of the same photo is refused
    again = api.call(
        "POST",
        f"/assets/{held['asset_id']}/redact",
        key=tenant.reviewer,
        json_body={"justification": "again"},
    )
    assert_error(again, 409, "redacted")
    # And an approved asset cannot be redacted
    assert_error(
        api.call(
            "POST",
            f"/assets/{variant['asset_id']}/redact",
            key=tenant.reviewer,
            json_body={"justification": "not held"},
        ),
        409,
        "not_quarantined",
    )


def test_a_withdrawal_pulls_the_redacted_variant_too(stage: dict[str, Any]) -> None:
    api, tenant = stage["api"], stage["tenant"]
    variant_path = "events/stage.redacted.png"
    variant_id = asset_id_of(api, tenant.admin, variant_path)
    variant = api.call("GET", f"/assets/{variant_id}", key=tenant.admin).json
    sid = next(f["subject_id"] for f in variant["faces"] if f["subject_id"])
    cid = next(f["consent_id"] for f in variant["faces"] if f["subject_id"] == sid)
    # When one of the consented people withdraws
    api.call("POST", f"/subjects/{sid}/consents/{cid}/revoke", key=tenant.admin, json_body={})
    # Then the variant leaves the library like any other image of them
    after = api.call("GET", f"/assets/{variant_id}", key=tenant.admin).json
    assert (after["status"], after["reasons"]) == ("quarantined", ["consent_revoked"])
    assert stage["buckets"].places(variant_path) == ["quarantine"]


def test_auto_redact_publishes_the_variant_at_ingest(
    stage: dict[str, Any], local_stack: Any
) -> None:
    api, tenant, buckets = stage["api"], stage["tenant"], stage["buckets"]
    # Given the tenant's policy says: redact instead of only holding (two admins: it
    # publishes more)
    asked = api.call("PATCH", "/policy", key=tenant.admin, json_body={"auto_redact": True})
    assert asked.status == 202 and asked.json["auto_redact"] is False
    second = api.call(
        "POST",
        "/keys",
        key=tenant.admin,
        json_body={"role": "admin", "label": "second admin", "person": "second admin"},
    ).json["secret"]
    changed = api.call("PATCH", "/policy", key=second, json_body={"auto_redact": True})
    assert changed.status == 200 and changed.json["auto_redact"] is True
    # When a photo held only for an unknown face is uploaded
    buckets.upload("auto/child.jpg", photo("uploads", "stage-with-child.jpg"))
    # Then the original is held (one of the two withdrew above: a blocker too)
    original_id = asset_id_of(api, tenant.admin, "auto/child.jpg")
    original = api.call("GET", f"/assets/{original_id}", key=tenant.admin).json
    assert original["status"] == "quarantined" and original["policy"]["auto_redact"] is True
    assert original["reasons"] == ["consent_revoked", "unknown_face"]
    assert buckets.places("auto/child.jpg") == ["quarantine"]
    # And its variant, with both of those faces redacted, is in the library
    variant_id = asset_id_of(api, tenant.admin, "auto/child.redacted.png")
    assert original["review"]["redacted"]["asset_id"] == variant_id
    variant = api.call("GET", f"/assets/{variant_id}", key=tenant.admin).json
    assert (variant["status"], variant["history"][0]["actor"]) == ("approved", "ingest")
    assert len([f for f in variant["faces"] if f["subject_id"]]) == 1  # who still consents
    assert buckets.places("auto/child.redacted.png") == ["library"]


# ---------------------------------------------------------------------- Art. 30


@pytest.fixture(scope="module")
def records_tenant(chalice_api: Api, local_stack: Any) -> Tenant:
    """A tenant with one held upload, one export, one erasure and one webhook endpoint."""
    api = chalice_api
    tenant = make_tenant("api-rights-records")
    Buckets(local_stack, tenant.id).upload(
        "stranger.png", photo("uploads", "stranger-portrait.png")
    )
    sid, _ = _subject(api, tenant, "Records", document=False)
    assert api.call("GET", f"/subjects/{sid}/export", key=tenant.admin).status == 200
    assert api.call("POST", f"/subjects/{sid}/erase", key=tenant.admin).status == 200
    endpoint = api.call(
        "POST",
        "/webhook-endpoints",
        key=tenant.admin,
        json_body={"url": "http://127.0.0.1:9/hooks", "event_types": []},
    )
    assert endpoint.status == 201, endpoint.body
    return tenant


def test_records_of_processing_are_prefilled_from_configuration_and_tables(
    chalice_api: Api, records_tenant: Tenant, spec: dict[str, Any]
) -> None:
    api, tenant = chalice_api, records_tenant
    assert_error(api.call("GET", "/records-of-processing", key=tenant.reviewer), 403)
    reply = api.call("GET", "/records-of-processing", key=tenant.admin)
    assert reply.status == 200, reply.body
    _conforms(spec, "ProcessingRecords", reply.json)
    record = reply.json["record"]
    policy = api.call("GET", "/policy", key=tenant.admin).json
    decisions = record["automated_decisions"]
    assert decisions["policy"]["match_threshold"] == policy["match_threshold"]
    assert decisions["engine_in_use"]["engine"] == face_engine().versions["engine"]
    (seen,) = decisions["versions_in_decision_records"]
    assert seen["assets"] == 1 and seen["versions"]["engine"] == face_engine().versions["engine"]
    # Volumes are counted from the tables (the stack's clock stands in November 2026)
    (month,) = record["volumes"]["by_month"]
    assert month["month"] == "2026-11"
    counted = {k: month[k] for k in ("assets_scanned", "faces", "matches", "quarantined")}
    assert counted == {"assets_scanned": 1, "faces": 1, "matches": 0, "quarantined": 1}
    assert (month["access_requests"], month["erasures"], month["selfie_searches"]) == (1, 1, 0)
    # Recipients name the webhook endpoint's host; no transfer outside the region
    assert {"recipient": "127.0.0.1", "kind": "webhook endpoint (ids only)"} in record["recipients"]
    transfers = record["transfers"]
    assert (transfers["third_countries"], transfers["region"]) == ([], "eu-central-1")
    # (an IP address says nothing about a country: left for the controller to check)
    assert transfers["endpoints"] == [
        {"host": "127.0.0.1", "country": "TODO (controller)", "rule": "unresolved"}
    ]
    retention = {r["data"]: r["kept"] for r in record["retention"]}
    assert retention["function logs (audit events)"] == "90 days"
    # And the DPIA starter carries the same figures, leaving judgement to the controller
    dpia = reply.json["dpia_markdown"]
    assert dpia.startswith(f"# DPIA starter: face consent gate ({tenant.id})")
    assert f"match distance ≤ {policy['match_threshold']}" in dpia
    assert "| 2026-11 | 1 | 1 | 0 | 1 | 0 | 0 | 1 |" in dpia
    assert "TODO (controller)" in dpia


def test_cli_writes_the_records_and_the_dpia(
    http_api: HttpApi, records_tenant: Tenant, tmp_path: Path
) -> None:
    env = {"QUITCLAIM_URL": http_api.base_url, "QUITCLAIM_KEY": records_tenant.admin}
    result = CliRunner().invoke(main, ["api", "records", "--out", str(tmp_path)], env=env)
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "records-of-processing.json").read_text())
    assert record["controller"]["tenant"] == records_tenant.id
    assert (tmp_path / "dpia.md").read_text().startswith("# DPIA starter")
