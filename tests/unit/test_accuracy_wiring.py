"""The last accuracy audit in the DPIA, the digest and the dashboard, marked stale on change."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from quitclaim.domain.errors import Forbidden, ValidationFailed
from quitclaim.domain.models import TenantPolicy
from quitclaim.domain.registry import Principal, Role
from quitclaim.usecases.compliance_registry import Registry
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


class PolicyTenants(FakeTenants):
    """Tenants with a stored policy and a pending change, as the table keeps them."""

    pending: dict[str, Any] | None = None

    def update_policy(self, policy: TenantPolicy) -> None:
        self.policies[policy.tenant] = policy

    def pending_policy(self, tenant: str) -> dict[str, Any] | None:
        return self.pending

    def set_pending_policy(self, tenant: str, pending: dict[str, Any] | None) -> None:
        self.pending = pending


ADVICE = {"status": "ok", "policy_change": {"match_threshold": 0.45, "match_margin": 0.06}}


def _registry() -> tuple[Registry, PolicyTenants]:
    tenants = PolicyTenants({"acme": TenantPolicy("acme", match_threshold=0.5)})
    registry = Registry(
        tenants=tenants,
        subjects=None,  # type: ignore[arg-type]
        consents=None,  # type: ignore[arg-type]
        clock=FixedClock(NOW),
        engine_factory=lambda: None,  # type: ignore[arg-type,return-value]
    )
    return registry, tenants


def test_adopting_advice_takes_two_people_even_when_it_tightens() -> None:
    registry, tenants = _registry()
    ann = Principal("acme", "key_a", Role.ADMIN, person="Ann")
    bob = Principal("acme", "key_b", Role.ADMIN, person="Bob")
    # When one administrator adopts a tightening advice
    first = registry.adopt_accuracy_advice("acme", ADVICE, who=ann)
    # Then nothing changes yet: it waits for a second person
    assert first.pending is not None and first.pending["loosens"] == ["accuracy_advice"]
    assert tenants.policies["acme"].match_threshold == 0.5
    # and the same person cannot confirm it
    with pytest.raises(Forbidden):
        registry.adopt_accuracy_advice("acme", ADVICE, who=ann)
    # When a second person confirms the same advice, it applies
    done = registry.adopt_accuracy_advice("acme", ADVICE, who=bob)
    assert done.pending is None
    assert (done.policy.match_threshold, done.policy.match_margin) == (0.45, 0.06)
    assert tenants.pending is None


def test_no_advice_no_change() -> None:
    registry, _ = _registry()
    who = Principal("acme", "key_a", Role.ADMIN, person="Ann")
    with pytest.raises(ValidationFailed) as caught:
        registry.adopt_accuracy_advice("acme", {"status": "unmeasurable with this data"}, who=who)
    assert caught.value.field == "advice"
