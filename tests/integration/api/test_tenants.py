"""Tenants on the local stack: onboarding, plan rates (429), offboarding with proof.

The operator's commands run through the real ``quitclaim`` CLI; the API
through the local stack's HTTP server; uploads through the real ingest
handler. Tenant B lives beside tenant A the whole time and must come out of
A's purge exactly as it went in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.main import main
from quitclaim.bootstrap import offboarding_service
from quitclaim.domain.tenancy import PLANS
from tests.conftest import DEMO_NOW
from tests.integration.api.conftest import Api, Buckets, asset_id_of, b64, photo

pytestmark = pytest.mark.integration

OBAMA = ("enroll", "obama", "obama-portrait.jpg")


def cli(*args: str, ok: bool = True) -> Result:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def onboard(tenant: str, plan: str = "standard") -> str:
    """The operator onboards ``tenant``; its first admin key."""
    created = cli(
        "tenants",
        "create",
        tenant,
        "--name",
        f"{tenant} GmbH",
        "--contact-email",
        f"dpo@{tenant}.example",
        "--plan",
        plan,
        "--json",
    )
    payload = json.loads(created.stdout)
    assert (payload["tenant"], payload["plan"], payload["region"]) == (tenant, plan, "eu-central-1")
    return str(payload["secret"])


# ------------------------------------------------------------------ onboarding


@pytest.mark.parametrize(
    ("args", "field", "says"),
    [
        (("--region", "us-east-1"), "region", "must be an EU region"),
        (("--region", "eu-west-1"), "region", "differs from this deployment's region"),
        (("--contact-email", "nobody"), "contact_email", "e-mail"),
    ],
)
def test_onboarding_refuses_a_bad_field_and_names_it(
    local_stack: Any, args: tuple[str, ...], field: str, says: str
) -> None:
    # When the operator onboards with one bad value
    result = cli(
        "tenants",
        "create",
        "on-refused",
        "--name",
        "Refused",
        "--contact-email",
        "dpo@refused.example",
        *args,
        ok=False,
    )
    # Then it is refused, naming the field, and nothing was created
    assert result.exit_code != 0 and f"(field: {field})" in result.output, result.output
    assert says in result.output
    assert offboarding_service()._tenants.profile("on-refused") is None


def test_an_unknown_plan_is_refused_by_name(local_stack: Any) -> None:
    result = cli(
        "tenants",
        "create",
        "on-plan",
        "--name",
        "P",
        "--contact-email",
        "p@p.example",
        "--plan",
        "platinum",
        ok=False,
    )
    assert result.exit_code == 2 and "--plan" in result.output


# ------------------------------------------------------------------ rates


def test_a_tenant_over_its_plans_rate_gets_429_with_retry_after(http_api: Api) -> None:
    # Given a tenant on the smallest plan (a burst of 5)
    key = onboard("rate-free", plan="free")
    burst = PLANS["free"].api_burst
    # When it sends three bursts' worth of requests at once
    replies = [http_api.call("GET", "/subjects", key=key) for _ in range(3 * burst)]
    # Then the first burst is served and the rest is refused with 429 and a wait
    assert [r.status for r in replies[:burst]] == [200] * burst
    limited = [r for r in replies if r.status == 429]
    assert limited, [r.status for r in replies]
    body = limited[0].json
    assert body["error"] == "rate_limited" and "free plan" in body["message"]
    assert body["retry_after"] >= 1
    assert limited[0].header("Retry-After") == str(body["retry_after"])
    # And another tenant is not slowed down by it
    other = onboard("rate-other", plan="free")
    assert http_api.call("GET", "/subjects", key=other).status == 200


# ------------------------------------------------------------------ two tenants


@dataclass
class Tenancy:
    id: str
    key: str
    subject: str


@dataclass
class World:
    a: Tenancy
    b: Tenancy
    # (tenant whose gallery was asked for, tenants cached in that container then)
    gallery_requests: list[tuple[str, set[str]]]


def _registered(api: Api, tenant: str, face: tuple[str, ...]) -> Tenancy:
    """An onboarded tenant with one enrolled person, a consent with its signed
    form and an expiry (an expiry schedule), and a webhook endpoint (a secret)."""
    key = onboard(tenant)
    created = api.call("POST", "/subjects", key=key, json_body={"display_name": "Off Person"})
    sid = created.json["subject_id"]
    enrol = {"photos": [b64(photo(*face))], "biometric_consent": True}
    assert api.call("POST", f"/subjects/{sid}/photos", key=key, json_body=enrol).status == 200
    consent = api.call(
        "POST",
        f"/subjects/{sid}/consents",
        key=key,
        json_body={
            "purposes": ["web"],
            "valid_from": "2026-01-01",
            "expires_at": "2027-12-31",
            "signer": "Off Person",
            "form_version": "v1",
            "document_base64": b64(b"%PDF-1.4 signed"),
            "document_type": "application/pdf",
        },
    )
    assert consent.status == 201, consent.body
    endpoint = api.call(
        "POST",
        "/webhook-endpoints",
        key=key,
        json_body={"url": "http://127.0.0.1:9/gone", "event_types": ["asset.approved"]},
    )
    assert endpoint.status == 201, endpoint.body
    return Tenancy(tenant, key, sid)


@pytest.fixture(scope="module")
def world(http_api: Api, local_stack: Any) -> World:
    from quitclaim.faces.gallery import GalleryCache

    # Given obama enrolled for tenant A only (B enrols biden), each with a consent;
    # A's id is a prefix of B's, so "A's keys" must never be read as "keys starting A"
    a = _registered(http_api, "two", OBAMA)
    b = _registered(http_api, "two-b", ("enroll", "biden", "biden-portrait.jpg"))
    asked: list[tuple[str, set[str]]] = []
    real_get = GalleryCache.get

    def spy(self: GalleryCache, tenant: str, version: Any) -> Any:
        asked.append((tenant, {k[0] for k in self._entries}))
        return real_get(self, tenant, version)

    # When A and then B upload the same photo of obama, in one batch of the
    # ingest queue (one warm container for both), and a file that is no image
    s3 = local_stack.client("s3")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(GalleryCache, "get", spy)
        for tenant, name, body in (
            (a.id, "same.jpg", photo(*OBAMA)),
            (b.id, "same.jpg", photo(*OBAMA)),
            (a.id, "broken.jpg", b"not an image"),
            (b.id, "broken.jpg", b"not an image"),
        ):
            s3.put_object(
                Bucket=local_stack.outputs["UploadsBucketName"],
                Key=f"incoming/{tenant}/{name}",
                Body=body,
                Metadata={"purpose": "web"},
            )
        local_stack.drain()
    # And A asks for an access export (the requests log)
    assert http_api.call("GET", f"/subjects/{a.subject}/export", key=a.key).status == 200
    return World(a, b, asked)


# ------------------------------------------------------------------ warm galleries


def test_a_warm_gallery_of_tenant_a_never_matches_tenant_bs_faces(
    http_api: Api, local_stack: Any, world: World
) -> None:
    a, b = world.a, world.b
    # Then B's gallery was asked for while A's was cached in the same container
    assert any(t == b.id and a.id in cached for t, cached in world.gallery_requests), (
        world.gallery_requests
    )
    # And obama is A's match (published) and B's stranger (held, no subject)
    assert Buckets(local_stack, a.id).places("same.jpg") == ["library"]
    assert Buckets(local_stack, b.id).places("same.jpg") == ["quarantine"]
    b_asset = http_api.call(
        "GET", f"/assets/{asset_id_of(http_api, b.key, 'same.jpg')}", key=b.key
    ).json
    assert [f["subject_id"] for f in b_asset["faces"]] == [None]


# ------------------------------------------------------------------ offboarding


# The process's gallery cache comes and goes with the local runtime's containers:
# it is purged and verified, but not a count to compare over time.
VOLATILE = "gallery-cache"


def _counts(tenant: str) -> dict[str, int]:
    stores = offboarding_service()._stores
    return {s.name: s.count(tenant) for s in stores if s.name != VOLATILE}


def test_offboarding_revokes_at_once_and_purges_everything_of_one_tenant_only(
    http_api: Api, local_stack: Any, world: World, tmp_path: Path
) -> None:
    # Given tenants A and B with data in every store
    a, b = world.a, world.b
    b_before = _counts(b.id)
    a_before = _counts(a.id)
    # (uploads are moved out of the uploads bucket once decided)
    assert [name for name, n in a_before.items() if n == 0] == ["s3:uploads", "s3:quarantine"]
    # (B's upload was held, it has no access export: nothing of B's there)
    assert [name for name, n in b_before.items() if n == 0] == [
        "s3:uploads",
        "s3:library",
        "ddb:appearances",
        "ddb:requests",
    ]

    # When the operator deletes A
    marked = json.loads(cli("tenants", "delete", a.id, "--json").stdout)
    # Then A is deleting for 30 days, and its key is refused at once, saying why
    assert marked["state"] == "deleting"
    assert marked["purge_after"] == (DEMO_NOW + timedelta(days=30)).isoformat()
    refused = http_api.call("GET", "/subjects", key=a.key)
    assert refused.status == 401 and refused.json["error"] == "tenant_deleting"
    assert "being deleted" in refused.json["message"]
    # And a new upload of A is kept where it was put, not scanned
    buckets = Buckets(local_stack, a.id)
    buckets.upload("late.jpg", photo(*OBAMA))
    assert buckets.places("late.jpg") == ["uploads"]

    # When the operator purges before the grace period ends
    early = cli("tenants", "delete", a.id, "--purge", ok=False)
    # Then it is refused, and --now alone is not enough
    assert early.exit_code == 1 and "grace_period_running" in early.output
    unconfirmed = cli("tenants", "delete", a.id, "--purge", "--now", ok=False)
    assert unconfirmed.exit_code == 2 and "--yes-delete-everything" in unconfirmed.output
    assert _counts(a.id)["s3:library"] == a_before["s3:library"]

    # When the grace period is over and the operator purges
    report_path = tmp_path / "report.json"
    local_stack.clock.set(DEMO_NOW + timedelta(days=30, seconds=1))
    try:
        purged = cli("tenants", "delete", a.id, "--purge", "--report", str(report_path))
    finally:
        local_stack.clock.set(DEMO_NOW)
    # Then every store was re-listed: nothing of A remains anywhere
    report = json.loads(report_path.read_text())
    assert report["complete"] is True and "complete: yes" in purged.stdout
    rows = {row["store"]: row for row in report["stores"]}
    assert set(rows) == {*a_before, VOLATILE}
    for name, row in rows.items():
        assert row["remaining"] == 0 and row["deleted"] == row["found"], row
        assert name == VOLATILE or row["found"] >= a_before[name], row
    assert _counts(a.id) == dict.fromkeys(a_before, 0)
    # And B is exactly as it was, and its key still works
    assert _counts(b.id) == b_before
    assert http_api.call("GET", f"/subjects/{b.subject}", key=b.key).status == 200
    assert asset_id_of(http_api, b.key, "same.jpg")
