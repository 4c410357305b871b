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


# ---- registry
# The officer's use-cases are one module per aggregate or service, and the API's
# views reach them through the composition root, not through a facade.
_REGISTRY_SLICE = [
    PACKAGE / "usecases" / name
    for name in (
        "ledger.py",
        "tenant_admin.py",
        "subject_admin.py",
        "consent_admin.py",
        "erasure.py",
        "compliance_registry.py",
        "admin_requests.py",
        "onboarding.py",
        "request_gate.py",
        "asset_listing.py",
        "monthly_bill.py",
        "keys.py",
        "offboarding.py",
        "plans.py",
        "authorizer.py",
    )
] + [
    PACKAGE / "api" / name
    for name in (
        "routing.py",
        "schemas.py",
        "field_types.py",
        "route_access.py",
        "policy_views.py",
        "form_views.py",
        "webhook_views.py",
    )
]


def test_no_use_case_module_repeats_a_domain_module_name() -> None:
    # Given the domain's module names
    domain = {p.name for p in (PACKAGE / "domain").glob("*.py")} - {"__init__.py"}
    # Then none of this slice is named like a domain module (one file name, one meaning)
    assert {p.name for p in _REGISTRY_SLICE} & domain == set()
    assert not (PACKAGE / "usecases" / "registry.py").exists()
    # And the console facade is gone: no view reaches use-cases through one object
    assert not (PACKAGE / "usecases" / "console.py").exists()


@pytest.mark.parametrize("path", _REGISTRY_SLICE, ids=lambda p: p.name)
def test_registry_slice_functions_are_at_most_60_lines(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    long = [
        (
            node.name,
            node.end_lineno - min([node.lineno, *(d.lineno for d in node.decorator_list)]) + 1,
        )
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno
    ]
    assert [(name, lines) for name, lines in long if lines > 60] == []


def test_the_router_hands_views_no_facade() -> None:
    # A view's Call and Signed carry the request only; the use-case comes from bootstrap.
    from quitclaim.api.routing import Call, Signed

    assert "console" not in Call.__dataclass_fields__
    assert "console" not in Signed.__dataclass_fields__
