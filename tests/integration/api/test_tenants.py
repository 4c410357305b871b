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

from quitclaim.bootstrap import offboarding_service
from quitclaim.domain.tenancy import PLANS
from quitclaim.local.cli import main
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


# ------------------------------------------------------------------ offboarding


@dataclass
class Tenancy:
    id: str
    key: str
    subject: str


def _populate(api: Api, stack: Any, tenant: str, *, faces: bool) -> Tenancy:
    """Data in every store: subject, consent + document + expiry schedule,
    webhook endpoint + secret, a rejected upload, an access export (the
    requests log); with ``faces``, a template and a published upload too."""
    key = onboard(tenant)
    created = api.call("POST", "/subjects", key=key, json_body={"display_name": "Off Person"})
    sid = created.json["subject_id"]
    if faces:
        enrol = {"photos": [b64(photo(*OBAMA))]}
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
        json_body={
            "url": "http://127.0.0.1:9/gone",
            "event_types": ["asset.approved", "asset.quarantined"],
        },
    )
    assert endpoint.status == 201, endpoint.body
    buckets = Buckets(stack, tenant)
    if faces:
        buckets.upload("portrait.jpg", photo(*OBAMA))
        assert buckets.places("portrait.jpg") == ["library"]
    buckets.upload("broken.jpg", b"not an image")
    assert buckets.places("broken.jpg") == ["rejected"]
    assert api.call("GET", f"/subjects/{sid}/export", key=key).status == 200
    return Tenancy(tenant, key, sid)


# The process's gallery cache comes and goes with the local runtime's containers:
# it is purged and verified, but not a count to compare over time.
VOLATILE = "gallery-cache"


def _counts(tenant: str) -> dict[str, int]:
    stores = offboarding_service()._stores
    return {s.name: s.count(tenant) for s in stores if s.name != VOLATILE}


def test_offboarding_revokes_at_once_and_purges_everything_of_one_tenant_only(
    http_api: Api, local_stack: Any, tmp_path: Path
) -> None:
    # Given tenants A and B with data in every store
    a = _populate(http_api, local_stack, "off-a", faces=True)
    b = _populate(http_api, local_stack, "off-b", faces=False)
    b_before = _counts(b.id)
    a_before = _counts(a.id)
    # (uploads are moved out of the uploads bucket once decided)
    assert [name for name, n in a_before.items() if n == 0] == ["s3:uploads", "s3:quarantine"]

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
    assert asset_id_of(http_api, b.key, "broken.jpg")


# ------------------------------------------------------------------ warm galleries


def test_a_warm_gallery_of_tenant_a_never_matches_tenant_bs_faces(
    http_api: Api, local_stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from quitclaim.faces.gallery import GalleryCache

    # Given obama enrolled (with consent) for tenant A only; B enrols someone else
    a_key, b_key = onboard("warm-a"), onboard("warm-b")
    for key, face in ((a_key, OBAMA), (b_key, ("enroll", "biden", "biden-portrait.jpg"))):
        sid = http_api.call("POST", "/subjects", key=key, json_body={"display_name": "P"}).json[
            "subject_id"
        ]
        photos = {"photos": [b64(photo(*face))]}
        assert (
            http_api.call("POST", f"/subjects/{sid}/photos", key=key, json_body=photos).status
            == 200
        )
        grant = {
            "purposes": ["web"],
            "valid_from": "2026-01-01",
            "signer": "P",
            "form_version": "1",
        }
        assert (
            http_api.call("POST", f"/subjects/{sid}/consents", key=key, json_body=grant).status
            == 201
        )
    asked: list[tuple[str, set[str]]] = []
    real_get = GalleryCache.get

    def spy(self: GalleryCache, tenant: str, version: Any) -> Any:
        asked.append((tenant, {k[0] for k in self._entries}))
        return real_get(self, tenant, version)

    monkeypatch.setattr(GalleryCache, "get", spy)
    # When A's upload of obama warms the ingest container, then B uploads the same photo
    a_buckets, b_buckets = Buckets(local_stack, "warm-a"), Buckets(local_stack, "warm-b")
    s3 = local_stack.client("s3")
    for buckets in (a_buckets, b_buckets):  # one batch: one warm container for both
        s3.put_object(
            Bucket=buckets.uploads,
            Key=f"incoming/{buckets.tenant}/same.jpg",
            Body=photo(*OBAMA),
            Metadata={"purpose": "web"},
        )
    local_stack.drain()
    # Then B's gallery was asked for while A's was cached in the same container
    assert any(t == "warm-b" and "warm-a" in cached for t, cached in asked), asked
    # And obama is A's match and B's stranger
    assert a_buckets.places("same.jpg") == ["library"]
    assert b_buckets.places("same.jpg") == ["quarantine"]
    b_asset = http_api.call(
        "GET", f"/assets/{asset_id_of(http_api, b_key, 'same.jpg')}", key=b_key
    ).json
    assert [f["subject_id"] for f in b_asset["faces"]] == [None]
