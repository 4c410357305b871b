"""Pixel redaction: padded boxes become a coarse mosaic; nothing else changes."""

from __future__ import annotations

import numpy as np
import pytest

from quitclaim.domain.models import Box
from quitclaim.faces.imaging import decode_image
from quitclaim.faces.redaction import MOSAIC_BLOCKS, PAD, padded, redact, to_png

LIMITS = {"max_bytes": 1 << 24, "max_pixels": 1 << 24, "max_frames": 1}


def noise(height: int = 120, width: int = 160, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_a_box_is_padded_on_every_side_and_clipped_to_the_image() -> None:
    assert padded(Box(50, 40, 90, 80), 160, 120) == Box(38, 28, 102, 92)
    # At the edges it stops at the image
    assert padded(Box(0, 0, 40, 40), 50, 45) == Box(0, 0, 50, 45)
    assert padded(Box(10, 10, 20, 20), 160, 120, pad=0) == Box(10, 10, 20, 20)


def test_only_the_padded_box_changes_and_it_becomes_a_coarse_mosaic() -> None:
    pixels = noise()
    pixels.flags.writeable = False
    box = Box(50, 40, 90, 80)
    # When the face box is redacted
    out = redact(pixels, [box])
    region = padded(box, 160, 120, PAD)
    # Then every pixel outside the padded box is the original's, bit for bit
    outside = np.ones(pixels.shape[:2], dtype=bool)
    outside[region.top : region.bottom, region.left : region.right] = False
    assert np.array_equal(out[outside], pixels[outside])
    # And inside, at most MOSAIC_BLOCKS x MOSAIC_BLOCKS colours remain, each one
    # the mean of its block (the pixels that were there are gone)
    inside = out[region.top : region.bottom, region.left : region.right].reshape(-1, 3)
    assert len(np.unique(inside, axis=0)) <= MOSAIC_BLOCKS**2
    side = -(-max(region.width, region.height) // MOSAIC_BLOCKS)
    first = pixels[region.top : region.top + side, region.left : region.left + side]
    expected = np.round(first.reshape(-1, 3).mean(axis=0))
    assert np.array_equal(out[region.top, region.left], expected.astype(np.uint8))
    # And the input is untouched, the result read-only (frames are shared)
    assert not np.array_equal(out, pixels) and out.flags.writeable is False


def test_several_boxes_and_boxes_at_the_edge() -> None:
    pixels = noise()
    out = redact(pixels, [Box(0, 0, 30, 30), Box(140, 100, 160, 120)])
    assert np.array_equal(out[60, 80], pixels[60, 80])
    assert len(np.unique(out[:39, :39].reshape(-1, 3), axis=0)) <= MOSAIC_BLOCKS**2


@pytest.mark.parametrize("size", [(1, 1), (7, 3), (120, 160)])
def test_the_png_is_lossless_and_carries_no_metadata(size: tuple[int, int]) -> None:
    pixels = noise(*size)
    data = to_png(pixels)
    decoded = decode_image(data, **LIMITS)
    assert decoded.source_format == "PNG" and np.array_equal(decoded.frames[0], pixels)
    assert b"eXIf" not in data and b"tEXt" not in data
