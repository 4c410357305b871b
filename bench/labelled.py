"""The labelled face fixtures and how recall on them is counted.

Shared by the benchmark and the recall tests (``tests/unit/faces``), so that
both count a found face the same way. The photographs are in the repository
(``fixtures/faces/``, sources and licences in its README), found relative to
the repository root.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from quitclaim.domain.models import Box

REPO = Path(__file__).resolve().parents[1]
FACES = REPO / "fixtures" / "faces"
UPLOADS = FACES / "uploads"
ENROLL = FACES / "enroll"
DETECTION = FACES / "detection"
RESOLUTION = FACES / "resolution"
LABELLED_SETS = ("testing.xml", "training.xml")


def read(path: Path) -> bytes:
    """The bytes of a fixture, with a clear message when the checkout lacks them."""
    if not path.is_file():
        raise FileNotFoundError(f"face fixture missing: {path} (fixtures/faces/ in the repository)")
    return path.read_bytes()


@cache
def labels() -> dict[str, Any]:
    """``labels.json``: who is in each upload."""
    data: dict[str, Any] = json.loads(read(FACES / "labels.json"))
    return data


def upload_names() -> list[str]:
    return sorted(labels()["uploads"])


def expected_faces(name: str) -> tuple[int, int | None]:
    """(at least, exactly or None) faces a careful human sees in an upload."""
    label = labels()["uploads"][name]
    people = label["people"]
    if isinstance(people, list):
        return len(people), len(people)
    return int(label["min_faces"]), None


def in_print(name: str) -> tuple[Box, ...]:
    """Faces printed in upload ``name`` (a portrait on a card): found or not, never counted."""
    return tuple(Box(*b) for b in labels()["uploads"][name].get("in_print", ()))


def count_ok(name: str, found: int) -> bool:
    """Whether ``found`` faces in upload ``name`` agree with its label.

    A printed face may be found or not: an engine that finds it sees a real
    face (of no one in the scene), one that misses it is not wrong either.
    """
    least, exactly = expected_faces(name)
    if exactly is None:
        return found >= least
    return exactly <= found <= exactly + len(in_print(name))


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
    root = ET.fromstring(read(DETECTION / xml_name))  # noqa: S314 - our own fixture
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


def recall(
    truth: Mapping[str, Sequence[Box]], found: Mapping[str, Iterable[Box]]
) -> tuple[int, int]:
    """(hand-drawn boxes covered by some detection, hand-drawn boxes)."""
    hits = 0
    total = 0
    for name, boxes in truth.items():
        got = list(found.get(name, ()))
        hits += sum(any(covers(box, g) for g in got) for box in boxes)
        total += len(boxes)
    return hits, total


def unmatched(truth: Mapping[str, Sequence[Box]], found: Mapping[str, Iterable[Box]]) -> int:
    """Detections that cover no hand-drawn box (false alarms, or unlabelled faces)."""
    extra = 0
    for name, boxes in truth.items():
        extra += sum(not any(covers(box, g) for box in boxes) for g in found.get(name, ()))
    return extra
