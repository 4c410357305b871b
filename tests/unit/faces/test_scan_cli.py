"""``quitclaim scan``: the ingest engine on one file, with an optional folder gallery."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import main
from quitclaim.bootstrap import face_engine
from tests.unit.faces._fixtures import ENROLL, UPLOADS, labels


def scan(*args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(main, ["scan", *args, "--json"])
    return result.exit_code, json.loads(result.output.strip().splitlines()[-1])


@pytest.mark.parametrize("upload", ["two-portraits.jpg", "stage-with-child.jpg"])
def test_each_labelled_person_is_named_and_the_stranger_is_not(upload: str) -> None:
    # Given the enrolment portraits as a name/photo gallery
    # When one labelled upload is scanned against it
    code, out = scan(str(UPLOADS / upload), "--gallery", str(ENROLL))

    # Then every enrolled person in the labels is the best match of one face, and
    # a face of someone not enrolled matches nobody
    assert code == 0
    people = labels()["uploads"][upload]["people"]
    named = sorted(f["match"] for f in out["faces"] if f["match"])
    assert named == sorted(p for p in people if p != "unknown")
    assert sum(f["match"] is None for f in out["faces"]) == people.count("unknown")
    assert out["gallery"]["people"] == len([p for p in ENROLL.iterdir() if p.is_dir()])
    for face in out["faces"]:
        assert face["distance"] is not None
        if face["match"]:
            assert face["distance"] <= out["threshold"]


def test_boxes_are_the_ingest_engines_in_top_right_bottom_left_order() -> None:
    # Given a photo the ingest engine finds faces in
    path = UPLOADS / "couple.jpg"
    engine = face_engine()
    found = engine.analyze(engine.decode(path.read_bytes()))

    # When it is scanned without a gallery
    code, out = scan(str(path))

    # Then the boxes are the engine's own, in original pixels, as top/right/bottom/left
    assert code == 0 and "gallery" not in out
    assert [f["box"] for f in out["faces"]] == [
        {"top": o.box.top, "right": o.box.right, "bottom": o.box.bottom, "left": o.box.left}
        for o in found
    ]
    for face in out["faces"]:
        box = face["box"]
        assert 0 <= box["left"] < box["right"] <= out["width"]
        assert 0 <= box["top"] < box["bottom"] <= out["height"]
        assert "match" not in face


def test_a_file_the_gate_would_reject_exits_2_with_its_reason(tmp_path: Path) -> None:
    # Given a JPEG cut off halfway
    data = (UPLOADS / "kit-closeup.jpg").read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])

    # When it is scanned
    code, out = scan(str(cut))

    # Then it is refused with the gate's reason code, not scanned with a grey half
    assert code == 2
    assert out["rejected"] == "truncated_image"
