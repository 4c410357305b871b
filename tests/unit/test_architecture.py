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


# ---- edges

# What a handler may import from the package: the composition root, settings,
# observability, domain types and the edge module (events in, batches out).
# The API function's own edge is ``quitclaim.api`` (routing, schemas, pages).
HANDLER_MAY_IMPORT = ("bootstrap", "config", "observability", "domain", "edges")


def _package_imports(path: Path) -> set[str]:
    """The ``quitclaim`` modules a file imports at run time (not for type checking only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(sub)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for sub in ast.walk(node)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("quitclaim"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "quitclaim":
                found.update(f"quitclaim.{a.name}" for a in node.names)
            elif node.module.startswith("quitclaim."):
                found.add(node.module)
    return found


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "functions").glob("*/app.py")), ids=str)
def test_handlers_import_only_the_root_config_observability_domain_and_edges(
    path: Path,
) -> None:
    # Given a function's handler module (the API's may also use its own edge, quitclaim.api)
    allowed = HANDLER_MAY_IMPORT + (("api",) if path.parent.name == "api" else ())
    # When its package imports are listed
    imported = _package_imports(path)
    # Then each is one of the allowed layers: no adapter, no use-case
    assert imported, "a handler builds nothing itself: it imports the composition root"
    offenders = sorted(m for m in imported if m.split(".")[1] not in allowed)
    assert offenders == []


def test_importing_the_composition_root_builds_nothing() -> None:
    import os
    import subprocess
    import sys

    # Given a fresh interpreter
    code = (
        "import sys; import quitclaim.bootstrap as b; from quitclaim.bootstrap import "
        "registry_service; heavy = {'boto3', 'pynamodb', 'numpy', 'PIL', 'aws_xray_sdk'}; "
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    # When it imports the composition root and an accessor from it
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)},
        capture_output=True,
        text=True,
        check=True,
    )
    # Then no SDK, store or image library is loaded: each area loads at its first call
    assert done.stdout.strip() == "[]"
