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


# ---- rest
# The use-cases of the consent, webhook and rights services (branch `rest`).
_REST_USECASES = (
    "webhook_admin",
    "webhook_inbox",
    "webhook_apply",
    "webhook_dispatch",
    "subject_rights",
    "form_submissions",
    "handle_person_requests",
    "import_consents",
    "notices",
    "link_pages",
    "mail_feedback",
    "reminders",
    "expiry",
    "retention_sweep",
)
_NOT_IN_USECASES = {"boto3", "botocore", "pynamodb", "dlib", "numpy", "PIL"}


@pytest.mark.parametrize("name", _REST_USECASES)
def test_rest_usecases_reach_ports_not_adapters_sdks_or_private_names(name: str) -> None:
    # Given one use-case module of the slice
    path = PACKAGE / "usecases" / f"{name}.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    # When its imports are read (lazy ones too)
    offenders: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules, names = [alias.name for alias in node.names], []
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules, names = [node.module], [alias.name for alias in node.names]
        else:
            continue
        for module in modules:
            if module.split(".")[0] in _NOT_IN_USECASES or module.startswith("quitclaim.adapters"):
                offenders.append(module)
            if module.startswith("quitclaim."):
                offenders += [f"{module}.{n}" for n in names if n.startswith("_")]
    # Then it names no adapter, no SDK or array library, and no other module's private name
    assert offenders == []


@pytest.mark.parametrize(
    "noun", ["webhooks", "rights", "forms", "person_requests", "consent_import", "retention"]
)
def test_rest_usecase_file_names_differ_from_their_domain_nouns(noun: str) -> None:
    # Given a domain module, which keeps the plain noun
    assert (PACKAGE / "domain" / f"{noun}.py").is_file()
    # Then no use-case repeats its file name: a path says its layer
    assert sorted(p.name for p in PACKAGE.rglob(f"{noun}.py") if "usecases" in p.parts) == []
