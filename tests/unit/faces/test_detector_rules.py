"""The ingest detector's upright orientation, dense pass and verification (issue #18).

The engine is built as the ingest function builds it (``bootstrap.face_engine()``).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from quitclaim import bootstrap
from quitclaim.domain.models import Box
from quitclaim.faces.yunet_engine import (
    _ACCEPT_SCORE,
    _ALONE_SMALL_FLOORS,
    _DENSE_TRIGGER,
    _DENSE_WORK_FACE_PX,
    _LARGE_UPRIGHT_MIN_SCORE,
    _RELOOK_NEED,
    _RELOOK_NEED_ALONE,
    _UPRIGHT_NEED,
    _UPRIGHT_NEED_UNDER_FLOOR,
    YuNetFaceEngine,
    _Hit,
    _loose_need,
    _tight_need,
    _upright,
)
from tests import hostile
from tests.unit.faces._fixtures import (
    DETECTION,
    REPO,
    UPLOADS,
    covers,
    detection_boxes,
    enroll_portraits,
    read,
)

HARD = REPO / "tests" / "fixtures" / "hard_faces"


@pytest.fixture(scope="module")
def engine() -> Iterator[YuNetFaceEngine]:
    bootstrap.face_engine.cache_clear()
    built = bootstrap.face_engine()
    assert isinstance(built, YuNetFaceEngine)
    yield built
    bootstrap.face_engine.cache_clear()


def hit(side: float, score: float, turns: int, x: float = 0.0) -> _Hit:
    return _Hit((x, 0.0, x + side, side), np.zeros((5, 2), np.float32), score, turns)


def test_the_upright_is_where_most_confident_faces_stand() -> None:
    # Given two confident faces found turned once, one upright, and weak hits turned twice
    raw = [hit(50, 0.95, 1), hit(50, 0.92, 1, 100), hit(50, 0.97, 0), *[hit(50, 0.6, 2)] * 5]
    # Then the photo's upright is the turn of the confident faces
    assert _upright(raw) == 1
    # And without a confident face there is none
    assert _upright([hit(50, _ACCEPT_SCORE - 0.01, 0)]) is None


def test_the_dense_pass_runs_only_where_a_confident_face_is_near_the_floor(
    engine: YuNetFaceEngine,
) -> None:
    # Given a 12 MP frame and the engine's floor
    floor = float(engine.versions["min_face_px"])
    fine = engine.detection_passes(4000, 3000)[0]
    near = [hit(floor * (_DENSE_TRIGGER - 0.5), 0.95, 0)]
    # When a confident upright face is near the floor, the upright is scanned finer
    dense = engine._dense_scale(4000, 3000, 1.0, near, 0)
    assert dense is not None
    assert dense == pytest.approx(_DENSE_WORK_FACE_PX / floor)
    assert dense > fine
    # But not for a large face, a weak one, or without an upright
    assert engine._dense_scale(4000, 3000, 1.0, [hit(floor * 5, 0.95, 0)], 0) is None
    assert engine._dense_scale(4000, 3000, 1.0, [hit(floor * 1.5, 0.6, 0)], 0) is None
    assert engine._dense_scale(4000, 3000, 1.0, near, None) is None
    # Nor on a small photo, already scanned whole
    assert engine._dense_scale(640, 480, 1.0, near, 0) is None


def test_the_dense_pass_stays_within_the_pixel_budget(engine: YuNetFaceEngine) -> None:
    # Given a frame whose passes already fill the pixel budget
    near = [hit(50, 0.95, 0)]
    width, height = 10_000, 6_000
    spare = engine._detect_budget_pixels - engine.scan_pixels(width, height)
    assert spare > 0
    small = YuNetFaceEngine(detect_budget_pixels=engine.scan_pixels(width, height) + 1)
    # Then the dense pass is not run there, but is within the default budget
    assert small._dense_scale(width, height, 1.0, near, 0) is None
    assert engine._dense_scale(width, height, 1.0, near, 0) is not None


def test_small_faces_of_a_street_crowd_are_found(engine: YuNetFaceEngine) -> None:
    # Given the hard set's 8 MP street march (73 counted small faces, many in sunglasses)
    name = "photos/nwpu_march_crop.jpg"
    photo = json.loads((HARD / "labels.json").read_text())["photos"][name]
    small = [Box(*f["box"]) for f in photo["faces"] if "small" in f["categories"]]
    every = [Box(*f["box"]) for f in photo["faces"]]
    # When the ingest engine scans it
    found = engine.analyze(engine.decode((HARD / name).read_bytes()))
    # Then at least 9 in 10 small faces are found (0.74 before the dense pass and
    # the upright verification), and at most one detection covers nothing labelled (a
    # blurred head seen from the side, not labelled)
    hits = sum(any(covers(b, f.box) for f in found) for b in small)
    assert hits / len(small) >= 0.9, hits
    assert sum(not any(covers(b, f.box) for b in every) for f in found) <= 1


def _frame_with(faces: list[tuple[Image.Image, tuple[int, int]]]) -> bytes:
    rng = np.random.default_rng(7)
    noise = rng.integers(80, 170, (300, 400, 3), dtype=np.uint8)
    frame = Image.fromarray(noise).resize((4000, 3000), Image.Resampling.BICUBIC)
    for face, at in faces:
        frame.paste(face, at)
    buf = io.BytesIO()
    frame.save(buf, "JPEG", quality=92)  # no EXIF: nothing says which way is up
    return buf.getvalue()


def _portrait(engine: YuNetFaceEngine, face_px: int, turns: int) -> Image.Image:
    """The enrolment portrait scaled so its face is ``face_px`` wide, turned ``turns`` x 90°."""
    portrait = Image.open(enroll_portraits()["obama"]).convert("RGB")
    face = engine.analyze(engine.decode(read_bytes(portrait)))[0].box
    factor = face_px / face.width
    small = portrait.resize(
        (round(portrait.width * factor), round(portrait.height * factor)),
        Image.Resampling.LANCZOS,
    )
    return small.rotate(90 * turns, expand=True)


def read_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=92)
    return buf.getvalue()


def test_a_small_face_lying_sideways_is_found_in_a_photo_with_no_upright_face(
    engine: YuNetFaceEngine,
) -> None:
    # Given a 12 MP photo whose only face is 48 px and lies turned 90 degrees
    face = _portrait(engine, 48, 1)
    found = engine.analyze(engine.decode(_frame_with([(face, (2600, 1700))])))
    # Then it is found (no face stands as stored: every orientation at the fine pass)
    assert len(found) == 1
    assert found[0].box.left >= 2600 and found[0].box.right <= 2600 + face.width


def test_a_small_face_lying_sideways_is_found_beside_an_upright_one(
    engine: YuNetFaceEngine,
) -> None:
    # Given a 12 MP photo with an upright 200 px face and a 48 px face lying turned
    # 90 degrees (someone lying down in the background)
    upright = _portrait(engine, 200, 0)
    lying = _portrait(engine, 48, 1)
    data = _frame_with([(upright, (300, 300)), (lying, (2400, 1200))])
    # When scanned (every orientation at every pass: the 40 px floor holds lying down too)
    found = engine.analyze(engine.decode(data))
    # Then both are found
    assert len(found) == 2
    assert any(f.box.left >= 2400 for f in found) and any(
        f.box.right <= 300 + upright.width for f in found
    )


def test_a_large_weak_hit_in_the_upright_gets_the_strict_verification(
    engine: YuNetFaceEngine,
) -> None:
    # Given biden-event.jpg: one person before a painted backdrop (a 0.70 hit of ~420 px)
    found = engine.analyze(engine.decode(read(UPLOADS / "biden-event.jpg")))
    # Then only the person is a face (the looser upright rule is for hits under 4 floors)
    assert len(found) == 1
    assert found[0].box.left > 300


def test_a_lone_damaged_face_is_kept_by_the_rule_for_photos_without_a_confident_face(
    engine: YuNetFaceEngine,
) -> None:
    # Given kit's portrait as a WebP whose middle third of bytes is corrupted: the
    # face is smeared (YuNet scores it under 0.9) and no face in the photo is confident
    data = hostile.webp_flipped(hostile.kit_webp())
    # When scanned
    found = engine.analyze(engine.decode(data))
    # Then the face is kept (v2's 4-of-6 rule, not the strict one for turned hits)
    assert len(found) == 1


def test_unconfident_hits_under_the_floor_turned_or_tiny_are_dropped_without_a_relook(
    engine: YuNetFaceEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given relooks that would confirm every hit, and a photo whose upright is as stored
    looked: list[_Hit] = []

    def confirm(pixels: object, candidate: _Hit, *args: object) -> bool:
        looked.append(candidate)
        return True

    monkeypatch.setattr(engine, "_confirmed", confirm)
    floor = float(engine.versions["min_face_px"])
    pixels = np.zeros((1000, 1000, 3), np.uint8)
    lying_small = hit(floor - 5, 0.7, 1, 0)
    lying_large = hit(floor + 5, 0.7, 1, 200)
    speck = hit(floor / 2 - 2, 0.7, 0, 400)
    upright_small = hit(floor - 5, 0.7, 0, 600)
    confident_lying_small = hit(floor - 5, 0.95, 1, 800)
    raw = [lying_small, lying_large, speck, upright_small, confident_lying_small]
    # When the hits are verified
    kept = engine._verified(pixels, raw, 0, 1.0)
    # Then the unconfident one turned against the upright under the floor, and the
    # one under half the floor, are dropped unlooked; the rest are judged or kept
    # (compared by identity: a hit holds a numpy array)
    assert {id(h) for h in kept} == {id(lying_large), id(upright_small), id(confident_lying_small)}
    assert {id(h) for h in looked} == {id(lying_large), id(upright_small)}


def test_how_many_of_the_six_tight_looks_a_hit_needs() -> None:
    # Without a confident face in the photo: 4 near the floor, 5 above
    assert _tight_need(hit(30, 0.75, 0), None, _ALONE_SMALL_FLOORS - 0.1) == 4
    assert _tight_need(hit(200, 0.77, 0), None, _ALONE_SMALL_FLOORS + 0.1) == _RELOOK_NEED_ALONE
    # In the upright: 4 for a hit that scores near the accepted, all six for a weaker one
    assert _tight_need(hit(360, _LARGE_UPRIGHT_MIN_SCORE, 0), 0, 9.0) == 4
    assert _tight_need(hit(420, _LARGE_UPRIGHT_MIN_SCORE - 0.01, 0), 0, 10.0) == _RELOOK_NEED
    # Turned against the upright: all six, however confident
    assert _tight_need(hit(100, 0.89, 1), 0, 2.5) == _RELOOK_NEED


def test_how_many_of_the_ten_loose_looks_a_hit_needs() -> None:
    # Under the floor (too small to identify, no decision hangs on it): a majority
    assert _loose_need(0.99) == _UPRIGHT_NEED_UNDER_FLOOR == 6
    # At the floor and above: three of the ten
    assert _loose_need(1.0) == _loose_need(3.9) == _UPRIGHT_NEED == 3


def test_a_gold_disc_on_a_shop_wall_is_no_face_and_the_seven_faces_below_it_are(
    engine: YuNetFaceEngine,
) -> None:
    # Given 2008_004176.jpg: seven people of 37 px under a gold disc on the wall, which
    # YuNet scores 0.59 at 34 px and which passes 4-5 of the ten loose relooks
    truth = detection_boxes("testing.xml")["2008_004176.jpg"]
    image = Image.open(DETECTION / "2008_004176.jpg").convert("RGB")
    for turns in (0, 1, 2, 3):
        # When it is scanned as stored and turned each way (untagged: all four scanned)
        turned = image.rotate(90 * turns, expand=True)
        data = io.BytesIO()
        turned.save(data, "JPEG", quality=92)
        found = engine.analyze(engine.decode(data.getvalue()))
        # Then the seven are found and nothing else (the disc is under the floor:
        # it needs six looks)
        assert len(found) == len(truth) == 7, (turns, [f.box for f in found])
        if turns == 0:
            assert all(any(covers(b, f.box) for f in found) for b in truth)


def _counted(name: str) -> list[Box]:
    photo = json.loads((HARD / "labels.json").read_text())["photos"][name]
    return [Box(*f["box"]) for f in photo["faces"] if "ignore" not in f["categories"]]


def test_a_close_up_face_cut_by_the_frame_is_found(engine: YuNetFaceEngine) -> None:
    # Given selfie_group.jpg: the selfie taker's face, 0.81 and too large for the
    # loose upright rule, cut by the right edge beside four confident faces
    name = "photos/selfie_group.jpg"
    taker = Box(481, 267, 600, 567)
    assert taker in _counted(name)
    # When scanned
    found = engine.analyze(engine.decode((HARD / name).read_bytes()))
    # Then it is found (4 of the six tight looks; v4 wanted all six and missed it)
    assert any(covers(taker, f.box) for f in found)


def test_masked_faces_of_a_crowd_without_a_confident_face_are_found(
    engine: YuNetFaceEngine,
) -> None:
    # Given ulfd_masks_crowd.jpg: masked faces of 25-50 px, none scoring 0.9
    name = "photos/ulfd_masks_crowd.jpg"
    counted = _counted(name)
    # When scanned
    found = engine.analyze(engine.decode((HARD / name).read_bytes()))
    # Then all but two are found (v4: all but four; the two left have no raw hit)
    missed = [b for b in counted if not any(covers(b, f.box) for f in found)]
    assert len(missed) <= 2, missed
