"""An enrolled person in full profile is quarantined as not matchable, never approved (#18).

The real ingest engine (``bootstrap.face_engine()``) on real photographs, the scan
use-case with in-memory ports (``tests.unit.test_scan_asset.World``: the tenant
'acme', person 0 consented for the web).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from quitclaim import bootstrap
from quitclaim.domain.models import AssetStatus
from quitclaim.domain.ports import FaceEngine, FaceObservation
from quitclaim.faces.gallery import encoding_to_bytes
from tests.unit.faces._fixtures import REPO, UPLOADS, enroll_portraits, read
from tests.unit.test_scan_asset import World

PROFILE = REPO / "tests" / "fixtures" / "hard_faces" / "photos" / "coco_000000000474.jpg"


@pytest.fixture(scope="module")
def engine() -> Iterator[FaceEngine]:
    bootstrap.face_engine.cache_clear()
    yield bootstrap.face_engine()
    bootstrap.face_engine.cache_clear()


def _only_face(engine: FaceEngine, data: bytes) -> FaceObservation:
    (face,) = engine.analyze(engine.decode(data))
    return face


def _world_enrolling(engine: FaceEngine, face: FaceObservation) -> World:
    """The world with person 0's template replaced by ``face``'s own encoding."""
    world = World()
    world.subjects.items[("acme", "sub_ok")] = [encoding_to_bytes(face.encoding)]
    world.scan._engine_factory = lambda: engine  # type: ignore[attr-defined]
    return world


def test_a_full_profile_is_quarantined_even_against_its_own_consented_template(
    engine: FaceEngine,
) -> None:
    # Given coco_000000000474.jpg, one person in full profile, identifiable by size
    data = PROFILE.read_bytes()
    face = _only_face(engine, data)
    assert min(face.box.width, face.box.height) >= 40
    assert not face.matchable
    # And the consented person 0 enrolled with this very face's encoding (distance 0:
    # the worst case, a stranger's profile landing on someone's template)
    world = _world_enrolling(engine, face)
    # When the photo is scanned
    result = world.scan(world.upload("acme/profile.jpg", data))
    # Then it goes to review as not matchable, never to the library, and no one is named
    assert result.status is AssetStatus.QUARANTINED
    assert result.reasons == ("face_not_matchable",)
    assert world.where("profile.jpg") == ["quarantine/acme/profile.jpg"]
    record = world.assets.get("acme", result.asset_id)
    assert record is not None
    assert [(f.subject_id, f.reason) for f in record.faces] == [(None, "face_not_matchable")]


def test_the_same_wiring_approves_a_frontal_face_of_the_consented_person(
    engine: FaceEngine,
) -> None:
    # Given obama-office.jpg (one frontal face) and person 0 enrolled from obama's portrait
    portrait = _only_face(engine, read(enroll_portraits()["obama"]))
    world = _world_enrolling(engine, portrait)
    # When the office photo is scanned
    result = world.scan(world.upload("acme/office.jpg", read(UPLOADS / "obama-office.jpg")))
    # Then it is approved: the quarantine above is the profile's, not the wiring's
    assert result.status is AssetStatus.APPROVED, result.reasons
    assert world.where("office.jpg") == ["library/acme/office.jpg"]
