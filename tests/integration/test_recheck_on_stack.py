"""Consent changes re-decide assets through the appearances index, on the stack."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from quitclaim.bootstrap import registry_service
from quitclaim.domain.models import TenantPolicy
from tests import inputs
from tests.conftest import FACES

pytestmark = pytest.mark.integration
TENANT = "it-recheck"


@pytest.fixture(scope="module")
def person(local_stack: Any) -> str:
    # Given a tenant with one enrolled person (obama's portrait)
    registry = registry_service()
    registry.create_tenant(TenantPolicy(tenant=TENANT))
    photo = (FACES / "enroll" / "obama" / "obama-portrait.jpg").read_bytes()
    return registry.enrol_subject(TENANT, "Person R", [photo], biometric_consent=True)


def _where(stack: Any, name: str) -> list[str]:
    s3 = stack.client("s3")
    found = []
    for label, output, key in (
        ("uploads", "UploadsBucketName", f"incoming/{TENANT}/{name}"),
        ("library", "LibraryBucketName", f"{TENANT}/{name}"),
        ("quarantine", "QuarantineBucketName", f"{TENANT}/{name}"),
    ):
        try:
            s3.head_object(Bucket=stack.outputs[output], Key=key)
            found.append(label)
        except s3.exceptions.ClientError:
            pass
    return found


def _upload(stack: Any, name: str) -> None:
    stack.client("s3").put_object(
        Bucket=stack.outputs["UploadsBucketName"],
        Key=f"incoming/{TENANT}/{name}",
        Body=inputs.portrait_jpeg(),
    )
    stack.drain()


def test_withdrawal_pulls_and_a_new_grant_restores(local_stack: Any, person: str) -> None:
    registry = registry_service()
    consent = registry.grant_consent(
        TENANT, person, ["web"], datetime(2026, 1, 1, tzinfo=UTC), None, source="test"
    )
    _upload(local_stack, "withdraw.jpg")
    assert _where(local_stack, "withdraw.jpg") == ["library"]
    # When the person withdraws
    registry.revoke_consent(TENANT, person, consent.consent_id, source="test")
    # Then the image is out of the library by the time the call returns
    assert _where(local_stack, "withdraw.jpg") == ["quarantine"]
    # And a library version does not linger behind a delete marker
    versions = local_stack.client("s3").list_object_versions(
        Bucket=local_stack.outputs["LibraryBucketName"], Prefix=f"{TENANT}/withdraw.jpg"
    )
    assert versions.get("Versions", []) == []
    # When they sign again / Then it returns to the library
    registry.grant_consent(
        TENANT, person, ["web"], datetime(2026, 1, 1, tzinfo=UTC), None, source="test"
    )
    assert _where(local_stack, "withdraw.jpg") == ["library"]
    # Finally withdraw everything so later tests start from "no consent"
    for view in registry.consent_views(TENANT, person):
        registry.revoke_consent(TENANT, person, view.consent_id, source="test")
    assert _where(local_stack, "withdraw.jpg") == ["quarantine"]


def test_renewal_of_an_expired_consent_releases_held_images(local_stack: Any, person: str) -> None:
    registry = registry_service()
    # Given a consent that expired before the (pinned) decision time
    consent = registry.grant_consent(
        TENANT,
        person,
        ["web"],
        datetime(2025, 1, 1, tzinfo=UTC),
        datetime(2026, 10, 1, tzinfo=UTC),
        source="test",
    )
    _upload(local_stack, "expired.jpg")
    assert _where(local_stack, "expired.jpg") == ["quarantine"]
    # When it is renewed / Then the held image is released, with history kept
    registry.renew_consent(
        TENANT, person, consent.consent_id, datetime(2027, 12, 31, tzinfo=UTC), source="test"
    )
    assert _where(local_stack, "expired.jpg") == ["library"]
    view = registry.consent_view(TENANT, person, consent.consent_id)
    assert [e.event for e in view.history] == ["granted", "renewed"]
    assert view.status == "valid"
