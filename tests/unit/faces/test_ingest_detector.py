"""The ingest engine's detector (issue #18): turned photos, small faces, unjudgeable faces.

Every test builds the engine as the ingest function does (``bootstrap.face_engine()``).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image, ImageFilter

from quitclaim import bootstrap
from quitclaim.domain.errors import RejectedInput
from quitclaim.domain.models import Box
from quitclaim.domain.ports import DecodedImage, FaceEngine
from quitclaim.faces.matchability import MAX_YAW_DEG, MIN_IOD_PX, estimate_yaw
from quitclaim.faces.yunet_engine import YuNetFaceEngine
from tests.unit.faces._fixtures import REPO, UPLOADS, covers, enroll_portraits, read


@pytest.fixture(scope="module")
def engine() -> Iterator[FaceEngine]:
    bootstrap.face_engine.cache_clear()
    yield bootstrap.face_engine()
    bootstrap.face_engine.cache_clear()


def jpeg(image: Image.Image) -> bytes:
    # No EXIF at all: nothing tells the gate which way is up.
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=92)
    return buf.getvalue()


def turned_box(box: Box, turns: int, width: int, height: int) -> Box:
    """``box`` of a ``width`` x ``height`` photo after ``turns`` quarter turns counter-clockwise."""
    points = [(box.left, box.top), (box.right, box.bottom)]
    for _ in range(turns):
        points = [(y, width - x) for x, y in points]
        width, height = height, width
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return Box(min(xs), min(ys), max(xs), max(ys))


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_a_photo_stored_sideways_or_upside_down_without_exif_is_scanned_every_way(
    engine: FaceEngine, turns: int
) -> None:
    # Given two-portraits.jpg (two faces) and its upright boxes
    upright = Image.open(io.BytesIO(read(UPLOADS / "two-portraits.jpg"))).convert("RGB")
    truth = [o.box for o in engine.analyze(engine.decode(jpeg(upright)))]
    assert len(truth) == 2
    # When the same photo is stored turned 90, 180 or 270 degrees, without an orientation tag
    turned = upright.rotate(90 * turns, expand=True)
    found = engine.analyze(engine.decode(jpeg(turned)))
    # Then both faces are found, where they are in the turned photo
    expected = [turned_box(b, turns, upright.width, upright.height) for b in truth]
    assert len(found) == 2
    assert all(any(covers(e, f.box) for f in found) for e in expected)
    assert all(f.matchable for f in found)


def test_a_48px_face_in_a_12mp_frame_is_found(engine: FaceEngine) -> None:
    # Given a 4000x3000 photo whose only face is 48 px wide
    portrait = Image.open(enroll_portraits()["obama"]).convert("RGB")
    face = engine.analyze(engine.decode(jpeg(portrait)))[0].box
    factor = 48 / face.width
    small = portrait.resize(
        (round(portrait.width * factor), round(portrait.height * factor)), Image.Resampling.LANCZOS
    )
    rng = np.random.default_rng(7)
    noise = rng.integers(80, 170, (300, 400, 3), dtype=np.uint8)
    frame = Image.fromarray(noise).resize((4000, 3000), Image.Resampling.BICUBIC)
    at = (2600, 1700)
    frame.paste(small, at)
    # When the ingest engine scans it (the deployed default: 40 px floor at any size)
    found = engine.analyze(engine.decode(jpeg(frame)))
    # Then exactly that face is found, at its place
    where = Box(
        at[0] + round(face.left * factor),
        at[1] + round(face.top * factor),
        at[0] + round(face.right * factor),
        at[1] + round(face.bottom * factor),
    )
    assert len(found) == 1 and covers(where, found[0].box)
    assert 40 <= found[0].box.width <= 80


def test_a_blurred_face_is_found_but_not_matchable(engine: FaceEngine) -> None:
    # Given a portrait blurred by 3 % of its face width (a Gaussian sigma)
    portrait = Image.open(io.BytesIO(read(UPLOADS / "stranger-portrait.png"))).convert("RGB")
    sharp = engine.analyze(engine.decode(jpeg(portrait)))
    assert len(sharp) == 1 and sharp[0].matchable
    blurred = portrait.filter(ImageFilter.GaussianBlur(0.03 * sharp[0].box.width))
    # When scanned
    found = engine.analyze(engine.decode(jpeg(blurred)))
    # Then the face is still found, and marked as one the recogniser cannot judge
    assert len(found) == 1
    assert not found[0].matchable and found[0].unmatchable == "blur"


def test_a_face_with_eyes_too_close_for_alignment_is_not_matchable() -> None:
    # Given an engine searching for 20 px faces (the lowest tenant floor)
    engine = YuNetFaceEngine(min_face_px=20)
    # And a portrait shrunk until its eyes are about 9 px apart (face ~ 24 px)
    portrait = Image.open(enroll_portraits()["biden"]).convert("RGB")
    face = engine.analyze(engine.decode(jpeg(portrait)))[0].box
    factor = 24 / face.width
    small = portrait.resize(
        (round(portrait.width * factor), round(portrait.height * factor)), Image.Resampling.LANCZOS
    )
    canvas = Image.new("RGB", (max(small.width, 320), max(small.height, 320)), (128, 128, 128))
    canvas.paste(small, (0, 0))
    # When scanned
    found = engine.analyze(engine.decode(jpeg(canvas)))
    # Then it is found, but never matched
    assert len(found) == 1
    assert not found[0].matchable and found[0].unmatchable == "iod"
    assert MIN_IOD_PX > 9


def test_yaw_is_estimated_from_the_nose_offset_between_the_eyes() -> None:
    frontal = np.array([[40, 50], [80, 50], [60, 70], [45, 90], [75, 90]], np.float32)
    assert estimate_yaw(frontal) < 1
    # A nose tip beyond the outer eye: past the limit (a strongly turned head)
    turned = frontal.copy()
    turned[2] = (90, 70)
    assert estimate_yaw(turned) > MAX_YAW_DEG
    # Both eyes on one point (full profile): 90 degrees
    profile = frontal.copy()
    profile[1] = profile[0]
    assert estimate_yaw(profile) == 90
    # The same geometry tilted in the image plane gives the same yaw
    angle = np.radians(40)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    assert abs(estimate_yaw(turned @ rot.T) - estimate_yaw(turned)) < 0.5


def test_a_side_view_with_both_eyes_on_the_visible_side_is_past_the_yaw_limit() -> None:
    # Given YuNet's landmarks of a side view (ulfd_audience_profiles.jpg, scanned whole):
    # both eyes on the visible side, the nose just beyond the nearer one
    side_view = np.array(
        [[78.3, 188.4], [93.3, 188.4], [77.9, 202.6], [79.6, 219.2], [91.0, 219.3]], np.float32
    )
    # When its yaw is estimated
    yaw = estimate_yaw(side_view)
    # Then it is past the limit: never matched
    assert yaw > MAX_YAW_DEG


def test_the_photo_of_dogs_has_no_identifiable_face(engine: FaceEngine) -> None:
    # Given dogs.jpg (two dogs; a small printed portrait lies sideways on the shelf)
    found = engine.analyze(engine.decode(read(UPLOADS / "dogs.jpg")))
    # Then no dog is taken for a face: whatever is found is under the 40 px floor
    assert all(min(f.box.width, f.box.height) < 40 for f in found)


def test_the_budget_counts_every_pass_in_every_orientation(engine: FaceEngine) -> None:
    # Given the ingest engine and untagged frames (four orientations each)
    assert isinstance(engine, YuNetFaceEngine)
    one = engine.scan_pixels(4000, 3000)
    flat = DecodedImage((np.zeros((3000, 4000, 3), np.uint8),), "PNG", 4000, 3000)
    # When one frame is analysed, its scan is the passes' pixels four times over
    engine.analyze(flat)
    assert one == 4 * sum(
        round(4000 * s) * round(3000 * s) for s in engine.detection_passes(4000, 3000)
    )
    # And an animation of 30 distinct 12 MP frames is refused before any scan
    frames = tuple(np.full((3000, 4000, 3), i, np.uint8) for i in range(30))
    with pytest.raises(RejectedInput) as refused:
        engine.analyze(DecodedImage(frames, "GIF", 4000, 3000, meta={"orientation": "1"}))
    assert refused.value.code == "detection_budget_exceeded"
    assert 30 * one > 100_000_000


HARD = REPO / "tests" / "fixtures" / "hard_faces"


def _profiles() -> list[tuple[str, Box]]:
    photos = json.loads((HARD / "labels.json").read_text())["photos"]
    return [
        (name, Box(*face["box"]))
        for name, photo in sorted(photos.items())
        for face in photo["faces"]
        if "profile" in (face.get("note") or "")
    ]


def test_faces_in_profile_are_found_and_never_matched(engine: FaceEngine) -> None:
    # Given the hard-case set's faces labelled "profile" / "near profile" / "full profile"
    profiles = _profiles()
    assert len(profiles) >= 8
    for name, box in profiles:
        # When their photo is scanned (upright, or stored turned without a tag)
        found = engine.analyze(engine.decode((HARD / name).read_bytes()))
        hits = [f for f in found if covers(box, f.box)]
        # Then the face is found, and the recogniser is never asked to name it
        assert hits, (name, box)
        assert not hits[0].matchable, (name, box, hits[0].unmatchable)


def test_numerical_garbage_from_the_detector_is_not_a_face() -> None:
    # Given a plausible YuNet row (box, five landmarks, score) and rows of garbage
    from quitclaim.faces.yunet_engine import _sane

    face = [100, 80, 60, 70, 115, 100, 145, 100, 130, 115, 118, 130, 142, 130, 0.95]
    huge = [-2.4e28, -9.4e27, 9.0e27, 2.4e28, *face[4:]]
    nan = [*face[:14], float("nan")]
    # Then only the plausible row is kept
    assert _sane(face, 640, 480)
    assert not _sane(huge, 640, 480)
    assert not _sane(nan, 640, 480)
    assert not _sane([*face[:14], 3.0], 640, 480)
