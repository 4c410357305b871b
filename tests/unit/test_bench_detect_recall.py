"""``engine_12mp.detect_recall``: the categories and how they are scored (no engine run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from bench import detect_recall, labelled
from quitclaim.domain.models import Box


def test_the_categories_hold_every_labelled_face_turned_and_small(tmp_path: Path) -> None:
    # Given one labelled detection photo
    cases = detect_recall.cases(tmp_path, ["2008_002506.jpg"])
    by = {c[0]: [x for x in cases if x[0] == c[0]] for c in cases}
    # Then it is scored upright, turned three ways, and small in a 12 MP frame,
    # and the face-free upload is scored for false positives
    assert len(by["frontal"]) == 1 and len(by["sideways"]) == 3 and len(by["small"]) == 1
    assert [c[1].name for c in by["face_free"]] == ["dogs.jpg"]
    assert Image.open(by["small"][0][1]).size == detect_recall.SMALL_FRAME
    # And a turned photo's boxes cover the same pixels as the upright ones
    upright = np.asarray(Image.open(by["frontal"][0][1]).convert("L"), dtype=np.float32)
    box = by["frontal"][0][2][0]
    for _category, path, boxes, _every in by["sideways"]:
        turned = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
        b = boxes[0]
        a = upright[box.top : box.bottom, box.left : box.right].mean()
        assert abs(turned[b.top : b.bottom, b.left : b.right].mean() - a) < 3


def test_recall_and_false_positives_are_counted_per_category() -> None:
    face = Box(10, 10, 50, 50)
    cases = [
        ("frontal", Path("a.jpg"), (face,), (face,)),
        ("frontal", Path("b.jpg"), (face,), (face,)),
        ("face_free", Path("dogs.jpg"), (), ()),
    ]
    found = [[face, Box(200, 200, 260, 260)], [], [Box(0, 0, 30, 30), Box(0, 0, 60, 60)]]
    scored = detect_recall.score(cases, found)
    assert scored["frontal"]["recall"] == 0.5 and scored["frontal"]["fp_per_image"] == 0.5
    assert scored["face_free"]["false_positives"] == 2
    assert scored["face_free"]["identifiable_fp"] == 1
    assert scored["overall"] == {"found": 1, "of": 2, "recall": 0.5}


def test_each_photo_is_scanned_once_however_many_categories_it_is_in(tmp_path: Path) -> None:
    # Given a photo that is a case in two categories, and one in a single category
    face = Box(10, 10, 50, 50)
    cases = [
        ("hard:group", Path("crowd.jpg"), (face,), (face,)),
        ("hard:small", Path("crowd.jpg"), (face,), (face,)),
        ("frontal", Path("one.jpg"), (face,), (face,)),
    ]
    scanned: list[Path] = []

    def run_both(paths: list[Path]) -> tuple[list[list[Box]], list[list[Box]]]:
        scanned.extend(paths)
        found = [[face] if p.name == "crowd.jpg" else [] for p in paths]
        return found, found

    # When both engines are run for the cases
    base, ours = detect_recall._each_photo_once(run_both, cases)
    # Then each photo was scanned once, and every case gets its photo's boxes
    assert scanned == [Path("crowd.jpg"), Path("one.jpg")]
    assert ours == base == [[face], [face], []]


def test_a_quick_run_names_its_photos_and_leaves_the_hard_set_out(tmp_path: Path) -> None:
    # When only named photos are asked for (the quick bench)
    cases = detect_recall.cases(tmp_path, ["2008_002506.jpg"])
    # Then no hard-case photo is among them (its crowds take minutes with HOG)
    assert not [c for c in cases if c[0].startswith("hard:")]


def test_a_face_printed_in_a_face_free_upload_is_neither_missed_nor_false() -> None:
    # Given the face-free upload with a portrait printed on a card (labels.json in_print)
    (case,) = detect_recall.face_free_cases()
    _category, path, boxes, every = case
    assert path.name == "dogs.jpg" and boxes == ()
    (printed,) = every
    # When one engine finds the printed face and a dog, and another finds nothing
    dog = Box(400, 100, 520, 220)
    found = detect_recall.score([case, case], [[printed, dog], []])["face_free"]
    # Then only the dog is a false positive, and nothing counts as missed
    assert found["false_positives"] == 1 and found["identifiable_fp"] == 1
    assert found["of"] == 0


def test_a_printed_face_may_be_counted_or_not_but_no_more_faces() -> None:
    # Given dogs.jpg (no people, one printed face) and stranger-portrait.png (one stranger)
    # Then 0 or 1 faces agree with the dogs' label, 2 do not; the stranger's count is exact
    assert labelled.count_ok("dogs.jpg", 0) and labelled.count_ok("dogs.jpg", 1)
    assert not labelled.count_ok("dogs.jpg", 2)
    assert labelled.count_ok("stranger-portrait.png", 1)
    assert not labelled.count_ok("stranger-portrait.png", 2)
    assert labelled.in_print("stranger-portrait.png") == ()
