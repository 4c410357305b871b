"""Registry rules with the real engine and tables: photo quality, minors."""

from __future__ import annotations

import io
from datetime import date, timedelta
from typing import Any

import pytest
from PIL import Image, ImageFilter

from quitclaim.bootstrap import registry_service
from quitclaim.domain.errors import EnrolmentRejected, ValidationFailed
from quitclaim.domain.models import TenantPolicy
from quitclaim.domain.registry import Guardian
from tests.conftest import DEMO_NOW, FACES

pytestmark = pytest.mark.integration
TENANT = "it-rules"
PORTRAIT = FACES / "enroll" / "rose_leslie" / "rose-portrait.jpg"


@pytest.fixture(scope="module")
def registry(local_stack: Any) -> Any:
    registry = registry_service()
    registry.create_tenant(TenantPolicy(tenant=TENANT))
    return registry


def _blurred(path: Any, radius: int) -> bytes:
    out = io.BytesIO()
    Image.open(path).convert("RGB").filter(ImageFilter.GaussianBlur(radius)).save(out, "JPEG")
    return out.getvalue()


def test_a_blurred_reference_photo_is_refused_and_nothing_is_stored(registry: Any) -> None:
    # Given a person and a blurred copy of their portrait (the face is still found)
    sid = registry.create_subject(TENANT, "Blurry Person").subject_id
    # When enrolled / Then refused with a reason naming the photo, and no template stored
    with pytest.raises(EnrolmentRejected) as err:
        registry.enrol_subject(
            TENANT, "Blurry Person", [_blurred(PORTRAIT, 3)], subject_id=sid, biometric_consent=True
        )
    assert err.value.code == "face_blurred" and err.value.field == "photos[0]"
    assert registry.subject(TENANT, sid).templates == 0
    # And the sharp original is accepted
    registry.enrol_subject(
        TENANT, "Blurry Person", [PORTRAIT.read_bytes()], subject_id=sid, biometric_consent=True
    )
    assert registry.subject(TENANT, sid).templates == 1


def test_a_minor_needs_the_guardian_as_signer(registry: Any) -> None:
    # Given a 12-year-old with a guardian on record
    child = registry.create_subject(
        TENANT,
        "Young Person",
        date_of_birth=date(DEMO_NOW.year - 12, 3, 1),
        guardian=Guardian("Parent Person", "parent@example.org", "mother"),
    )
    start = DEMO_NOW - timedelta(days=1)
    # When the child signs / Then the consent is refused, naming the signer
    with pytest.raises(ValidationFailed) as err:
        registry.grant_consent(
            TENANT, child.subject_id, ["web"], start, None, signer="Young Person"
        )
    assert err.value.field == "signer"
    # When the guardian signs / Then it is recorded with the guardian as signer
    consent = registry.grant_consent(
        TENANT, child.subject_id, ["web"], start, None, signer="Parent Person"
    )
    view = registry.consent_view(TENANT, child.subject_id, consent.consent_id)
    assert view.evidence is not None and view.evidence.signer == "Parent Person"


def test_an_adult_signs_for_themselves(registry: Any) -> None:
    adult = registry.create_subject(TENANT, "Grown Person", date_of_birth=date(1980, 5, 17))
    consent = registry.grant_consent(
        TENANT, adult.subject_id, ["web"], DEMO_NOW - timedelta(days=1), None
    )
    view = registry.consent_view(TENANT, adult.subject_id, consent.consent_id)
    assert view.evidence is not None and view.evidence.signer == "Grown Person"
