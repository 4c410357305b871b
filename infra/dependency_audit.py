"""``make audit``: known vulnerabilities in the installed packages, reported.

Two sources, in order:

1. pip-audit, which asks PyPI's JSON API (or OSV) per package and version. Where
   that answers for every package, its verdict stands.
2. Where it does not (the development machines and CI reach only the package
   index: the per-version JSON API answers 404 and OSV does not resolve), the
   offline advisory database of the ``safety-db`` package: PyUp's free list, a
   dated snapshot. The report prints that date, because a snapshot misses every
   advisory published after it; it is a floor, not a clean bill of health.

Exit status: 0 nothing known, 1 a known vulnerability, 2 no source could be read.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

# The project itself is editable and not on PyPI; it has no advisories to find.
SKIPPED = frozenset({"quitclaim"})


@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    advisory: str  # the advisory's id (PyUp, CVE or PYSEC)
    affected: str  # the version range it names


@dataclass(frozen=True)
class Report:
    source: str  # what answered: "pip-audit" or "safety-db <date>"
    packages: int
    findings: tuple[Finding, ...]

    def lines(self) -> list[str]:
        head = f"dependency audit: {self.packages} packages checked against {self.source}"
        if not self.findings:
            return [head, "no known vulnerabilities"]
        return [head] + [
            f"VULNERABLE {f.package} {f.version}: {f.advisory} (affects {f.affected})"
            for f in self.findings
        ]


def installed() -> dict[str, str]:
    """Every installed distribution of this interpreter: canonical name -> version."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.name
        if name and canonicalize_name(name) not in SKIPPED:
            found[canonicalize_name(name)] = dist.version
    return found


def offline_database() -> tuple[str, Mapping[str, Any]]:
    """``(snapshot date, advisories by package)`` of the installed ``safety-db``."""
    dist = metadata.distribution("safety-db")
    # Read beside the package, not imported: its __init__ opens "data/insecure.json"
    # relative to the working directory and fails anywhere else.
    data = dist.locate_file("safety_db/insecure_full.json")
    advisories = json.loads(Path(str(data)).read_text(encoding="utf-8"))
    return dist.version, advisories


def audit_offline(
    packages: Mapping[str, str], advisories: Mapping[str, Sequence[Mapping[str, Any]]]
) -> list[Finding]:
    """The advisories whose version range holds an installed version."""
    by_name: dict[str, Sequence[Mapping[str, Any]]] = {
        canonicalize_name(name): entries for name, entries in advisories.items()
    }
    findings: list[Finding] = []
    for name, raw_version in sorted(packages.items()):
        try:
            version = Version(raw_version)
        except InvalidVersion:
            continue
        for entry in by_name.get(name, []):
            ranges = [str(r) for r in entry.get("specs") or [entry.get("v", "")]]
            if _affects(ranges, version):
                affected = " | ".join(ranges)
                advisory = str(entry.get("cve") or entry.get("id") or "unnamed advisory")
                findings.append(Finding(name, raw_version, advisory, affected))
    return findings


def _affects(ranges: Sequence[str], version: Version) -> bool:
    # Each range is one specifier set (">=1.25.2,<=1.25.7"); any holding the version counts.
    for spec in ranges:
        try:
            if version in SpecifierSet(spec, prereleases=True):
                return True
        except InvalidSpecifier:
            continue
    return False


def audit_online(timeout_s: float) -> Report | None:
    """pip-audit's verdict, or None when it could not look every package up."""
    command = [sys.executable, "-m", "pip_audit", "--skip-editable", "--format", "json"]
    command += ["--progress-spinner", "off"]
    try:
        # Our own interpreter and fixed arguments: nothing from outside reaches the command.
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)  # noqa: S603
        answer = json.loads(done.stdout)
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError):
        return None
    deps = answer.get("dependencies", []) if isinstance(answer, dict) else []
    if not deps or any("skip_reason" in dep for dep in deps):
        return None  # looked nothing (or not everything) up: its silence means nothing
    findings = tuple(
        Finding(dep["name"], dep["version"], vuln["id"], ", ".join(vuln.get("fix_versions", [])))
        for dep in deps
        for vuln in dep.get("vulns", [])
    )
    return Report("pip-audit (PyPI JSON API)", len(deps), findings)


def run(*, online: bool, timeout_s: float) -> Report | None:
    """The online verdict where it is complete, else the offline database's."""
    if online and (report := audit_online(timeout_s)) is not None:
        return report
    try:
        snapshot, advisories = offline_database()
    except (ModuleNotFoundError, FileNotFoundError, metadata.PackageNotFoundError):
        return None
    packages = installed()
    findings = tuple(audit_offline(packages, advisories))
    return Report(f"safety-db {snapshot} (offline snapshot)", len(packages), findings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python infra/dependency_audit.py")
    parser.add_argument("--offline", action="store_true", help="skip pip-audit")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = run(online=not args.offline, timeout_s=args.timeout)
    if report is None:
        print("dependency audit: no advisory source could be read", file=sys.stderr)
        return 2
    if args.json:
        print(
            json.dumps(
                {
                    "source": report.source,
                    "packages": report.packages,
                    "findings": [f.__dict__ for f in report.findings],
                },
                indent=2,
            )
        )
    else:
        print("\n".join(report.lines()))
    return 1 if report.findings else 0


if __name__ == "__main__":
    raise SystemExit(main())
