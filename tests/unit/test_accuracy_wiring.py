"""The last accuracy audit in the DPIA, the digest and the dashboard, marked stale on change."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from quitclaim.domain.models import TenantPolicy
from quitclaim.usecases.digest import DigestReport, render
from quitclaim.usecases.processing import Deployment, RecordsOfProcessing, accuracy_markdown
from tests.unit.fakes import FakeTenants, FixedClock
from tests.unit.test_processing_records import NoAssets, Requests

NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)
EVIDENCE: dict[str, Any] = {
    "created_at": "2026-12-01T10:00:00+00:00",
    "engine": "quitclaim-yunet/2",
    "encoder": "dlib_face_recognition_resnet_model_v1",
    "people": 40,
    "fmr": 0.0,
    "fnmr": 0.02,
    "wrong": 0,
    "advice": "ok",
    "stale": True,
    "stale_reasons": ["match_threshold changed"],
}


def test_the_records_of_processing_carry_the_accuracy_evidence() -> None:
    # Given a tenant whose last audit went stale
    records = RecordsOfProcessing(
        tenants=FakeTenants({"acme": TenantPolicy("acme")}),
        assets=NoAssets(),  # type: ignore[arg-type]
        requests=Requests(),  # type: ignore[arg-type]
        engine_versions=lambda: {"engine": "quitclaim-yunet/2"},
        deployment=Deployment("eu-west-1", 365, 2190, 45, (30, 7, 1), 7, 24.0),
        clock=FixedClock(NOW),
        accuracy=lambda tenant: EVIDENCE if tenant == "acme" else None,
    )
    # When the records are built
    built = records.build("acme")
    # Then the record and the DPIA state it, dated, with the engine, and stale
    assert built.record["accuracy_evidence"] == EVIDENCE
    assert "## 5. Accuracy evidence" in built.dpia_markdown
    assert "2026-12-01T10:00:00+00:00" in built.dpia_markdown
    assert "**Stale**: match_threshold changed" in built.dpia_markdown


def test_no_audit_yet_says_so() -> None:
    assert "No accuracy and bias audit yet" in accuracy_markdown(None)
    assert "Stale" not in accuracy_markdown({**EVIDENCE, "stale": False, "stale_reasons": []})


def test_the_digest_asks_for_a_new_audit_when_stale() -> None:
    report = DigestReport("acme", NOW, NOW, accuracy_stale=("engine or model changed: encoder",))
    mail = render(report, "dpo@acme.example")
    assert "Accuracy audit is stale: run it again" in mail.text
    assert "engine or model changed: encoder" in mail.html
    assert "Accuracy audit" not in render(DigestReport("acme", NOW, NOW), "d@x.example").text
