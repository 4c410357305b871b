"""The accuracy audit as an API job on the local stack (issue #25): upload, 202, worker, GET.

A handful of fixture photos keeps the engine's CPU small. The staged photos and
labels are looked up again after the job (every version): none may remain.
"""

from __future__ import annotations

import json
import urllib.request
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import main
from quitclaim.bootstrap import api_keys_service, digest_service
from quitclaim.domain.registry import Role
from tests.conftest import DEMO_NOW, FACES
from tests.integration.api.conftest import Api, Tenant, make_tenant

pytestmark = pytest.mark.integration

PHOTOS = [
    "enroll/biden/biden-portrait.jpg",
    "enroll/kit_harington/kit-portrait.jpg",
    "enroll/obama/obama-portrait.jpg",
    "enroll/rose_leslie/rose-portrait.jpg",
    "uploads/obama-office.jpg",
    "uploads/kit-closeup.jpg",
]
LABELS = (
    "photo,person,box,pose,groups\n"
    "enroll/biden/biden-portrait.jpg,biden,,enrol,group:g=a\n"
    "enroll/kit_harington/kit-portrait.jpg,kit,,enrol,group:g=a\n"
    "enroll/obama/obama-portrait.jpg,obama,,enrol,group:g=a\n"
    "enroll/rose_leslie/rose-portrait.jpg,rose,,enrol,group:g=b\n"
    "uploads/obama-office.jpg,obama,,frontal\n"
    "uploads/kit-closeup.jpg,kit,,frontal\n"
)
# 6 faces of 4 people: 13 impostor pairs, so a 1-in-4 target is measurable (needs 12).
TARGET = 0.25


@pytest.fixture(scope="module")
def tenant(local_stack: Any) -> Tenant:
    return make_tenant("api-accuracy")


def put(url: str, data: bytes) -> int:
    headers = {"Content-Type": "application/octet-stream"}
    request = urllib.request.Request(url, data=data, headers=headers, method="PUT")
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


def staged_versions(stack: Any, tenant: str, job: str) -> list[str]:
    s3 = stack.client("s3")
    bucket = stack.outputs["DocumentsBucketName"]
    prefix = f"audit-staging/{tenant}/{job}/"
    found = []
    for part in ("photos/", "labels.csv"):
        page = s3.list_object_versions(Bucket=bucket, Prefix=prefix + part)
        found += [v["Key"] for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
    return found


def prepare(api: Api, tenant: Tenant, *, labels: bool = True) -> str:
    reply = api.call(
        "POST", "/audits/accuracy/uploads", key=tenant.admin, json_body={"photos": PHOTOS}
    )
    assert reply.status == 201, reply.body
    if labels:
        assert put(reply.json["labels"], LABELS.encode()) == 200
    for name, url in reply.json["photos"].items():
        assert put(url, FACES.joinpath(name).read_bytes()) == 200
    return str(reply.json["job_id"])


def test_an_audit_job_runs_on_the_worker_and_leaves_no_staged_photo(
    http_api: Api, tenant: Tenant, local_stack: Any
) -> None:
    # Given a job whose labels and photos are uploaded
    job = prepare(http_api, tenant)
    # When it is started
    started = http_api.call(
        "POST",
        "/audits/accuracy",
        key=tenant.admin,
        json_body={"job_id": job, "target_fmr": TARGET},
    )
    # Then the API answers at once: accepted, queued
    assert started.status == 202, started.body
    assert started.json["status"] == "queued"
    assert http_api.call("GET", f"/audits/accuracy/{job}", key=tenant.admin).json["status"] in (
        "queued",
        "running",
    )
    # When the worker drains the queue
    local_stack.drain()
    # Then the job is done with the counts of the labels and the report
    done = http_api.call("GET", f"/audits/accuracy/{job}", key=tenant.admin)
    assert done.status == 200, done.body
    assert done.json["status"] == "done", done.json
    assert done.json["counts"] == {"photos": 6, "people": 4, "attributed_faces": 6}
    report = done.json["report"]
    assert report["data"]["genuine_pairs"] == 2 and report["data"]["impostor_pairs"] == 13
    assert report["cleanup"]["photos_deleted"] == 6 and report["cleanup"]["verified"]
    html = http_api.call("GET", f"/audits/accuracy/{job}/report", key=tenant.admin)
    assert html.status == 200 and b"<svg" in html.body
    # And nothing staged is left, no version either (looked up again)
    assert staged_versions(local_stack, tenant.id, job) == []
    # And the report is the tenant's latest accuracy evidence
    overview = http_api.call("GET", "/overview", key=tenant.admin).json
    assert overview["accuracy"]["people"] == 4


def test_adopting_the_advice_needs_a_second_administrator(
    http_api: Api, tenant: Tenant, local_stack: Any
) -> None:
    # Given a done audit job (the previous test's job is the latest report)
    # When one administrator adopts its advice, twice
    first = http_api.call("POST", "/policy/accuracy-advice", key=tenant.admin, json_body={})
    again = http_api.call("POST", "/policy/accuracy-advice", key=tenant.admin, json_body={})
    # Then it only waits for a second person, and the same person cannot confirm it
    assert first.status == 202, first.body
    assert first.json["pending_change"]["loosens"]
    assert again.status == 403 and again.json["error"] == "same_reviewer"
    # When a second administrator adopts the same advice, it applies
    admin = api_keys_service().resolve(tenant.admin)
    other = api_keys_service().create_key(admin, Role.ADMIN, "second admin", "second admin").secret
    second = http_api.call("POST", "/policy/accuracy-advice", key=other, json_body={})
    assert second.status == 200, second.body
    assert "pending_change" not in second.json


def test_audit_routes_name_the_field_and_are_for_admins(http_api: Api, tenant: Tenant) -> None:
    # A job without its labels uploaded is refused, naming the labels
    job = prepare(http_api, tenant, labels=False)
    missing = http_api.call("POST", "/audits/accuracy", key=tenant.admin, json_body={"job_id": job})
    assert missing.status == 400 and missing.json["field"] == "labels"
    bad = http_api.call("POST", "/audits/accuracy", key=tenant.admin, json_body={"job_id": "x"})
    assert bad.status == 400 and bad.json["field"] == "job_id"
    escaping = http_api.call(
        "POST", "/audits/accuracy/uploads", key=tenant.admin, json_body={"photos": ["../a.jpg"]}
    )
    assert escaping.status == 400 and escaping.json["field"] == "photos"
    reviewer = http_api.call("GET", f"/audits/accuracy/{job}", key=tenant.reviewer)
    assert reviewer.status == 403
    other = make_tenant("api-accuracy-other")
    assert http_api.call("GET", f"/audits/accuracy/{job}", key=other.admin).status == 404


def test_the_cli_adopts_only_with_a_second_administrator(tenant: Tenant, local_stack: Any) -> None:
    # Given the tenant's latest audit report (the first test's) and two admin keys
    admin = api_keys_service().resolve(tenant.admin)
    ann = api_keys_service().create_key(admin, Role.ADMIN, "ann", "ann").secret
    bob = api_keys_service().create_key(admin, Role.ADMIN, "bob", "bob").secret
    args = ["audit", "adopt-advice", "--tenant", tenant.id]
    # When ann adopts it twice, then bob once
    first = CliRunner().invoke(main, [*args, "--key", ann])
    alone = CliRunner().invoke(main, [*args, "--key", ann])
    second = CliRunner().invoke(main, [*args, "--key", bob])
    # Then ann's adoption waits, ann alone cannot apply it, and bob's applies it
    assert first.exit_code == 0 and "pending" in printed(first.output)["status"], first.output
    assert alone.exit_code != 0 and "same_reviewer" in alone.output
    assert second.exit_code == 0 and printed(second.output)["status"] == "applied"
    assert printed(second.output)["pending_change"] is None


def printed(output: str) -> dict[str, Any]:
    """The command's indented JSON (the audit log lines before it are one line each)."""
    shown: dict[str, Any] = json.loads(output[output.index("{\n") :])
    return shown


def test_the_digest_marks_the_audit_stale_when_the_threshold_changes(
    http_api: Api, tenant: Tenant, local_stack: Any
) -> None:
    # Given the tenant's last audit (the first test's), with its stamp beside the report
    s3 = local_stack.client("s3")
    bucket = local_stack.outputs["DocumentsBucketName"]
    stamp = s3.get_object(Bucket=bucket, Key=f"{tenant.id}/audits/accuracy/stamp.json")
    assert set(json.loads(stamp["Body"].read())) == {
        "created_at",
        "engine_versions",
        "match_threshold",
        "match_margin",
    }
    # When the tenant's threshold is set to another value than the audit measured with
    policy = http_api.call("GET", "/policy", key=tenant.admin).json
    tighter = round(policy["match_threshold"] - 0.05, 2)
    changed = http_api.call(
        "PATCH", "/policy", key=tenant.admin, json_body={"match_threshold": tighter}
    )
    assert changed.status == 200, changed.body
    # Then the deployed digest (the reminders function's composition) says the audit is stale
    digest = digest_service().report(tenant.id, since=DEMO_NOW - timedelta(days=1))
    assert digest.accuracy_stale == ("match_threshold changed",)


def test_the_api_cli_uploads_starts_and_reads_a_job(
    http_api: Any, tenant: Tenant, local_stack: Any, tmp_path: Any
) -> None:
    # Given labels naming three portraits under the fixtures
    labels = tmp_path / "labels.csv"
    labels.write_text("photo,person\n" + "".join(LABELS.splitlines(True)[1:4]), encoding="utf-8")
    env = {"QUITCLAIM_URL": http_api.base_url, "QUITCLAIM_KEY": tenant.admin}
    # When the CLI uploads and starts the job, the worker drains, and the CLI reads it
    args = ["api", "--json", "audits", "accuracy", "--labels", str(labels), "--photos", str(FACES)]
    started = CliRunner().invoke(main, [*args, "--target-fmr", "0.3"], env=env)
    assert started.exit_code == 0, started.output
    job = printed(started.output)
    assert job["status"] == "queued" and job["photos"] == 3
    local_stack.drain()
    out = tmp_path / "report.json"
    status = CliRunner().invoke(
        main, ["api", "--json", "audits", "status", job["job_id"], "--out", str(out)], env=env
    )
    # Then the job is done and its report written, its staged photos gone
    assert status.exit_code == 0 and printed(status.output)["status"] == "done", status.output
    assert json.loads(out.read_text(encoding="utf-8"))["data"]["people"] == 3
    assert staged_versions(local_stack, tenant.id, job["job_id"]) == []
