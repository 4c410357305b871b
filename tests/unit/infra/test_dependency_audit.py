"""infra/dependency_audit.py: the offline advisory check, and this environment's result.

The online half (pip-audit against PyPI's JSON API) needs a network the test
machines lack; ``make audit`` tries it first. What runs here is the offline
snapshot, so ``make test`` reports a dependency audit on every run.
"""

from __future__ import annotations

from typing import Any

import pytest

from infra import dependency_audit as audit

ADVISORIES = {
    "Pillow": [
        {"cve": "CVE-A", "specs": ["<8.1.1"], "v": "<8.1.1"},
        {"id": "pyup.io-1", "specs": [">=9.0,<9.0.1", "<7.0"], "v": ">=9.0,<9.0.1,<7.0"},
    ],
    "urllib3": [{"cve": "CVE-B", "specs": [">=1.26.0,<1.26.4"], "v": ">=1.26.0,<1.26.4"}],
}


def test_an_installed_version_inside_an_advisory_range_is_found() -> None:
    # Given versions inside, at the edge of, and outside the advisories' ranges
    packages = {"pillow": "8.1.0", "urllib3": "1.26.4", "requests": "2.0.0"}
    # When they are audited
    findings = audit.audit_offline(packages, ADVISORIES)
    # Then only the affected one is reported, with its advisory
    assert [(f.package, f.version, f.advisory) for f in findings] == [("pillow", "8.1.0", "CVE-A")]


def test_each_range_of_an_advisory_counts_on_its_own() -> None:
    # Given an advisory naming two ranges, and versions in each and between them
    found = {
        version: audit.audit_offline({"pillow": version}, ADVISORIES)
        for version in ("6.2", "9.0.0", "8.5")
    }
    # Then both ranges catch theirs and the gap between them is clean
    assert [f.advisory for f in found["6.2"]] == ["CVE-A", "pyup.io-1"]
    assert [f.advisory for f in found["9.0.0"]] == ["pyup.io-1"]
    assert found["8.5"] == []


def test_the_snapshot_catches_a_release_with_a_published_advisory() -> None:
    # Given the real offline database and urllib3 1.26.0 (CVE-2021-28363, fixed in 1.26.4)
    snapshot, advisories = audit.offline_database()
    # When that version is audited
    findings = audit.audit_offline({"urllib3": "1.26.0"}, advisories)
    # Then the advisory is named
    assert "CVE-2021-28363" in {f.advisory for f in findings}
    assert snapshot


def test_this_environment_has_no_known_vulnerability(request: pytest.FixtureRequest) -> None:
    # When every installed package is audited against the offline snapshot
    report = audit.run(online=False, timeout_s=0)
    # Then every package was looked up and none is known to be vulnerable
    assert report is not None
    assert report.packages == len(audit.installed()) > 50
    reporter: Any = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("; ".join(report.lines()))
    assert report.findings == ()
