"""The rules every policy document in ``policies/`` follows, checked offline.

No wildcard actions, no ``*`` resource unless the API has no resource-level
permission, KMS only through a named service, ``iam:PassRole`` only to a named
service, unique Sids...; the exceptions and their reasons are in
``policies/lint-exceptions.yaml``. Documents are linted resolved (``infra.iam``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from infra.iam import (
    CONDITION_OPERATORS,
    POLICIES,
    FakeStack,
    as_list,
    fake_stack,
    load_document,
    policy_files,
    statements,
)

# Actions that have no resource-level permissions: "*" is the only resource.
RESOURCE_STAR_ONLY = frozenset(
    {
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        # AWS Marketplace metering has no resource types (the product code is a parameter).
        "aws-marketplace:BatchMeterUsage",
    }
)

# A rule broken by one statement: (rule, detail).
Broken = tuple[str, str]


@dataclass(frozen=True)
class Finding:
    file: str
    sid: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.file} [{self.sid}] {self.rule}: {self.detail}"


def lint_document(name: str, document: Mapping[str, Any]) -> list[Finding]:
    """Every rule a policy document here must follow; resolved documents only."""
    findings: list[Finding] = []
    if document.get("Version") != "2012-10-17":
        findings.append(
            Finding(name, "-", "version", "Version must be 2012-10-17 (policy variables need it)")
        )
    sids = [s.get("Sid", "") for s in statements(document)]
    for sid in {s for s in sids if sids.count(s) > 1 or not s}:
        findings.append(
            Finding(name, sid or "-", "sid", "every statement needs a unique, descriptive Sid")
        )
    kind = _kind(name)
    for statement in statements(document):
        sid = statement.get("Sid", "-")
        for rule, detail in _statement_rules(kind, statement):
            findings.append(Finding(name, sid, rule, detail))
    return findings


def _statement_rules(kind: str, statement: Mapping[str, Any]) -> Iterator[Broken]:
    effect = statement.get("Effect")
    if effect not in ("Allow", "Deny"):
        yield "effect", f"Effect {effect!r}"
    for forbidden in ("NotAction", "NotResource", "NotPrincipal"):
        if forbidden in statement:
            yield "negation", f"{forbidden} grants or denies more than it names"
    if effect == "Allow":
        yield from _allow_rules(kind, statement)
        if kind == "identity":
            yield from _service_rules(statement)
        elif kind == "key":
            yield from _service_rules(statement, kms=False)
    yield from _principal_rules(kind, statement)
    for operator in statement.get("Condition") or {}:
        if not CONDITION_OPERATORS.match(operator):
            yield "condition", f"unknown condition operator {operator}"


def _allow_rules(kind: str, statement: Mapping[str, Any]) -> Iterator[Broken]:
    """A Deny may be broad (deny every s3 action without TLS); an Allow may not."""
    actions = as_list(statement.get("Action"))
    for action in actions:
        if "*" in action or "?" in action:
            yield "wildcard-action", f"{action} (name each action)"
    resources = as_list(statement.get("Resource"))
    if "*" in resources and kind != "key" and not set(actions) <= RESOURCE_STAR_ONLY:
        yield "star-resource", f"{sorted(set(actions) - RESOURCE_STAR_ONLY)} on *"
    principal = statement.get("Principal")
    if principal == "*" or (isinstance(principal, dict) and "*" in as_list(principal.get("AWS"))):
        yield "public", "Allow to any principal"


def _service_rules(statement: Mapping[str, Any], *, kms: bool = True) -> Iterator[Broken]:
    """KMS and iam:PassRole only through, or to, a named service."""
    actions = as_list(statement.get("Action"))
    equals = (statement.get("Condition") or {}).get("StringEquals", {})
    if kms and any(a.startswith("kms:") for a in actions) and "kms:ViaService" not in equals:
        yield "kms-direct", "KMS use only through a named service (kms:ViaService)"
    if "iam:PassRole" in actions and "iam:PassedToService" not in equals:
        yield "passrole", "iam:PassRole only to a named service (iam:PassedToService)"


def _principal_rules(kind: str, statement: Mapping[str, Any]) -> Iterator[Broken]:
    if kind in ("bucket", "key") and "Principal" not in statement:
        yield "principal", "a resource policy statement needs a Principal"
    if kind == "identity" and "Principal" in statement:
        yield "principal", "an identity policy has no Principal"


def _kind(name: str) -> str:
    if name.startswith("buckets/"):
        return "bucket"
    if name == "kms-key.json":
        return "key"
    return "identity"


@dataclass(frozen=True)
class Exception_:
    file: str
    sid: str
    rule: str
    why: str


def lint_exceptions() -> list[Exception_]:
    raw = yaml.safe_load((POLICIES / "lint-exceptions.yaml").read_text(encoding="utf-8")) or []
    return [Exception_(e["file"], e["sid"], e["rule"], str(e.get("why", "")).strip()) for e in raw]


def lint_all(stack: FakeStack | None = None) -> tuple[list[Finding], list[Exception_]]:
    """(findings not excepted, exceptions that matched nothing) over every document."""
    stack = stack or fake_stack()
    exceptions = lint_exceptions()
    used: set[Exception_] = set()
    open_findings = []
    for path in policy_files():
        name = path.relative_to(POLICIES).as_posix()
        for finding in lint_document(name, stack.resolve(load_document(name))):
            match = [
                e
                for e in exceptions
                if (e.file, e.sid, e.rule) == (finding.file, finding.sid, finding.rule)
            ]
            if match and all(e.why for e in match):
                used.update(match)
            else:
                open_findings.append(finding)
    return open_findings, [e for e in exceptions if e not in used]
