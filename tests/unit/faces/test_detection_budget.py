"""The detector's pixel budget: no image is scanned beyond it (docs/budgets.md).

A 60 MP photo searched for 40 px faces needs a 240 MP scan (full size,
upsampled once): minutes of CPU and gigabytes on the shared ingest pool. The
engine refuses it with its own reason code instead of scanning it, and never
approves it on a "no face" it could not see. The detector is replaced by a
spy, so these tests measure what would have been scanned without scanning it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from quitclaim.domain.errors import RejectedInput
from quitclaim.domain.ports import DecodedImage
from quitclaim.faces.dlib_engine import DlibFaceEngine

# The default budget (Settings.detect_budget_pixels): a 24 MP photo scanned
# for 40 px faces (96 MP after dlib's upsampling) fits, a 60 MP one does not.
DEFAULT_BUDGET = 100_000_000


class SpyDetector:
    """Records what dlib would scan; finds nothing."""

    def __init__(self) -> None:
        self.scans: list[int] = []

    def run(self, image: Any, upsample: int, _threshold: float) -> tuple[list[Any], ...]:
        height, width = image.shape[:2]
        self.scans.append(width * height * 4**upsample)
        return [], [], []


def spied(engine: DlibFaceEngine) -> SpyDetector:
    spy = SpyDetector()
    engine._models = replace(engine._models, detector=spy)  # a test seam
    return spy


def flat(width: int, height: int, frames: int = 1) -> DecodedImage:
    pixels = np.full((height, width, 3), 128, dtype=np.uint8)
    pixels.flags.writeable = False
    return DecodedImage((pixels,) * frames, "JPEG", width, height)


def test_a_60mp_photo_is_not_scanned_beyond_the_budget_nor_approved_unseen() -> None:
    # Given the engine as the ingest function builds it (40 px floor, no relative floor)
    engine = DlibFaceEngine(min_face_fraction=None)
    spy = spied(engine)
    # When a flat 60 MP photo is analysed
    with pytest.raises(RejectedInput) as refused:
        engine.analyze(flat(10_000, 6_000))
    # Then it is refused with its own reason, not answered with "no face"
    assert refused.value.code == "detection_budget_exceeded"
    # And nothing beyond the budget was scanned (here: nothing at all)
    assert all(pixels <= DEFAULT_BUDGET for pixels in spy.scans)


def test_a_24mp_photo_is_still_scanned_for_40px_faces_within_the_budget() -> None:
    # Given the default engine and a 24 MP photo
    engine = DlibFaceEngine(min_face_fraction=None)
    spy = spied(engine)
    # When analysed
    assert engine.analyze(flat(6_000, 4_000)) == []
    # Then it was scanned once, at the size that sees a 40 px face, within the budget
    assert spy.scans == [6_000 * 4_000 * 4]
    assert engine.scan_pixels(6_000, 4_000) <= DEFAULT_BUDGET


def test_the_opt_in_relative_floor_scans_a_60mp_photo_within_the_budget() -> None:
    # Given a tenant who chose the relative floor (QC_RELATIVE_FACE_FLOOR=0.04)
    engine = DlibFaceEngine(min_face_fraction=1 / 25)
    spy = spied(engine)
    # When the 60 MP photo is analysed
    assert engine.analyze(flat(10_000, 6_000)) == []
    # Then it is scanned on a bounded working copy, within the budget
    assert len(spy.scans) == 1 and spy.scans[0] <= DEFAULT_BUDGET


def test_the_budget_counts_every_distinct_frame_once() -> None:
    # Given an engine with a budget of three 1 MP scans (250k px frames, upsampled once)
    engine = DlibFaceEngine(min_face_fraction=None, detect_budget_pixels=3_000_000)
    spy = spied(engine)
    # When an animation repeats one frame ten times, it is scanned once
    assert engine.analyze(flat(500, 500, frames=10)) == []
    assert spy.scans == [1_000_000]
    # When four distinct frames would need 4 MP of scanning
    frames = tuple(np.full((500, 500, 3), shade, dtype=np.uint8) for shade in (10, 60, 110, 160))
    with pytest.raises(RejectedInput) as refused:
        engine.analyze(DecodedImage(frames, "GIF", 500, 500))
    # Then the image is refused before any of them is scanned
    assert refused.value.code == "detection_budget_exceeded"
    assert spy.scans == [1_000_000]


def test_a_budget_too_small_for_an_ordinary_photo_is_a_configuration_error() -> None:
    # A budget is a pixel count: zero or less would refuse every image
    with pytest.raises(ValueError, match="detect_budget_pixels"):
        DlibFaceEngine(detect_budget_pixels=0)
