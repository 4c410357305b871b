"""Records of processing: what they state about retention is what the template deploys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from quitclaim.domain.models import TenantPolicy
from quitclaim.domain.registry import Page, Subject
from quitclaim.domain.rights import DataRequest, RequestKind
from quitclaim.domain.tenancy import TenantProfile
from quitclaim.usecases.processing import (
    BUCKET_NONCURRENT_DAYS,
    Deployment,
    RecordsOfProcessing,
)
from tests.unit.fakes import FakeTenants, FixedClock
from tests.unit.infra import templates

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def test_the_stated_bucket_retention_is_the_templates_lifecycle() -> None:
    resources = templates.source()["Resources"]
    for bucket, days in BUCKET_NONCURRENT_DAYS.items():
        rules = resources[f"{bucket.title()}Bucket"]["Properties"]["LifecycleConfiguration"]
        kept = [
            r["NoncurrentVersionExpiration"]["NoncurrentDays"]
            for r in rules["Rules"]
            if "NoncurrentVersionExpiration" in r and "Prefix" not in r
        ]
        assert kept == [days], bucket
        # Rules for a prefix (exports, audit uploads) only keep things shorter
        # than the stated maximum
        for r in rules["Rules"]:
            if "Prefix" in r and "NoncurrentVersionExpiration" in r:
                assert r["NoncurrentVersionExpiration"]["NoncurrentDays"] <= days, r["Id"]


def test_the_stacks_retention_parameters_reach_the_functions() -> None:
    source = templates.source()
    variables = source["Globals"]["Function"]["Environment"]["Variables"]
    # (as text: a Number parameter's Ref would reach the function as a number)
    assert variables["QC_LOG_RETENTION_DAYS"] == {"Fn::Sub": "${LogRetentionDays}"}
    assert variables["QC_AUDIT_RETENTION_DAYS"] == {"Fn::Sub": "${AuditRetentionDays}"}


class NoAssets:
    def page(self, tenant: str, **_: Any) -> Page:
        return Page(())


class Requests:
    def between(self, *_: Any) -> list[DataRequest]:
        at = datetime(2026, 11, 2, tzinfo=UTC)
        return [DataRequest("acme", "r", RequestKind.ERASURE, at, "k", "sub_x")]


def test_the_record_states_the_tenants_thresholds_and_the_deployment() -> None:
    policy = TenantPolicy(
        "acme", match_threshold=0.42, auto_redact=True, purposes=frozenset({"web"})
    )
    records = RecordsOfProcessing(
        tenants=FakeTenants({"acme": policy}),
        assets=NoAssets(),  # type: ignore[arg-type]
        requests=Requests(),  # type: ignore[arg-type]
        engine_versions=lambda: {"engine": "quitclaim-dlib/2", "encoder": "resnet"},
        deployment=Deployment("eu-west-1", 365, 2190, 45, (30, 7, 1), 7, 24.0),
        clock=FixedClock(NOW),
    )
    built = records.build("acme")
    record = built.record
    assert (record["transfers"]["third_countries"], record["transfers"]["region"]) == (
        [],
        "eu-west-1",
    )
    assert record["automated_decisions"]["policy"]["match_threshold"] == 0.42
    assert record["automated_decisions"]["policy"]["auto_redact"] is True
    assert record["purposes"][0]["publication_purposes"] == ["web"]
    assert record["volumes"]["total"]["erasures"] == 1
    retention = {r["data"]: r["kept"] for r in record["retention"]}
    assert retention["function logs (audit events)"] == "365 days"
    assert "match distance ≤ 0.42" in built.dpia_markdown
    assert "redact instead of holding: on" in " ".join(built.dpia_markdown.split())
    assert "| 2026-11 | 0 | 0 | 0 | 0 | 0 | 0 | 1 |" in built.dpia_markdown


class Endpoints:
    def endpoints(self, tenant: str) -> list[Any]:
        urls = [
            "https://hooks.dam.example.de/in",
            "https://api.hubapi.com/webhooks",
            "https://crm.example.co.uk/x",
            "https://dam.example.com/hook",
        ]
        return [type("E", (), {"url": u})() for u in urls]


class Profiles:
    def profile(self, tenant: str) -> TenantProfile:
        return TenantProfile(tenant, name="Acme Media BV", contact_email="dpo@acme.example")


def test_the_controller_is_the_tenant_profile_and_third_countries_come_from_the_hosts() -> None:
    records = RecordsOfProcessing(
        tenants=FakeTenants({"acme": TenantPolicy("acme", quarantine_retention_days=60)}),
        assets=NoAssets(),  # type: ignore[arg-type]
        requests=Requests(),  # type: ignore[arg-type]
        engine_versions=lambda: {"engine": "e"},
        deployment=Deployment("eu-central-1", 90, 2190, 45, (30, 7, 1), 7, 24.0),
        clock=FixedClock(NOW),
        webhooks=Endpoints(),  # type: ignore[arg-type]
        profiles=Profiles(),  # type: ignore[arg-type]
    )
    built = records.build("acme")
    record = built.record
    assert record["controller"]["name"] == "Acme Media BV"
    assert record["controller"]["contact"] == "dpo@acme.example"
    transfers = record["transfers"]
    assert transfers["third_countries"] == ["GB", "US"]
    assert {e["host"]: (e["country"], e["rule"]) for e in transfers["endpoints"]} == {
        "hooks.dam.example.de": ("EU/EEA", "country-code domain"),
        "api.hubapi.com": ("US", "known provider"),
        "crm.example.co.uk": ("GB", "country-code domain"),
        "dam.example.com": ("TODO (controller)", "unresolved"),
    }
    kept = {r["data"]: r["kept"] for r in record["retention"]}
    assert kept["quarantined images whose only blocker is unknown faces"].startswith("60 days")
    assert "Acme Media BV (dpo@acme.example)" in built.dpia_markdown
    assert "GB, US" in built.dpia_markdown and "check dam.example.com" in built.dpia_markdown


class People:
    def page(self, tenant: str, limit: int, cursor: str | None) -> Page:
        return Page(
            (
                Subject("acme", "s1", "A", templates=1, biometric_consent_at=NOW),
                Subject("acme", "s2", "B", templates=2),  # enrolled before it was recorded
                Subject("acme", "s3", "C"),  # not enrolled
            )
        )


def test_the_legal_basis_for_matching_is_stated_only_as_far_as_enrolment_recorded_it() -> None:
    records = RecordsOfProcessing(
        tenants=FakeTenants({"acme": TenantPolicy("acme")}),
        assets=NoAssets(),  # type: ignore[arg-type]
        requests=Requests(),  # type: ignore[arg-type]
        engine_versions=lambda: {"engine": "e"},
        deployment=Deployment("eu-central-1", 90, 2190, 45, (30, 7, 1), 7, 24.0),
        clock=FixedClock(NOW),
        subjects=People(),  # type: ignore[arg-type]
    )
    record = records.build("acme").record
    assert record["enrolment"] == {"enrolled": 2, "consent_recorded": 1}
    basis = record["purposes"][1]["legal_basis"]
    assert basis.startswith("Art. 9(2)(a) explicit consent to matching, recorded at enrolment")
    assert "for 1 of 2 enrolled" in basis and "TODO (controller): 1 enrolled" in basis
