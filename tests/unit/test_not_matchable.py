"""A face the recogniser cannot judge is never matched, even to its own template (#18)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from quitclaim.domain.decision import decide_asset
from quitclaim.domain.models import AssetStatus, Box, Consent, FaceMatch, Reason
from quitclaim.domain.ports import DecodedImage, FaceObservation
from quitclaim.usecases.asset_decisions import faces_of
from tests.unit.fakes import FakeEngine, fake_image
from tests.unit.test_scan_asset import NOW, World


class ProfileEngine(FakeEngine):
    """Sees the consented person (template 0) in full profile: found, not matchable."""

    def analyze(self, image: DecodedImage) -> list[FaceObservation]:
        return [
            dataclasses.replace(o, matchable=False, unmatchable="yaw")
            for o in super().analyze(image)
        ]


def test_an_enrolled_person_in_full_profile_is_quarantined_never_approved() -> None:
    # Given the consented, enrolled person 0, and an upload where the engine finds
    # their face with *their own template* (distance 0) but judges it not matchable
    world = World()
    world.scan._engine_factory = ProfileEngine  # type: ignore[attr-defined]
    req = world.upload("acme/profile.jpg", fake_image((0, 120)))
    # When scanned
    result = world.scan(req)
    # Then it goes to review as face_not_matchable, never to the library
    assert result.status is AssetStatus.QUARANTINED
    assert result.reasons == ("face_not_matchable",)
    assert world.where("profile.jpg") == ["quarantine/acme/profile.jpg"]
    record = world.assets.get("acme", result.asset_id)
    assert record is not None
    face = record.faces[0]
    assert face.identifiable and face.subject_id is None and face.reason == "face_not_matchable"
    # And a later re-decision from the record (a consent change) keeps it blocked
    assert not faces_of(record)[0].matchable


def test_a_not_matchable_face_blocks_whatever_subject_it_carries() -> None:
    consent = Consent("acme", "sub_ok", "con_1", frozenset({"web"}), NOW - timedelta(days=1), None)
    face = FaceMatch(Box(0, 0, 120, 120), "sub_ok", 0.0, matchable=False)
    decision = decide_asset([face], {"sub_ok": [consent]}, "web", NOW)
    assert decision.status is AssetStatus.QUARANTINED
    assert decision.reasons == (Reason.FACE_NOT_MATCHABLE,)
