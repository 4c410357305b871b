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
    # devstack/ plays the Lambda platform (it sets each function's
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


# ---- devstack
# Production (the layer package and the handlers) and the template tooling stand apart from
# the local stack and the operator CLI, and no first-party module takes part in an import loop.

TOOLING = {"devstack", "cli"}
# Where each first-party top-level package lives: the layer package apart, the rest at the root.
PACKAGE_ROOTS = {
    "quitclaim": REPO_ROOT / "layers" / "core" / "python",
    "devstack": REPO_ROOT,
    "cli": REPO_ROOT,
    "infra": REPO_ROOT,
    "bench": REPO_ROOT,
}


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _first_party_modules() -> dict[str, Path]:
    modules = {}
    for package, root in PACKAGE_ROOTS.items():
        for path in _files(root / package):
            modules[_module_name(path, root)] = path
    return modules


def _type_checking_only(tree: ast.Module) -> set[int]:
    """Nodes under ``if TYPE_CHECKING:``: annotations, never run, so never a loop."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(sub) for sub in ast.walk(node))
    return skipped


def _imported_names(module: str, path: Path) -> set[str]:
    """Every name a module imports, at any depth (a function's import runs too), as dotted paths."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_only(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _import_graph() -> dict[str, set[str]]:
    """First-party module -> the first-party modules it imports (its own packages left out)."""
    modules = _first_party_modules()

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = {owner(name) for name in _imported_names(module, path)}
        # Importing a submodule runs its package's __init__ first: not an edge back.
        graph[module] = {t for t in targets if t and t != module and not module.startswith(f"{t}.")}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            successor = next(successors, None)
            if successor is not None:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                elif successor in on_stack:
                    low[node] = min(low[node], index[successor])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_loop() -> None:
    # Given a graph with one three-module loop and a tail, and one without
    looped = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    # Then the loop is found, and nothing in the acyclic one
    assert _cycles(looped) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_first_party_modules_import_in_no_loop() -> None:
    # Given every first-party module's imports, a function's own included
    graph = _import_graph()
    assert {"quitclaim.bootstrap", "devstack.stack", "cli.main", "infra.iam"} <= set(graph)
    assert "infra.template_source" in graph["devstack.stack"]
    # Then no module reaches itself again
    assert _cycles(graph) == []


def _imports_tooling(path: Path) -> bool:
    names = _imported_names(path.stem, path)
    return any(name.split(".")[0] in TOOLING for name in names)


@pytest.mark.parametrize(
    "path",
    _files(REPO_ROOT / "layers") + _files(REPO_ROOT / "functions") + _files(REPO_ROOT / "infra"),
    ids=lambda path: str(path.relative_to(REPO_ROOT)),
)
def test_production_and_infra_never_import_the_local_stack_or_the_cli(path: Path) -> None:
    assert not _imports_tooling(path)


def test_the_layer_package_holds_no_local_stack() -> None:
    assert not (PACKAGE / "local").exists()
    assert (REPO_ROOT / "devstack" / "stack.py").is_file()
    assert (REPO_ROOT / "cli" / "main.py").is_file()
