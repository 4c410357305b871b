"""Paths to, and readers for, the shared face fixtures.

CI clones the repository next to ``shared/``, so the fixtures are found
relative to the repository root, never through an absolute path.
"""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path
from typing import Any

from PIL import Image

from quitclaim.domain.models import Box

REPO = Path(__file__).resolve().parents[3]
FACES = REPO.parent / "shared" / "fixtures" / "faces"
UPLOADS = FACES / "uploads"
ENROLL = FACES / "enroll"
DETECTION = FACES / "detection"
RESOLUTION = FACES / "resolution"

# A small, sharp, single-face upload: the workhorse of the imaging tests.
ONE_FACE = UPLOADS / "kit-closeup.jpg"


def read(path: Path) -> bytes:
    """The bytes of a fixture, with a clear message when the checkout lacks them."""
    if not path.is_file():
        raise FileNotFoundError(f"face fixture missing: {path} (is shared/ beside the repo?)")
    return path.read_bytes()


@cache
def labels() -> dict[str, Any]:
    """``labels.json``: who is in each upload."""
    data: dict[str, Any] = json.loads(read(FACES / "labels.json"))
    return data


def upload_names() -> list[str]:
    return sorted(labels()["uploads"])


def enroll_portraits() -> dict[str, Path]:
    """Subject (folder name) → their one reference portrait."""
    return {
        folder.name: next(p for p in sorted(folder.iterdir()) if p.is_file())
        for folder in sorted(ENROLL.iterdir())
        if folder.is_dir()
    }


@cache
def detection_boxes(xml_name: str) -> dict[str, tuple[Box, ...]]:
    """Hand-drawn boxes of an imglab file, per image file name, as ``Box``."""
    root = ET.fromstring(read(DETECTION / xml_name))
    result: dict[str, tuple[Box, ...]] = {}
    for image in root.iter("image"):
        boxes = []
        for b in image.iter("box"):
            left, top = int(b.get("left", 0)), int(b.get("top", 0))
            boxes.append(
                Box(left, top, left + int(b.get("width", 0)), top + int(b.get("height", 0)))
            )
        result[str(image.get("file"))] = tuple(boxes)
    return result


def iou(a: Box, b: Box) -> float:
    inter_w = max(0, min(a.right, b.right) - max(a.left, b.left))
    inter_h = max(0, min(a.bottom, b.bottom) - max(a.top, b.top))
    inter = inter_w * inter_h
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union else 0.0


def covers(truth: Box, found: Box) -> bool:
    """A detection counts for a hand-drawn box at IoU >= 0.3 or when it holds its centre."""
    cx = (truth.left + truth.right) / 2
    cy = (truth.top + truth.bottom) / 2
    centre_inside = found.left <= cx < found.right and found.top <= cy < found.bottom
    return iou(truth, found) >= 0.3 or centre_inside


def encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    """Serialise a Pillow image to bytes in ``fmt``."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()
