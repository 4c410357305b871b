"""Detection recall and false positives per category, the engine beside face_recognition.

Categories (each a set of photos with hand-drawn boxes, written to a scratch
folder as JPEG without EXIF, so that nothing tells either engine which way is up):

- ``frontal``: the labelled detection sets (``fixtures/faces/detection``) as they are;
- ``sideways``: the same photos stored turned 90, 180 and 270 degrees;
- ``small``: the same photos, at their own size (faces ~25-110 px), in the middle
  of a 4000x3000 grey frame: small faces in a 12 MP photo;
- every category of the hard-case set ``tests/fixtures/hard_faces/labels.json``
  in a full run (frontal, turned, small, occluded, group, tilted,
  sideways; ``--quick`` names its photos and leaves the set out: its 8 MP
  crowds take minutes with face_recognition; a face counts in each of its
  categories; faces labelled ``ignore`` count neither as missed nor, when
  detected, as false positives);
- ``face_free``: uploads labelled with no people (dogs.jpg): every detection is
  a false positive, but for one of a face printed in the photo (``in_print`` in
  ``labels.json``: dogs.jpg's portrait on a card); ``identifiable_fp`` counts
  those of at least 40 px.

A detection covers a box as in ``bench.labelled.covers``. False positives are
detections covering no box of their photo, per photo.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from bench.labelled import (
    DETECTION,
    LABELLED_SETS,
    REPO,
    UPLOADS,
    covers,
    detection_boxes,
    in_print,
    labels,
)
from quitclaim.domain.models import Box

HARD_SET = REPO / "tests" / "fixtures" / "hard_faces"
SMALL_FRAME = (4000, 3000)
MIN_FACE_PX = 40

# (category, photo path, the category's boxes, every box of the photo)
Case = tuple[str, Path, tuple[Box, ...], tuple[Box, ...]]


def _save(image: Image.Image, path: Path) -> Path:
    image.convert("RGB").save(path, "JPEG", quality=92)  # no EXIF written
    return path


def _turned(box: Box, turns: int, width: int, height: int) -> Box:
    points = [(box.left, box.top), (box.right, box.bottom)]
    for _ in range(turns):
        points = [(y, width - x) for x, y in points]
        width, height = height, width
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return Box(min(xs), min(ys), max(xs), max(ys))


def cases(scratch: Path, detection: Sequence[str] | None = None) -> list[Case]:
    """Every (category, photo, boxes) to score, generated photos written to ``scratch``."""
    truth: dict[str, tuple[Box, ...]] = {}
    for xml_name in LABELLED_SETS:
        truth.update(detection_boxes(xml_name))
    names = sorted(truth) if detection is None else [n for n in sorted(truth) if n in detection]
    out: list[Case] = []
    for name in names:
        image = ImageOps.exif_transpose(Image.open(DETECTION / name)).convert("RGB")
        boxes = truth[name]
        stem = Path(name).stem
        out.append(("frontal", _save(image, scratch / f"{stem}.jpg"), boxes, boxes))
        for turns in (1, 2, 3):
            turned = image.rotate(90 * turns, expand=True)
            moved = tuple(_turned(b, turns, image.width, image.height) for b in boxes)
            path = _save(turned, scratch / f"{stem}-turned{turns}.jpg")
            out.append(("sideways", path, moved, moved))
        frame = Image.new("RGB", SMALL_FRAME, (128, 128, 128))
        dx, dy = (SMALL_FRAME[0] - image.width) // 2, (SMALL_FRAME[1] - image.height) // 2
        frame.paste(image, (dx, dy))
        placed = tuple(Box(b.left + dx, b.top + dy, b.right + dx, b.bottom + dy) for b in boxes)
        out.append(("small", _save(frame, scratch / f"{stem}-in-12mp.jpg"), placed, placed))
    if detection is None:
        out.extend(_hard_cases())
    out.extend(face_free_cases())
    return out


def face_free_cases() -> list[Case]:
    """The uploads labelled with no people.

    A face printed in one (labels.json ``in_print``) is real: found, it is no
    false positive; missed, no miss.
    """
    return [
        ("face_free", UPLOADS / upload, (), in_print(upload))
        for upload, label in sorted(labels()["uploads"].items())
        if label["people"] == []
    ]


def _hard_cases() -> list[Case]:
    path = HARD_SET / "labels.json"
    if not path.is_file():
        return []
    data: dict[str, Any] = json.loads(path.read_text())
    out: list[Case] = []
    for name, photo in sorted(data["photos"].items()):
        by_category: dict[str, list[Box]] = defaultdict(list)
        for face in photo["faces"]:
            for category in face["categories"]:
                if category != "ignore":  # labelled, but counted neither way
                    by_category[category].append(Box(*face["box"]))
        every = tuple(Box(*f["box"]) for f in photo["faces"])
        for category, boxes in sorted(by_category.items()):
            # Recall counts the category's faces; false positives are scored
            # against every face of the photo (a turned face is no false
            # positive of the photo's "small" category).
            out.append((f"hard:{category}", HARD_SET / name, tuple(boxes), every))
    return out


def score(case_list: Sequence[Case], found: Sequence[Sequence[Box]]) -> dict[str, dict[str, Any]]:
    """Per category: recall (hits / boxes), false positives per image."""
    out: dict[str, dict[str, Any]] = {}
    for (category, _path, boxes, every), got in zip(case_list, found, strict=True):
        entry = out.setdefault(category, {"found": 0, "of": 0, "images": 0, "false_positives": 0})
        entry["found"] += sum(any(covers(b, g) for g in got) for b in boxes)
        entry["of"] += len(boxes)
        entry["images"] += 1
        fps = [g for g in got if not any(covers(b, g) for b in every)]
        entry["false_positives"] += len(fps)
        if category == "face_free":
            entry["identifiable_fp"] = entry.get("identifiable_fp", 0) + sum(
                min(g.width, g.height) >= MIN_FACE_PX for g in fps
            )
    for entry in out.values():
        entry["recall"] = round(entry["found"] / entry["of"], 4) if entry["of"] else None
        entry["fp_per_image"] = round(entry["false_positives"] / entry["images"], 4)
    faces = [e for c, e in out.items() if c != "face_free"]
    found = sum(e["found"] for e in faces)
    total = sum(e["of"] for e in faces)
    out["overall"] = {
        "found": found,
        "of": total,
        "recall": round(found / total, 4) if total else None,
    }
    return out


def _each_photo_once(
    run_both: Callable[[list[Path]], tuple[list[list[Box]], list[list[Box]]]],
    case_list: Sequence[Case],
) -> tuple[list[list[Box]], list[list[Box]]]:
    """Both engines' boxes per case, scanning each photo once.

    A hard-case photo is a case in each of its categories (an 8 MP crowd in
    five); scanning it once per category multiplied the slowest scans.
    """
    paths = list(dict.fromkeys(c[1] for c in case_list))
    base, ours = run_both(paths)
    where = {path: i for i, path in enumerate(paths)}
    return [base[where[c[1]]] for c in case_list], [ours[where[c[1]]] for c in case_list]


def compare(
    run_both: Callable[[list[Path]], tuple[list[list[Box]], list[list[Box]]]],
    scratch: Path,
    detection: Sequence[str] | None,
) -> dict[str, Any]:
    """``detect_recall``: both engines on the same photos, per category."""
    scratch.mkdir(parents=True, exist_ok=True)
    case_list = cases(scratch, detection)
    base, ours = _each_photo_once(run_both, case_list)
    result: dict[str, Any] = {"baseline": score(case_list, base), "ours": score(case_list, ours)}
    ours_s, base_s = result["ours"], result["baseline"]
    categories = [c for c in ours_s if c not in ("overall", "face_free")]
    targets = {
        "every_category_not_below_baseline": all(
            (ours_s[c]["recall"] or 0) >= (base_s[c]["recall"] or 0) for c in categories
        ),
        "overall_at_least_0.95": (ours_s["overall"]["recall"] or 0) >= 0.95,
        "fp_per_image_within_baseline_plus_0.05": all(
            ours_s[c]["fp_per_image"] <= base_s[c]["fp_per_image"] + 0.05 for c in categories
        ),
        "no_identifiable_fp_on_face_free": ours_s.get("face_free", {}).get("identifiable_fp", 0)
        == 0,
    }
    for name, category, least in (("turned", "hard:turned", 0.9), ("small", "small", 0.95)):
        if category in ours_s:
            targets[f"{name}_at_least_{least}"] = (ours_s[category]["recall"] or 0) >= least
    result["targets"] = targets
    result["target_met"] = all(targets.values())
    return result
