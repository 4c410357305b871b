"""Irreversible redaction of faces: padded boxes replaced by a coarse mosaic.

Each padded face box is cut into at most ``MOSAIC_BLOCKS`` blocks per side
and every block becomes its mean colour: the pixels that were there are
gone, not hidden (a blur can be partly undone; a block mean cannot). Every
pixel outside the padded boxes is left exactly as decoded, and the variant
is written as PNG, losslessly: a JPEG would change every pixel of the image
and carry the original's EXIF (GPS included) along.

Pure pixels in, pixels out: no engine, no I/O. Whether the engine can still
re-identify anyone in the result is the use-case's check (``usecases.redact_asset``);
``near`` is its comparison of a variant's face with the face that was there.
The module is the ``PixelRedaction`` port's adapter (domain/ports/face_ports.py).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from typing import Final

import numpy as np
from PIL import Image

from quitclaim.domain.models import Box
from quitclaim.domain.ports import Encoding, Pixels

METHOD: Final = "mosaic/1"
# A face box is grown by this fraction of its side on every side: detector
# boxes are tight (brow to chin); hair, ears and jaw identify people too.
PAD: Final = 0.3
# Blocks across the longer side of a padded box. At 8 the engine finds no
# face in the region on the fixtures; fewer blocks leave even less.
MOSAIC_BLOCKS: Final = 8


def padded(box: Box, width: int, height: int, pad: float = PAD) -> Box:
    """``box`` grown by ``pad`` of its side on each side, clipped to the image."""
    dx = math.ceil(box.width * pad)
    dy = math.ceil(box.height * pad)
    return Box(
        max(0, box.left - dx),
        max(0, box.top - dy),
        min(width, box.right + dx),
        min(height, box.bottom + dy),
    )


def redact(pixels: Pixels, boxes: Iterable[Box], *, pad: float = PAD) -> Pixels:
    """A copy of ``pixels`` (H, W, 3) with each padded box replaced by a mosaic."""
    height, width = pixels.shape[:2]
    out = np.array(pixels, dtype=np.uint8, copy=True)
    for box in boxes:
        region = padded(box, width, height, pad)
        if region.width <= 0 or region.height <= 0:
            continue
        out[region.top : region.bottom, region.left : region.right] = _mosaic(
            out[region.top : region.bottom, region.left : region.right]
        )
    out.flags.writeable = False
    return out


def _mosaic(area: Pixels) -> Pixels:
    height, width = area.shape[:2]
    side = max(1, math.ceil(max(height, width) / MOSAIC_BLOCKS))
    rows = math.ceil(height / side)
    cols = math.ceil(width / side)
    result = np.empty_like(area)
    for r in range(rows):
        for c in range(cols):
            block = area[r * side : (r + 1) * side, c * side : (c + 1) * side]
            mean = block.reshape(-1, block.shape[-1]).mean(axis=0)
            result[r * side : (r + 1) * side, c * side : (c + 1) * side] = np.round(mean)
    return result


def to_png(pixels: Pixels) -> bytes:
    """Lossless PNG of RGB pixels, without any metadata."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG")
    return buffer.getvalue()


def near(encoding: Encoding, originals: Sequence[Encoding], threshold: float) -> bool:
    """Whether ``encoding`` lies within ``threshold`` (Euclidean) of any of ``originals``."""
    return any(float(np.linalg.norm(encoding - original)) <= threshold for original in originals)
