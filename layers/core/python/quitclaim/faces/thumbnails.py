"""Small previews of stored images for the review dashboard.

Decoded with the same guarded decoder as ingest (format allow-list, pixel and
frame limits, EXIF orientation), so a preview shows the image exactly as the
face boxes were measured on it: ``width`` and ``height`` are the oriented
full-size dimensions the recorded boxes refer to.
"""

from __future__ import annotations

import io
from collections.abc import Callable

from PIL import Image

from quitclaim.domain.ports import Thumbnail
from quitclaim.faces.imaging import decode_image

THUMBNAIL_QUALITY = 80


def _reduction(max_side: int) -> Callable[[int, int], int]:
    def reduction(width: int, height: int) -> int:
        # The largest DCT scale-down that still leaves at least max_side pixels.
        longest = max(width, height)
        return max((r for r in (1, 2, 4, 8) if longest // r >= max_side), default=1)

    return reduction


def render_thumbnail(
    data: bytes, *, max_side: int, max_bytes: int, max_pixels: int, max_frames: int
) -> Thumbnail:
    """A JPEG of at most ``max_side`` pixels a side (first frame); ``RejectedInput`` if unsafe."""
    decoded = decode_image(
        data,
        max_bytes=max_bytes,
        max_pixels=max_pixels,
        max_frames=max_frames,
        reduction=_reduction(max_side),
    )
    image = Image.fromarray(decoded.frames[0])
    image.thumbnail((max_side, max_side))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=THUMBNAIL_QUALITY)
    return Thumbnail(out.getvalue(), decoded.width, decoded.height)
