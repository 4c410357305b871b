"""Paths to, and readers for, the shared face fixtures (see ``bench.labelled``).

The recall helpers live in ``bench.labelled`` so that the benchmark and these
tests count a found face the same way.
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from bench.labelled import (
    DETECTION,
    ENROLL,
    FACES,
    LABELLED_SETS,
    REPO,
    RESOLUTION,
    UPLOADS,
    count_ok,
    covers,
    detection_boxes,
    enroll_portraits,
    expected_faces,
    iou,
    labels,
    read,
    recall,
    unmatched,
    upload_names,
)

__all__ = [
    "DETECTION",
    "ENROLL",
    "FACES",
    "LABELLED_SETS",
    "ONE_FACE",
    "REPO",
    "RESOLUTION",
    "UPLOADS",
    "count_ok",
    "covers",
    "detection_boxes",
    "encode",
    "enroll_portraits",
    "expected_faces",
    "iou",
    "labels",
    "read",
    "recall",
    "unmatched",
    "upload_names",
]

# A small, sharp, single-face upload: the workhorse of the imaging tests.
ONE_FACE = UPLOADS / "kit-closeup.jpg"


def encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    """Serialise a Pillow image to bytes in ``fmt``."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()
