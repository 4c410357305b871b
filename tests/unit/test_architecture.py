"""Dependencies point one way: handlers and domain stay free of AWS and dlib."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "layers" / "core" / "python" / "quitclaim"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def _files(root: Path) -> list[Path]:
    files = sorted(root.rglob("*.py"))
    assert files, f"no python files under {root}"
    return files


@pytest.mark.parametrize("path", _files(REPO_ROOT / "functions"), ids=str)
def test_functions_do_not_import_boto3(path: Path) -> None:
    assert not _imports(path) & {"boto3", "botocore", "pynamodb", "dlib"}


@pytest.mark.parametrize("path", _files(PACKAGE / "domain"), ids=str)
def test_domain_is_pure(path: Path) -> None:
    assert not _imports(path) & {"boto3", "botocore", "pynamodb", "dlib", "face_recognition"}


@pytest.mark.parametrize("path", _files(PACKAGE / "usecases"), ids=str)
def test_usecases_use_ports_not_sdks(path: Path) -> None:
    assert not _imports(path) & {"boto3", "botocore", "pynamodb", "dlib"}


def test_only_config_reads_the_environment() -> None:
    # quitclaim/local/ plays the Lambda platform (it sets each function's
    # environment), so it is the one deliberate exception.
    offenders = []
    local = PACKAGE / "local"
    for path in _files(PACKAGE) + _files(REPO_ROOT / "functions"):
        if local in path.parents:
            continue
        text = path.read_text(encoding="utf-8")
        if path.name != "config.py" and (
            "os.environ[" in text or "os.getenv(" in text or "os.environ.get(" in text
        ):
            offenders.append(str(path.relative_to(REPO_ROOT)))
    assert offenders == []


# ---- decide

USECASES = PACKAGE / "usecases"
# The use-cases that decide assets: each depends on the shared machinery
# (usecases/asset_decisions.py), never on another of them.
DECIDING = ("scan_asset", "redact_asset", "review", "recheck")
# faces/ is reached through its port only: the engine's contract, not its
# internals (galleries, imaging, pixels). A type-only import of an internal is
# still a dependency (a signature names it), so TYPE_CHECKING is no exception.
FACES_PORT = "quitclaim.faces.ports"
# Known offenders, each to be fixed by the slice that owns the file (then its
# entry goes: test_decide_known_offenders_still_offend says when).
FACES_PENDING = {
    "accuracy_audit.py": {"quitclaim.faces.quality"},
    "console.py": {"quitclaim.faces.thumbnails"},
    "dashboard.py": {"quitclaim.faces.thumbnails"},
    "registry.py": {"quitclaim.faces.gallery", "quitclaim.faces.quality"},
    "rights.py": {"quitclaim.faces.gallery"},
    # Ingest, redaction and the scan CLI need galleries, the published form and
    # the pixel redaction behind a port first (faces/ and domain/ports/ are not
    # this slice's).
    "place_upload.py": {"quitclaim.faces.published"},
    "redact_asset.py": {"quitclaim.faces.gallery", "quitclaim.faces.redaction"},
    "scan_asset.py": {"quitclaim.faces.gallery", "quitclaim.faces.published"},
    "scan_file.py": {"quitclaim.faces.gallery"},
}
SDKS_PENDING = {
    "accuracy_audit.py": {"numpy"},
    # Event parsing moves to the edge module (issue 20, edges); then it goes.
    "admit_uploads.py": {"quitclaim.adapters.s3_events"},
    # The variant's faces compared with the redacted ones: a faces/ helper to come.
    "redact_asset.py": {"numpy"},
}
_SDKS = ("boto3", "botocore", "pynamodb", "numpy", "PIL")


def _imported_modules(path: Path) -> list[tuple[str, tuple[str, ...]]]:
    """Every absolute import: (module, names imported from it), TYPE_CHECKING ones included."""
    found: list[tuple[str, tuple[str, ...]]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = tuple(alias.name for alias in node.names)
            found.append((node.module, names))
            # ``from quitclaim.faces import redaction`` imports a module too.
            found.extend((f"{node.module}.{name}", ()) for name in names)
    return found


def _under(module: str, root: str) -> bool:
    return module == root or module.startswith(root + ".")


def _faces_internals(path: Path) -> set[str]:
    """The faces/ modules a file imports, other than the port (``quitclaim.faces.x``)."""
    found = {
        ".".join(m.split(".")[:3])
        for m, _ in _imported_modules(path)
        if _under(m, "quitclaim.faces") and m != "quitclaim.faces"
    }
    return found - {FACES_PORT}


def _sdks(path: Path) -> set[str]:
    """The SDKs (top-level name) and adapter modules (``quitclaim.adapters.x``) imported."""
    hits = set()
    for module, _ in _imported_modules(path):
        if _under(module, "quitclaim.adapters") and module != "quitclaim.adapters":
            hits.add(".".join(module.split(".")[:3]))
        elif module.split(".")[0] in _SDKS:
            hits.add(module.split(".")[0])
    return hits


@pytest.mark.parametrize("path", _files(USECASES), ids=lambda p: p.name)
def test_usecases_import_no_adapters_sdks_or_image_libraries(path: Path) -> None:
    # Given a use-case module; When its imports are read; Then none is an
    # adapter, an AWS SDK or an array/image library (beyond the known offenders).
    assert _sdks(path) <= SDKS_PENDING.get(path.name, set())


@pytest.mark.parametrize("path", _files(USECASES), ids=lambda p: p.name)
def test_usecases_reach_faces_only_through_its_port(path: Path) -> None:
    assert _faces_internals(path) <= FACES_PENDING.get(path.name, set())


def test_decide_known_offenders_still_offend() -> None:
    # An entry fixed by its owner must leave the lists (they only shrink).
    stale = [
        (name, sorted(allowed - found))
        for pending, found_in in ((FACES_PENDING, _faces_internals), (SDKS_PENDING, _sdks))
        for name, allowed in pending.items()
        for found in [found_in(USECASES / name) if (USECASES / name).exists() else set()]
        if allowed - found
    ]
    assert stale == []


@pytest.mark.parametrize("path", _files(USECASES), ids=lambda p: p.name)
def test_usecases_import_no_private_names_of_other_usecases(path: Path) -> None:
    own = f"quitclaim.usecases.{path.stem}"
    private = [
        f"{module}.{name}"
        for module, names in _imported_modules(path)
        if _under(module, "quitclaim.usecases") and module != own
        for name in names
        if name.startswith("_")
    ]
    assert private == []


@pytest.mark.parametrize("name", DECIDING)
def test_deciding_usecases_depend_on_the_shared_module_not_on_each_other(name: str) -> None:
    modules = {m for m, _ in _imported_modules(USECASES / f"{name}.py")}
    others = {f"quitclaim.usecases.{other}" for other in DECIDING if other != name}
    assert not modules & others
    assert "quitclaim.usecases.asset_decisions" in modules


def test_shared_decision_module_is_the_bottom_of_the_stack() -> None:
    # asset_decisions depends on the domain and the ports, on no other use-case.
    modules = {m for m, _ in _imported_modules(USECASES / "asset_decisions.py")}
    assert not {m for m in modules if _under(m, "quitclaim.usecases")}
