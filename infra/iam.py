"""Offline IAM tooling for policies/: resolve, lint, evaluate, compare with the declared calls.

Nothing here calls AWS. The documents in ``policies/`` carry CloudFormation
intrinsics (``Fn::Sub``, ``Fn::GetAtt``, ``Ref``); ``resolve`` evaluates them
against a made-up stack (``FAKE_STACK``) with the local stack's resolver, so
every check below runs on concrete ARNs.

- ``lint`` (``infra.policy_lint``): the rules every document follows, with the
  exceptions and their reasons in ``policies/lint-exceptions.yaml``.
- ``evaluate``: AWS's policy evaluation for one request, as far as these
  documents need it: explicit deny wins; an allow in the identity policy or
  the resource policy (same account) grants; for KMS the key policy must
  allow the principal, or allow the account and leave it to IAM. Conditions:
  String/Arn/Numeric/Bool/Null operators, ``...IfExists``, policy variables.
  An operator it does not know raises (never a silent "no match").
- ``implied_permissions``: what the calls in ``policies/calls.yaml`` need.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.template_source import Resolver, load_template, pseudo_parameters

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "policies"
TEMPLATE = ROOT / "infra" / "template.yaml"

REGION = "eu-central-1"
ACCOUNT = "111122223333"
STAGE = "prod"
PARTITION = "aws"

# ---------------------------------------------------------------- resolving


def _fake_physical(template: Mapping[str, Any]) -> dict[str, tuple[str, dict[str, str]]]:
    """logical id -> (Ref value, attributes) for the template's resources, made up."""
    values: dict[str, tuple[str, dict[str, str]]] = {}
    prefix = f"arn:{PARTITION}"
    for logical_id, resource in template["Resources"].items():
        kind = resource.get("Type", "")
        name = f"quitclaim-{STAGE}-{logical_id}"
        if kind == "AWS::S3::Bucket":
            bucket = str(resource.get("Properties", {}).get("BucketName", name))
            bucket = bucket if "${" not in bucket else _bucket_name(logical_id)
            values[logical_id] = (bucket, {"Arn": f"{prefix}:s3:::{bucket}"})
        elif kind == "AWS::DynamoDB::Table":
            arn = f"{prefix}:dynamodb:{REGION}:{ACCOUNT}:table/{name}"
            values[logical_id] = (name, {"Arn": arn, "StreamArn": f"{arn}/stream/2026-01-01"})
        elif kind == "AWS::SQS::Queue":
            arn = f"{prefix}:sqs:{REGION}:{ACCOUNT}:{name}"
            url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
            values[logical_id] = (url, {"Arn": arn, "QueueName": name})
        elif kind == "AWS::KMS::Key":
            key_id = "0b5e9e1c-1111-2222-3333-444455556666"
            arn = f"{prefix}:kms:{REGION}:{ACCOUNT}:key/{key_id}"
            values[logical_id] = (key_id, {"Arn": arn, "KeyId": key_id})
        elif kind == "AWS::IAM::Role":
            arn = f"{prefix}:iam::{ACCOUNT}:role/{name}"
            values[logical_id] = (name, {"Arn": arn, "RoleId": "AROAFAKE"})
        else:
            values[logical_id] = (name, {"Arn": f"{prefix}:fake:{REGION}:{ACCOUNT}:{name}"})
    return values


def _bucket_name(logical_id: str) -> str:
    """The template's bucket naming, quitclaim-<Stage>-<purpose>-<account>."""
    purpose = re.sub(r"(?<!^)(?=[A-Z])", "-", logical_id.removesuffix("Bucket")).lower()
    return f"quitclaim-{STAGE}-{purpose}-{ACCOUNT}"


@dataclass
class FakeStack:
    """The template deployed nowhere: a resolver with made-up physical ids."""

    template: dict[str, Any]
    parameters: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        defaults = {
            name: spec.get("Default")
            for name, spec in (self.template.get("Parameters") or {}).items()
        }
        self.parameters = {**defaults, "Stage": STAGE, **self.parameters}
        self._physical = _fake_physical(self.template)
        pseudo = pseudo_parameters(REGION, f"quitclaim-{STAGE}", ACCOUNT)
        # Resolve BucketName etc. first (they use only parameters).
        plain = Resolver(self.template, self.parameters, pseudo)
        for logical_id, resource in self.template["Resources"].items():
            if resource.get("Type") == "AWS::S3::Bucket":
                name = plain.resolve(resource.get("Properties", {}).get("BucketName"))
                if isinstance(name, str):
                    self._physical[logical_id] = (name, {"Arn": f"arn:{PARTITION}:s3:::{name}"})
        self._resolver = Resolver(
            self.template,
            self.parameters,
            pseudo,
            ref=lambda logical: self._physical[logical][0],
            get_att=lambda logical, attribute: self._physical[logical][1][attribute],
        )

    def resolve(self, value: Any) -> Any:
        return self._resolver.resolve(value)

    def ref(self, logical_id: str) -> str:
        return self._physical[logical_id][0]

    def arn(self, logical_id: str) -> str:
        return self._physical[logical_id][1]["Arn"]


def load_document(relative: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((POLICIES / relative).read_text(encoding="utf-8"))
    return data


def policy_files() -> list[Path]:
    return sorted(POLICIES.rglob("*.json"))


def fake_stack() -> FakeStack:
    return FakeStack(load_template(TEMPLATE))


def statements(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    raw = document.get("Statement", [])
    return list(raw) if isinstance(raw, list) else [raw]


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


# Condition operators these documents may use (the linter and the evaluator know these).
CONDITION_OPERATORS = re.compile(
    r"^(ForAnyValue:|ForAllValues:)?"
    r"(StringEquals|StringNotEquals|StringEqualsIgnoreCase|StringNotEqualsIgnoreCase|"
    r"StringLike|StringNotLike|ArnEquals|ArnNotEquals|ArnLike|ArnNotLike|Bool|Null|"
    r"NumericEquals|NumericNotEquals|NumericLessThan|NumericLessThanEquals|"
    r"NumericGreaterThan|NumericGreaterThanEquals)(IfExists)?$"
)


# ---------------------------------------------------------------- evaluation


@dataclass
class Principal:
    """Who asks: an IAM role of this account (with tags) or an AWS service."""

    arn: str = ""
    account: str = ACCOUNT
    tags: dict[str, str] = field(default_factory=dict)
    service: str | None = None


@dataclass
class Request:
    principal: Principal
    action: str
    resource: str
    context: dict[str, Any] = field(default_factory=dict)

    def keys(self) -> dict[str, Any]:
        """The request context: given keys plus the principal's."""
        context = {k.lower(): v for k, v in self.context.items()}
        context.setdefault("aws:securetransport", "true")
        if self.principal.service is None:
            context.setdefault("aws:principalarn", self.principal.arn)
            context.setdefault("aws:principalaccount", self.principal.account)
            for tag, value in self.principal.tags.items():
                context.setdefault(f"aws:principaltag/{tag}".lower(), value)
        return context


class Unsupported(ValueError):
    """The evaluator met something it does not model: fail, never guess."""


def _substitute(text: str, context: Mapping[str, Any]) -> str | None:
    """Policy variables (${aws:PrincipalTag/x}); None when one is missing."""
    missing = False

    def replace(match: re.Match[str]) -> str:
        nonlocal missing
        name = match.group(1)
        if name in ("*", "?", "$"):
            return name
        value = context.get(name.lower())
        if value is None:
            missing = True
            return ""
        return str(value)

    result = re.sub(r"\$\{([^}]+)\}", replace, text)
    return None if missing else result


def _glob(pattern: str, value: str, *, case: bool = True) -> bool:
    if not case:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern)


def _arn_like(pattern: str, value: str) -> bool:
    """ArnLike: wildcards within each of the six colon-separated parts."""
    parts, values = pattern.split(":", 5), value.split(":", 5)
    if len(parts) != 6 or len(values) != 6:
        return False
    return all(_glob(p, v) for p, v in zip(parts, values, strict=True))


def _matches_action(patterns: Iterable[str], action: str) -> bool:
    return any(_glob(p, action, case=False) for p in patterns)


def _matches_resource(patterns: Iterable[str], resource: str, context: Mapping[str, Any]) -> bool:
    for pattern in patterns:
        concrete = _substitute(pattern, context)
        if concrete is not None and _glob(concrete, resource):
            return True
    return False


def _condition_holds(conditions: Mapping[str, Any], context: Mapping[str, Any]) -> bool:
    for operator, block in conditions.items():
        match = CONDITION_OPERATORS.match(operator)
        if not match or match.group(1):
            raise Unsupported(f"condition operator {operator}")
        base, if_exists = match.group(2), bool(match.group(3))
        for key, expected in block.items():
            present = key.lower() in context
            actual = context.get(key.lower())
            wanted = [str(v) for v in as_list(expected)]
            if base == "Null":
                if (wanted[0].lower() == "true") != (not present):
                    return False
                continue
            negated = "Not" in base
            if not present:
                # A missing key: IfExists and negated operators hold, the rest fail.
                if if_exists or negated:
                    continue
                return False
            if not _compare(base, actual, wanted, context):
                return False
    return True


def _compare(base: str, actual: Any, wanted: list[str], context: Mapping[str, Any]) -> bool:
    values = [str(v) for v in as_list(actual)]
    patterns = [p for p in (_substitute(w, context) for w in wanted) if p is not None]
    positive = base.replace("Not", "")
    if positive == "StringEquals":
        hit = any(v == p for v in values for p in patterns)
    elif positive == "StringEqualsIgnoreCase":
        hit = any(v.lower() == p.lower() for v in values for p in patterns)
    elif positive == "StringLike":
        hit = any(_glob(p, v) for v in values for p in patterns)
    elif positive in ("ArnEquals", "ArnLike"):
        hit = any(_arn_like(p, v) for v in values for p in patterns)
    elif positive == "Bool":
        hit = any(v.lower() == p.lower() for v in values for p in patterns)
    elif positive.startswith("Numeric"):
        number = float(values[0])
        limits = [float(p) for p in patterns]
        op = positive.removeprefix("Numeric")
        checks = {
            "Equals": lambda a, b: a == b,
            "LessThan": lambda a, b: a < b,
            "LessThanEquals": lambda a, b: a <= b,
            "GreaterThan": lambda a, b: a > b,
            "GreaterThanEquals": lambda a, b: a >= b,
        }
        hit = any(checks[op](number, limit) for limit in limits)
    else:
        raise Unsupported(f"condition operator {base}")
    return not hit if "Not" in base else hit


def _principal_matches(statement: Mapping[str, Any], principal: Principal) -> bool:
    spec = statement.get("Principal")
    if spec == "*":
        return True
    if not isinstance(spec, dict):
        raise Unsupported(f"Principal {spec!r}")
    if principal.service is not None:
        return principal.service in as_list(spec.get("Service"))
    root = f"arn:{PARTITION}:iam::{principal.account}:root"
    for aws in as_list(spec.get("AWS")):
        # The account (root) as principal delegates to IAM: it matches only
        # the account itself here; evaluate() then asks the identity policies.
        if aws in ("*", principal.arn) or (principal.arn == root and aws == principal.account):
            return True
    return False


def _statement_applies(
    statement: Mapping[str, Any], request: Request, context: Mapping[str, Any], *, resource: bool
) -> bool:
    if resource and not _principal_matches(statement, request.principal):
        return False
    if not _matches_action(as_list(statement.get("Action")), request.action):
        return False
    if not _matches_resource(as_list(statement.get("Resource")), request.resource, context):
        return False
    return _condition_holds(statement.get("Condition") or {}, context)


def _effects(
    documents: Iterable[Mapping[str, Any]], request: Request, *, resource: bool
) -> set[str]:
    context = request.keys()
    return {
        statement["Effect"]
        for document in documents
        for statement in statements(document)
        if _statement_applies(statement, request, context, resource=resource)
    }


def evaluate(
    request: Request,
    identity: Iterable[Mapping[str, Any]] = (),
    resource_policy: Mapping[str, Any] | None = None,
    key_policy: Mapping[str, Any] | None = None,
) -> str:
    """``"Allow"``, ``"Deny"`` (explicit) or ``"ImplicitDeny"`` for one same-account request."""
    identity = list(identity)
    on_identity = _effects(identity, request, resource=False)
    on_resource = _effects([resource_policy], request, resource=True) if resource_policy else set()
    if "Deny" in on_identity or "Deny" in on_resource:
        return "Deny"
    if key_policy is not None:
        # KMS: nothing is allowed unless the key policy says so, directly or
        # by allowing the account (root), which lets IAM policies decide.
        on_key = _effects([key_policy], request, resource=True)
        if "Deny" in on_key:
            return "Deny"
        root = Request(
            Principal(arn=f"arn:{PARTITION}:iam::{request.principal.account}:root"),
            request.action,
            request.resource,
            request.context,
        )
        delegated = "Allow" in _effects([key_policy], root, resource=True)
        direct = "Allow" in on_key
        return "Allow" if direct or (delegated and "Allow" in on_identity) else "ImplicitDeny"
    if "Allow" in on_identity or "Allow" in on_resource:
        return "Allow"
    return "ImplicitDeny"


# ---------------------------------------------------------------- declared calls


@dataclass(frozen=True)
class Call:
    operation: str  # service:Operation
    version: bool
    resource: str
    target: str | None


def parse_call(line: str) -> Call:
    parts = line.split()
    operation, versioned = parts[0].removesuffix("+version"), parts[0].endswith("+version")
    target = parts[3] if len(parts) == 4 and parts[2] == "->" else None
    if len(parts) not in (2, 4) or (len(parts) == 4 and target is None):
        raise ValueError(f"cannot read call {line!r}")
    return Call(operation, versioned, parts[1], target)


def declared_calls() -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = yaml.safe_load(
        (POLICIES / "calls.yaml").read_text(encoding="utf-8")
    )
    return data


def _bucket_of(object_arn: str) -> str:
    return object_arn.split("/", 1)[0]


def _s3_kms(bucket_arn: str, action: str) -> tuple[str, str]:
    return (action, "${DataKey.Arn}")


def implied_permissions(function: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(IAM action, resource) pairs the declared calls of one function need (unresolved)."""
    name = function["name"]
    implied: set[tuple[str, str]] = {
        (
            "logs:CreateLogStream",
            "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
            f"/aws/lambda/quitclaim-${{Stage}}-{name}:*",
        ),
        ("xray:PutTraceSegments", "*"),
        ("xray:PutTelemetryRecords", "*"),
    }
    implied.add(("logs:PutLogEvents", next(r for a, r in implied if a == "logs:CreateLogStream")))
    for line in function["calls"]:
        call = parse_call(line)
        service, operation = call.operation.split(":", 1)
        if service == "esm":
            actions = {
                "sqs": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
                "dynamodb-stream": [
                    "dynamodb:DescribeStream",
                    "dynamodb:GetRecords",
                    "dynamodb:GetShardIterator",
                    "dynamodb:ListStreams",
                ],
            }[operation]
            implied |= {(a, call.resource) for a in actions}
        elif service == "destination":
            implied.add(("sqs:SendMessage", call.resource))
        elif service == "s3":
            implied |= _s3_permissions(operation, call)
        elif service == "dynamodb":
            implied.add((call.operation, call.resource))
            implied.add(("kms:Decrypt", "${DataKey.Arn}"))
            implied.add(("kms:DescribeKey", "${DataKey.Arn}"))
        elif service == "secretsmanager":
            implied.add((call.operation, call.resource))
            implied.add(("kms:Decrypt", "${DataKey.Arn}"))
        elif service == "ssm":
            # SecureString parameters of the standard tier: SSM calls KMS directly.
            implied.add((call.operation, call.resource))
            if operation == "GetParameter":
                implied.add(("kms:Decrypt", "${DataKey.Arn}"))
            elif operation == "PutParameter":
                implied.add(("kms:Encrypt", "${DataKey.Arn}"))
        else:
            implied.add((call.operation, call.resource))
    return implied


def _s3_permissions(operation: str, call: Call) -> set[tuple[str, str]]:
    suffix = "Version" if call.version else ""
    read = f"s3:GetObject{suffix}"
    if operation == "HeadObject":
        return {(read, call.resource), ("s3:ListBucket", _bucket_of(call.resource))}
    if operation == "GetObject":
        return {(read, call.resource), _s3_kms(call.resource, "kms:Decrypt")}
    if operation == "PutObject":
        return {("s3:PutObject", call.resource), _s3_kms(call.resource, "kms:GenerateDataKey")}
    if operation == "DeleteObject":
        return {(f"s3:DeleteObject{suffix}", call.resource)}
    if operation in ("PutObjectTagging", "GetObjectTagging"):
        # The current version's tags (no VersionId: not the *VersionTagging actions).
        return {(f"s3:{operation}", call.resource)}
    if operation == "ListObjectVersions":
        return {("s3:ListBucketVersions", _bucket_of(call.resource))}
    if operation == "CopyObject" and call.target:
        return {
            (read, call.resource),
            (f"s3:GetObject{suffix}Tagging", call.resource),
            ("s3:PutObject", call.target),
            ("s3:PutObjectTagging", call.target),
            _s3_kms(call.resource, "kms:Decrypt"),
            _s3_kms(call.target, "kms:GenerateDataKey"),
        }
    raise ValueError(f"no IAM mapping for s3:{operation}")


def granted_permissions(document: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(action, resource) pairs an identity policy allows (resolved or not)."""
    return {
        (action, json.dumps(resource) if not isinstance(resource, str) else resource)
        for statement in statements(document)
        if statement.get("Effect") == "Allow"
        for action in as_list(statement.get("Action"))
        for resource in as_list(statement.get("Resource"))
    }


def resolve_pairs(stack: FakeStack, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Evaluate each pair's resource (``${...}`` text or intrinsic JSON) on the fake stack."""
    resolved = set()
    for action, resource in pairs:
        value: Any = json.loads(resource) if resource.startswith("{") else {"Fn::Sub": resource}
        resolved.add((action, str(stack.resolve(value))))
    return resolved
