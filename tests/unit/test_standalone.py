"""A clone stands alone: nothing reads outside the repository, and the photographs it
carries for the demo and the tests never ship in a layer or a package."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from infra import build_layers
from tests.conftest import FACES, REPO_ROOT

# Built from parts so that this file does not match its own pattern.
OUTSIDE = ".." + "/shared"
TEXT_SUFFIXES = {".py", ".md", ".toml", ".yaml", ".yml", ".json", ".cfg", ".txt", ".sh", ""}


def tracked_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, check=True, capture_output=True
    ).stdout.decode()
    return [REPO_ROOT / name for name in out.split("\0") if name]


def test_no_tracked_file_refers_to_a_folder_beside_the_repository() -> None:
    # Given every tracked text file (code, tests, Makefile, docs, scripts)
    texts = [p for p in tracked_files() if p.suffix in TEXT_SUFFIXES and p.is_file()]
    assert any(p.name == "Makefile" for p in texts)
    # When they are searched for the sibling folder the project once read
    hits = [
        f"{p.relative_to(REPO_ROOT)}:{n}"
        for p in texts
        for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE in line
    ]
    # Then none refers to it
    assert hits == []


def test_the_photographs_are_in_the_repository_with_their_sources() -> None:
    # Given the labels the demo and the tests read
    labels = json.loads((FACES / "labels.json").read_text())
    # Then every labelled upload, the enrolment photos and the boxes' images are tracked files
    tracked = set(tracked_files())
    assert FACES.is_relative_to(REPO_ROOT)
    assert {FACES / "uploads" / name for name in labels["uploads"]} <= tracked
    assert len([p for p in tracked if p.is_relative_to(FACES / "enroll")]) == 5
    assert FACES / "detection" / "testing.xml" in tracked
    readme = (FACES / "README.md").read_text()
    assert "MIT" in readme and "PASCAL VOC" in readme


def test_a_photograph_in_a_layer_is_found_by_content(tmp_path: Path) -> None:
    # Given a layer folder holding a renamed copy of a fixture photograph, and a zip with another
    digests = build_layers.photograph_digests()
    layer = tmp_path / "layer" / "python"
    layer.mkdir(parents=True)
    shutil.copy(FACES / "uploads" / "dogs.jpg", layer / "banner.jpg")
    (layer / "ok.png").write_bytes(b"\x89PNG not a fixture")
    archive = tmp_path / "code.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(FACES / "enroll" / "obama" / "obama-portrait.jpg", "static/a.jpg")
    # When the build's check runs over both
    found = build_layers.photographs_in([tmp_path / "layer", archive], digests)
    assert any(v.startswith("tests/fixtures/hard_faces/") for v in digests.values())
    # Then both copies are named, and the unrelated PNG is not
    assert len(found) == 2
    assert "banner.jpg is fixtures/faces/uploads/dogs.jpg" in found[0]
    assert "static/a.jpg is fixtures/faces/enroll/obama/obama-portrait.jpg" in found[1]


def test_the_layer_package_and_the_functions_carry_no_photograph(tmp_path: Path) -> None:
    # Given the core layer's package as the build copies it, and every function's code
    site = tmp_path / "python"
    site.mkdir()
    build_layers.copy_package(site)
    codes = [code for code, _ in build_layers.template_functions(tmp_path).values()]
    # Then no photograph is among their files
    assert build_layers.photographs_in([site, *codes], build_layers.photograph_digests()) == []


@pytest.mark.timeout(300)
def test_the_wheel_carries_no_photograph(tmp_path: Path) -> None:
    # Given the project's wheel, built offline from this checkout
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(tmp_path),
            str(REPO_ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("quitclaim-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "quitclaim/domain/decision.py" in names
    # Then it holds no photograph, by name or by content
    assert [n for n in names if "fixtures" in n] == []
    assert build_layers.photographs_in([wheel], build_layers.photograph_digests()) == []
