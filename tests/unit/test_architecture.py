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


# ---- accuracy3
# Issue #20 for the accuracy, billing, usage, conservation, backlog, digest,
# dashboard and audit use-cases: ports only, public names only, one meaning per file name.
_ACCURACY3_USECASES = (
    "accuracy_audit",
    "accuracy_jobs",
    "stamp_accuracy",
    "billing_runs",
    "usage_metering",
    "conservation",
    "backlog_scan",
    "digest",
    "dashboard",
    "audit_read",
    "audit_trail",
)


def _from_imports(path: Path) -> list[ast.ImportFrom | ast.Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]


@pytest.mark.parametrize("name", _ACCURACY3_USECASES)
def test_accuracy3_usecases_import_no_sdk_adapter_or_image_library(name: str) -> None:
    # Given one of these use-cases
    path = PACKAGE / "usecases" / f"{name}.py"
    # When its imports (module level and inside functions) are read
    modules = set()
    for node in _from_imports(path):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif node.module and node.level == 0:
            modules.add(node.module)
    # Then none is an SDK, an adapter, or an image/array library (those sit behind ports)
    banned = {"boto3", "botocore", "pynamodb", "dlib", "cv2", "numpy", "PIL"}
    assert not {m for m in modules if m.split(".")[0] in banned}
    assert not {m for m in modules if m.startswith("quitclaim.adapters")}


@pytest.mark.parametrize("name", _ACCURACY3_USECASES)
def test_accuracy3_usecases_import_no_private_names(name: str) -> None:
    # Given one of these use-cases, when its names imported from the package are read
    path = PACKAGE / "usecases" / f"{name}.py"
    private = [
        f"{node.module}.{alias.name}"
        for node in _from_imports(path)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("quitclaim")
        for alias in node.names
        if alias.name.startswith("_")
    ]
    # Then none is another module's private name
    assert private == []


@pytest.mark.parametrize("name", _ACCURACY3_USECASES)
def test_accuracy3_usecase_file_names_have_one_meaning(name: str) -> None:
    # Given one of these use-cases, when the package's modules are listed
    same = [p for p in _files(PACKAGE) if p.stem == name]
    # Then no module in another folder has its file name
    assert [str(p.relative_to(PACKAGE)) for p in same] == [f"usecases/{name}.py"]
