"""Deploy ``infra/template.yaml`` into the emulator, the way ``sam deploy`` would.

Steps: load the YAML (CloudFormation short tags included), check parameters
and ``Rules`` as CloudFormation does before it creates anything, inline the
``AWS::Include`` snippets (``sam package`` uploads them and CloudFormation
inlines them before the Serverless transform; neither moto nor
aws-sam-translator does), replace local ``CodeUri``/``ContentUri`` paths by a
placeholder zip in an artifacts bucket (``sam package``), translate with
aws-sam-translator offline, and create the stack through the emulator's
CloudFormation API.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.emulator import ACCOUNT_ID, Emulator, fake_session
from infra.template_source import (
    DeployError,
    Resolver,
    inline_includes,
    load_template,
    pseudo_parameters,
)

DEFAULT_REGION = "eu-central-1"

# Local artefact paths we know how to package (SAM type -> property).
_PACKAGED = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
}
# Local artefact paths a placeholder cannot stand in for: their content matters.
_UNPACKAGEABLE = {
    "AWS::Serverless::Api": "DefinitionUri",
    "AWS::Serverless::HttpApi": "DefinitionUri",
    "AWS::Serverless::StateMachine": "DefinitionUri",
    "AWS::Serverless::Application": "Location",
    "AWS::Serverless::GraphQLApi": "SchemaUri",
}
_CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]


class ParameterError(DeployError):
    """A parameter is unknown, missing or breaks its constraints."""


class RuleViolation(DeployError):
    """A template ``Rules`` assertion failed, e.g. a non-EU region."""

    def __init__(self, rule: str, description: str) -> None:
        super().__init__(f"template rule {rule} failed: {description}")
        self.rule = rule
        self.description = description


# ---------------------------------------------------------------- preflight


def resolve_parameters(
    template: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Template defaults plus overrides, validated as CloudFormation does.

    moto accepts any value (verified: Stage "BAD!!" and IngestBatchSize 99
    deploy), so we check names, presence and constraints ourselves.
    """
    declared: dict[str, Any] = template.get("Parameters") or {}
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise ParameterError(f"Parameters: {unknown} do not exist in the template")
    values: dict[str, Any] = {}
    missing = []
    for name, spec in declared.items():
        if name in overrides:
            raw = overrides[name]
        elif "Default" in spec:
            raw = spec["Default"]
        else:
            missing.append(name)
            continue
        values[name] = _check_parameter(name, spec, raw)
    if missing:
        raise ParameterError(f"Parameters: {missing} must have values")
    return values


def _check_parameter(name: str, spec: Mapping[str, Any], raw: Any) -> Any:
    kind = str(spec.get("Type", "String"))
    is_list = kind.startswith("List<") or kind == "CommaDelimitedList"
    if isinstance(raw, list | tuple):
        text = ",".join(str(v) for v in raw)
    elif isinstance(raw, bool):
        text = str(raw).lower()
    else:
        text = str(raw)
    items = [v.strip() for v in text.split(",")] if is_list else [text]
    for item in items:
        if "AllowedValues" in spec and item not in [str(v) for v in spec["AllowedValues"]]:
            raise ParameterError(
                f"Parameter '{name}' must be one of AllowedValues {spec['AllowedValues']}"
            )
        if "AllowedPattern" in spec and not re.fullmatch(str(spec["AllowedPattern"]), item):
            raise ParameterError(f"Parameter '{name}' must match pattern {spec['AllowedPattern']}")
        if "MinLength" in spec and len(item) < int(spec["MinLength"]):
            raise ParameterError(
                f"Parameter '{name}' must contain at least {spec['MinLength']} characters"
            )
        if "MaxLength" in spec and len(item) > int(spec["MaxLength"]):
            raise ParameterError(
                f"Parameter '{name}' must contain at most {spec['MaxLength']} characters"
            )
        if kind in ("Number", "List<Number>"):
            try:
                number = float(item)
            except ValueError:
                raise ParameterError(f"Parameter '{name}' must be a number") from None
            if "MinValue" in spec and number < float(spec["MinValue"]):
                raise ParameterError(
                    f"Parameter '{name}' must be a number not less than {spec['MinValue']}"
                )
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                raise ParameterError(
                    f"Parameter '{name}' must be a number not greater than {spec['MaxValue']}"
                )
    return items if is_list else text


def check_rules(
    template: Mapping[str, Any], parameters: Mapping[str, Any], pseudo: Mapping[str, str]
) -> None:
    """Evaluate ``Rules`` like CloudFormation; raise ``RuleViolation`` on the first failure.

    moto ignores Rules (verified: the template deploys to us-east-1 in moto).
    """
    resolver = Resolver(template, parameters, pseudo)
    for name, rule in (template.get("Rules") or {}).items():
        if "RuleCondition" in rule and not resolver.resolve(rule["RuleCondition"]):
            continue
        for assertion in rule.get("Assertions", []):
            if not resolver.resolve(assertion["Assert"]):
                description = assertion.get("AssertDescription", "assertion failed")
                raise RuleViolation(name, f"{description} (region {pseudo.get('AWS::Region')})")


def preflight(
    template: Mapping[str, Any],
    region: str,
    stack_name: str,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything CloudFormation refuses before creating a resource; the resolved parameters."""
    parameters = resolve_parameters(template, overrides)
    check_rules(template, parameters, pseudo_parameters(region, stack_name, ACCOUNT_ID))
    return parameters


# ---------------------------------------------------------------- packaging


def placeholder_zip(source: str) -> bytes:
    """A tiny valid zip standing in for code the local runtime imports from the tree."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        # A fixed timestamp keeps the bytes (and CodeSha256) reproducible.
        info = zipfile.ZipInfo("PLACEHOLDER.txt", date_time=(2020, 1, 1, 0, 0, 0))
        archive.writestr(
            info,
            f"Placeholder for {source}. The quitclaim local runtime imports this code "
            "from the working tree; this archive is never executed.\n",
        )
    return buffer.getvalue()


def _is_local_path(value: Any) -> bool:
    return isinstance(value, str) and not value.startswith("s3://")


def package(
    template: Mapping[str, Any], upload: Callable[[str, bytes], tuple[str, str]]
) -> dict[str, Any]:
    """A copy of the template whose local artefact paths point at placeholder S3 objects.

    ``upload(key, data)`` stores an object and returns ``(bucket, key)``.
    """
    packaged = copy.deepcopy(dict(template))
    targets: list[tuple[str, dict[str, Any], str]] = []
    function_globals = (packaged.get("Globals") or {}).get("Function") or {}
    if _is_local_path(function_globals.get("CodeUri")):
        targets.append(("Globals", function_globals, "CodeUri"))
    for logical_id, resource in packaged["Resources"].items():
        kind = resource.get("Type")
        properties = resource.get("Properties") or {}
        if kind in _UNPACKAGEABLE and _is_local_path(properties.get(_UNPACKAGEABLE[kind])):
            raise DeployError(
                f"{logical_id}: a local {_UNPACKAGEABLE[kind]} is not supported by the local "
                "stack (a placeholder cannot stand in for its content); inline it"
            )
        prop = _PACKAGED.get(kind or "")
        if prop and _is_local_path(properties.get(prop)):
            targets.append((logical_id, properties, prop))
    for logical_id, properties, prop in targets:
        bucket, key = upload(f"local/{logical_id}.zip", placeholder_zip(properties[prop]))
        properties[prop] = {"Bucket": bucket, "Key": key}
    return packaged


# ---------------------------------------------------------------- translation


def translate(
    template: Mapping[str, Any], parameters: Mapping[str, Any], region: str
) -> dict[str, Any]:
    """SAM -> CloudFormation with aws-sam-translator, without calling AWS.

    ``transform()`` finds the region only through the environment; building
    the ``Translator`` with an explicit offline session does the same work
    without touching ``os.environ`` or the caller's AWS profile.
    """
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator
    from samtranslator.utils.py27hash_fix import (
        to_py27_compatible_template,
        undo_mark_unicode_str_in_template,
    )

    sam_template = copy.deepcopy(dict(template))
    values = dict(parameters)
    to_py27_compatible_template(sam_template, values)
    translator = Translator(None, Parser(), boto_session=fake_session(region))
    translated = translator.translate(
        sam_template,
        parameter_values=values,
        # SAM bundles the AWS managed policy map; names outside it stay as
        # given instead of being looked up in IAM (which would need AWS).
        get_managed_policy_map=dict,
    )
    # Its metrics only go to a dummy publisher; publishing avoids a warning at exit.
    translator.metrics.publish()
    result: dict[str, Any] = undo_mark_unicode_str_in_template(translated)
    return result


# ---------------------------------------------------------------- deployment


@dataclass
class Deployment:
    """A stack created in the emulator, and what it takes to reason about it."""

    stack_name: str
    stack_id: str
    region: str
    account_id: str
    template_path: Path
    template: dict[str, Any]  # the original SAM template, as loaded
    translated: dict[str, Any]  # what CloudFormation received
    parameters: dict[str, Any]
    outputs: dict[str, str]
    resources: dict[str, str]  # logical id -> physical id
    resource_types: dict[str, str]  # logical id -> type, as the stack reports them
    artifacts_bucket: str
    client: Callable[[str], Any] = field(repr=False)
    _attributes: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    @property
    def template_dir(self) -> Path:
        return self.template_path.parent

    def resolver(self) -> Resolver:
        return Resolver(
            self.translated,
            self.parameters,
            pseudo_parameters(self.region, self.stack_name, self.account_id),
            ref=self.physical_id,
            get_att=self.attribute,
        )

    def resolve(self, value: Any) -> Any:
        """Evaluate intrinsics against the deployed stack."""
        return self.resolver().resolve(value)

    def physical_id(self, logical_id: str) -> str:
        try:
            return self.resources[logical_id]
        except KeyError:
            raise DeployError(f"{logical_id} was not created in the emulator") from None

    def attribute(self, logical_id: str, attribute: str) -> Any:
        """``Fn::GetAtt`` for the resource types the local stack wires together."""
        key = (logical_id, attribute)
        if key not in self._attributes:
            self._attributes[key] = self._fetch_attribute(logical_id, attribute)
        return self._attributes[key]

    def _fetch_attribute(self, logical_id: str, attribute: str) -> Any:
        kind = self.resource_types.get(logical_id) or self.translated["Resources"].get(
            logical_id, {}
        ).get("Type")
        physical = self.physical_id(logical_id)
        if kind == "AWS::SQS::Queue":
            arn = self.client("sqs").get_queue_attributes(
                QueueUrl=physical, AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"]
            values = {"Arn": arn, "QueueName": arn.rsplit(":", 1)[1], "QueueUrl": physical}
        elif kind == "AWS::S3::Bucket":
            values = {
                "Arn": f"arn:aws:s3:::{physical}",
                "DomainName": f"{physical}.s3.amazonaws.com",
                "RegionalDomainName": f"{physical}.s3.{self.region}.amazonaws.com",
            }
        elif kind == "AWS::DynamoDB::Table":
            table = self.client("dynamodb").describe_table(TableName=physical)["Table"]
            values = {"Arn": table["TableArn"], "StreamArn": table.get("LatestStreamArn")}
        elif kind == "AWS::Lambda::Function":
            config = self.client("lambda").get_function_configuration(FunctionName=physical)
            values = {"Arn": config["FunctionArn"]}
        elif kind == "AWS::IAM::Role":
            role = self.client("iam").get_role(RoleName=physical)["Role"]
            values = {"Arn": role["Arn"], "RoleId": role["RoleId"]}
        elif kind == "AWS::KMS::Key":
            key = self.client("kms").describe_key(KeyId=physical)["KeyMetadata"]
            values = {"Arn": key["Arn"], "KeyId": key["KeyId"]}
        elif kind == "AWS::SNS::Topic":
            values = {"TopicArn": physical, "TopicName": physical.rsplit(":", 1)[1]}
        else:
            values = {}
        if values.get(attribute) is None:
            raise DeployError(f"GetAtt {logical_id}.{attribute} ({kind}) is not supported locally")
        return values[attribute]


def deploy(
    emulator: Emulator,
    template_path: str | Path,
    *,
    stack_name: str = "quitclaim-local",
    region: str = DEFAULT_REGION,
    parameters: Mapping[str, Any] | None = None,
    template: dict[str, Any] | None = None,
    timeout_s: float = 60.0,
) -> Deployment:
    """Package, translate and create the stack in a running emulator."""
    template_path = Path(template_path).resolve()
    if template is None:
        template = load_template(template_path)
    template = inline_includes(template, template_path.parent)
    values = preflight(template, region, stack_name, parameters)

    def client(service: str) -> Any:
        return emulator.client(service, region)

    cloudformation = client("cloudformation")
    if _stack_exists(cloudformation, stack_name):
        raise DeployError(
            f"a stack named {stack_name!r} already exists in this process's emulator; "
            "give each local stack its own stack_name (and Stage, for bucket names)"
        )
    bucket, upload = _artifacts(client("s3"), region, stack_name)
    translated = translate(package(template, upload), values, region)
    stack_id = cloudformation.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(translated),
        Parameters=_stack_parameters(values),
        Capabilities=_CAPABILITIES,
    )["StackId"]
    stack = _wait_for_stack(cloudformation, stack_name, timeout_s)
    summaries = _stack_resources(cloudformation, stack_name)
    return Deployment(
        stack_name=stack_name,
        stack_id=stack_id,
        region=region,
        account_id=ACCOUNT_ID,
        template_path=template_path,
        template=template,
        translated=translated,
        parameters=values,
        outputs={o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
        resources={
            s["LogicalResourceId"]: s["PhysicalResourceId"]
            for s in summaries
            if s.get("LogicalResourceId") and s.get("PhysicalResourceId")
        },
        resource_types={
            s["LogicalResourceId"]: s["ResourceType"]
            for s in summaries
            if s.get("LogicalResourceId")
        },
        artifacts_bucket=bucket,
        client=client,
    )


def _stack_parameters(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """CreateStack's parameters; a list value (CommaDelimitedList) joined as it was given."""
    return [
        {"ParameterKey": k, "ParameterValue": ",".join(v) if isinstance(v, list) else v}
        for k, v in values.items()
    ]


def _artifacts(
    s3: Any, region: str, stack_name: str
) -> tuple[str, Callable[[str, bytes], tuple[str, str]]]:
    """The artifacts bucket (one per region, shared by the stacks) and an upload into it."""
    bucket = f"quitclaim-local-artifacts-{ACCOUNT_ID}-{region}"
    create: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        create["CreateBucketConfiguration"] = {"LocationConstraint": region}
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(**create)

    def upload(key: str, data: bytes) -> tuple[str, str]:
        s3.put_object(Bucket=bucket, Key=f"{stack_name}/{key}", Body=data)
        return bucket, f"{stack_name}/{key}"

    return bucket, upload


def _wait_for_stack(cloudformation: Any, stack_name: str, timeout_s: float) -> dict[str, Any]:
    # Poll briefly ourselves: boto's waiter sleeps whole seconds, and the
    # emulator usually finishes inside create_stack already.
    deadline = time.monotonic() + timeout_s
    while True:
        stack: dict[str, Any] = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        status = stack["StackStatus"]
        if status == "CREATE_COMPLETE":
            return stack
        if not status.endswith("_IN_PROGRESS"):
            events = cloudformation.describe_stack_events(StackName=stack_name)["StackEvents"]
            reasons = [
                f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
                for e in events
                if e.get("ResourceStatusReason")
            ]
            raise DeployError(f"stack {stack_name} ended in {status}: {'; '.join(reasons)}")
        if time.monotonic() > deadline:
            raise DeployError(f"stack {stack_name} still {status} after {timeout_s:.0f}s")
        time.sleep(0.05)


def _stack_exists(cloudformation: Any, stack_name: str) -> bool:
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except cloudformation.exceptions.ClientError as exc:
        if "does not exist" in str(exc):
            return False
        raise
    return any(stack["StackStatus"] != "DELETE_COMPLETE" for stack in stacks)


def _stack_resources(cloudformation: Any, stack_name: str) -> list[dict[str, Any]]:
    summaries: list[dict[str, Any]] = []
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        summaries.extend(page["StackResourceSummaries"])
    return summaries
