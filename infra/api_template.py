"""Build the deployable template: ``chalice package --merge-template infra/template.yaml``.

    python -m infra.api_template            # -> build/api/sam.yaml + deployment.zip
    python -m infra.api_template --local    # + sam.local.yaml (see local_variant)

Chalice generates the API half (``APIHandler`` function, ``RestAPI`` with its
Swagger definition, the invoke permission, the role from
``functions/api/.chalice/policy-prod.json``, the ``EndpointURL`` output) and
deep-merges ``infra/template.yaml`` into it. Nothing about API Gateway is
written by hand. The role's policy is ``policies/functions/api.json``
(``iam_policy_file`` in ``.chalice/config.json``). The fix-ups follow, each
because Chalice cannot be told:

- Chalice sets ``Runtime`` from the interpreter that packages (3.11 here);
  it is removed so ``Globals.Function.Runtime`` applies, as for every
  other function;
- the function is named ``quitclaim-<Stage>-api`` (the name its role's log
  statement, its log group ``ApiLogGroup`` and its alarms use) and created
  after its log group;
- relative ``CodeUri``/``ContentUri`` paths and ``AWS::Include`` locations of
  ``infra/template.yaml`` are relative to ``infra/``; they are rebased onto
  the output directory;
- the REST API's stage traces with X-Ray (Chalice's ``xray`` covers only the
  function);
- one API Gateway usage plan per plan of ``Metadata.Plans`` (the plan
  catalogue) on the generated ``RestAPI``'s stage: ``infra/template.yaml``
  holds the numbers but cannot name the API Chalice generates;
- the Lambda authorizer (``AuthorizerFunction`` of ``infra/template.yaml``)
  in front of every authenticated route, key source ``AUTHORIZER``, no
  result cache, and its invoke permission (``wire_authorizer``;
  docs/access.md);
- the security scan's suppressions for the generated resources, each with
  its reason (``API_SCAN_SUPPRESSIONS``), go into their ``Metadata``; those
  for what SAM generates from them (the stage) are applied to the
  translated template by the scan (``GENERATED_SCAN_SUPPRESSIONS``).

The API function's size is set in ``.chalice/config.json`` (JSON: no
comments there): 2048 MB because enrolment computes face templates with the
same engine and memory-proportional CPU as ingest; 29 s because API Gateway's
REST integration times out at 29 s, so a longer Lambda timeout would only
bill work whose answer nobody receives.

Packaging imports the app, which validates settings: it runs with a pinned
EU region and no AWS profile (nothing is called in AWS).
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, TypeGuard

import yaml

from infra.template_source import default_template_path, load_template

API_FUNCTION = "APIHandler"
_LOCAL_PATH_PROPERTY = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
}


def repo_root() -> Path:
    return default_template_path().parents[1]


def build(
    out_dir: Path | None = None,
    *,
    template: Path | None = None,
    stage: str = "prod",
    region: str = "eu-central-1",
) -> Path:
    """Run ``chalice package`` and the fix-ups; the merged template's path."""
    root = repo_root()
    template = (template or root / "infra" / "template.yaml").resolve()
    out_dir = (out_dir or root / "build" / "api").resolve()
    project = root / "functions" / "api"
    environment = {
        **os.environ,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    environment.pop("AWS_PROFILE", None)
    command = [
        sys.executable,
        "-c",
        "import sys; from chalice.cli import main; sys.exit(main())",
        "package",
        "--stage",
        stage,
        "--pkg-format",
        "cloudformation",
        "--template-format",
        "yaml",
        "--merge-template",
        str(template),
        str(out_dir),
    ]
    subprocess.run(command, cwd=project, env=environment, check=True)  # noqa: S603
    merged_path = out_dir / "sam.yaml"
    merged = fix_up(load_template(merged_path), template.parent, out_dir)
    merged_path.write_text(yaml.safe_dump(merged, sort_keys=False), encoding="utf-8")
    return merged_path


API_LOG_GROUP = "ApiLogGroup"

# checkov findings on the generated API that are accepted, with the reason
# (the scan runs on the translated template: tests/unit/infra).
API_SCAN_SUPPRESSIONS: dict[str, list[dict[str, str]]] = {
    API_FUNCTION: [
        {
            "id": "CKV_AWS_117",
            "comment": "Every dependency is an AWS API reached over TLS with IAM; a VPC would "
            "add NAT/endpoint cost and no control.",
        },
        {
            "id": "CKV_AWS_173",
            "comment": "The environment holds only resource names and ARNs; the one secret "
            "(link signing) is in Secrets Manager, encrypted with DataKey.",
        },
        {
            "id": "CKV_AWS_115",
            "comment": "Synchronous behind API Gateway, whose stage throttling bounds it; a "
            "reservation would turn bursts into 502s for compliance officers.",
        },
        {
            "id": "CKV_AWS_116",
            "comment": "Invoked synchronously by API Gateway only: the caller gets the error; "
            "a dead-letter queue applies to asynchronous invocations.",
        },
    ],
}


# Resources SAM generates from the RestAPI (the stage): their Metadata cannot be
# set in any template, so the scan of the translated template applies these.
GENERATED_SCAN_SUPPRESSIONS: dict[str, list[dict[str, str]]] = {
    "RestAPIapiStage": [
        {
            "id": "CKV_AWS_76",
            "comment": "Access logging needs the account-wide API Gateway CloudWatch role "
            "(AWS::ApiGateway::Account), an account setting this stack must not take over; the "
            "function logs every request with its key id, and CloudTrail records the rest.",
        },
        {
            "id": "CKV_AWS_120",
            "comment": "Every answer is per API key and personal data (consents, review queue); "
            "a cache would serve another caller's or a withdrawn consent's state.",
        },
    ],
}


def with_generated_suppressions(translated: dict[str, Any]) -> dict[str, Any]:
    """A copy of a translated template with ``GENERATED_SCAN_SUPPRESSIONS`` in its Metadata."""
    result = copy.deepcopy(translated)
    for logical_id, skips in GENERATED_SCAN_SUPPRESSIONS.items():
        if logical_id in result["Resources"]:
            metadata = result["Resources"][logical_id].setdefault("Metadata", {})
            metadata.setdefault("checkov", {})["skip"] = list(skips)
    return result


def fix_up(merged: dict[str, Any], template_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Apply the fix-ups described in the module docstring (in place)."""
    resources = merged["Resources"]
    api_resource = resources[API_FUNCTION]
    api = api_resource["Properties"]
    api.pop("Runtime", None)
    api["FunctionName"] = {"Fn::Sub": "quitclaim-${Stage}-api"}
    rest_api = resources.get("RestAPI", {}).get("Properties")
    if rest_api is not None:
        # Chalice's "xray" traces the function, not the API Gateway stage.
        rest_api["TracingEnabled"] = True
    if API_LOG_GROUP in resources:
        api_resource["DependsOn"] = API_LOG_GROUP
    if rest_api is not None:
        resources.update(usage_plans(merged))
    if rest_api is not None and AUTHORIZER_FUNCTION in resources:
        wire_authorizer(merged)
    for logical_id, skips in API_SCAN_SUPPRESSIONS.items():
        if logical_id in resources:
            metadata = resources[logical_id].setdefault("Metadata", {})
            metadata.setdefault("checkov", {})["skip"] = list(skips)
    for logical_id, resource in resources.items():
        key = _LOCAL_PATH_PROPERTY.get(resource.get("Type", ""))
        value = (resource.get("Properties") or {}).get(key) if key else None
        if logical_id == API_FUNCTION or not _is_relative_path(value):
            continue
        resource["Properties"][key] = _rebased(value, template_dir, out_dir)
    _rebase_includes(merged, template_dir, out_dir)
    return merged


def usage_plan_id(plan: str) -> str:
    """``free`` -> ``UsagePlanFree`` (the logical id of a plan's usage plan)."""
    return "UsagePlan" + plan.capitalize()


def usage_plans(template: dict[str, Any]) -> dict[str, Any]:
    """An ``AWS::ApiGateway::UsagePlan`` per ``Metadata.Plans`` entry, on RestAPI's stage."""
    plans = (template.get("Metadata") or {}).get("Plans") or {}
    return {
        usage_plan_id(plan): {
            "Type": "AWS::ApiGateway::UsagePlan",
            "Properties": {
                "UsagePlanName": {"Fn::Sub": f"quitclaim-${{Stage}}-{plan}"},
                "Description": f"Quitclaim API requests of tenants on the {plan} plan",
                "ApiStages": [{"ApiId": {"Ref": "RestAPI"}, "Stage": {"Ref": "RestAPI.Stage"}}],
                "Throttle": {
                    "RateLimit": numbers["RatePerSecond"],
                    "BurstLimit": numbers["Burst"],
                },
            },
        }
        for plan, numbers in plans.items()
    }


AUTHORIZER_FUNCTION = "AuthorizerFunction"
AUTHORIZER = "QuitclaimKeyAuthorizer"


def wire_authorizer(template: dict[str, Any]) -> None:
    """Put ``AuthorizerFunction`` in front of every authenticated route (in place).

    On the generated API's Swagger: a REQUEST authorizer with result cache
    TTL 0 (a revoked key is refused on its next request; with no cache API
    Gateway needs no identity source, so the key may come in either header),
    the API's key source ``AUTHORIZER`` (the usage-plan key is the one the
    authorizer returns, never a client's ``x-api-key``), and on each method
    of ``OPERATIONS`` that takes a key both requirements: the authorizer, and
    an API key (so the tenant's usage plan throttles and meters it). Public
    and signature-authenticated routes keep no security. Also API Gateway's
    permission to invoke the function, and the outputs the operator CLI
    needs to attach tenants' keys (``QC_USAGE_PLAN_IDS``, ``QC_USAGE_KEY_NAMESPACE``).
    """
    from quitclaim.api.openapi import OPERATIONS

    resources = template["Resources"]
    body = resources["RestAPI"]["Properties"]["DefinitionBody"]
    body["x-amazon-apigateway-api-key-source"] = "AUTHORIZER"
    body.setdefault("securityDefinitions", {}).update(_security_definitions())
    for op in OPERATIONS:
        if op.role is None:
            continue
        method = body["paths"][op.path][op.method.lower()]
        method["security"] = [{AUTHORIZER: [], "api_key": []}]
    resources["AuthorizerInvokePermission"] = {
        "Type": "AWS::Lambda::Permission",
        "Properties": {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": [AUTHORIZER_FUNCTION, "Arn"]},
            "Principal": "apigateway.amazonaws.com",
            "SourceArn": {
                "Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:"
                "${AWS::AccountId}:${RestAPI}/authorizers/*"
            },
        },
    }
    _add_operator_outputs(template)


def _security_definitions() -> dict[str, Any]:
    """The REQUEST authorizer (uncached: a revoked key is refused at once) and the API key."""
    invocations = "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31"
    return {
        AUTHORIZER: {
            "type": "apiKey",
            "name": "Authorization",
            "in": "header",
            "x-amazon-apigateway-authtype": "custom",
            "x-amazon-apigateway-authorizer": {
                "type": "request",
                "authorizerUri": {
                    "Fn::Sub": f"{invocations}/functions/${{{AUTHORIZER_FUNCTION}.Arn}}/invocations"
                },
                "authorizerResultTtlInSeconds": 0,
            },
        },
        "api_key": {"type": "apiKey", "name": "x-api-key", "in": "header"},
    }


def _add_operator_outputs(template: dict[str, Any]) -> None:
    """What the operator CLI needs to attach tenants' keys to their usage plans."""
    plans = (template.get("Metadata") or {}).get("Plans") or {}
    outputs = template.setdefault("Outputs", {})
    outputs["UsagePlanIds"] = {
        "Description": "QC_USAGE_PLAN_IDS for the operator CLI (tenants' usage-plan keys)",
        "Value": {"Fn::Sub": ",".join(f"{p}=${{{usage_plan_id(p)}}}" for p in plans)},
    }
    outputs["UsageKeyNamespace"] = {
        "Description": "QC_USAGE_KEY_NAMESPACE for the operator CLI",
        "Value": {"Ref": "AWS::StackName"},
    }


def _rebased(value: str, template_dir: Path, out_dir: Path) -> str:
    rebased = os.path.relpath((template_dir / value).resolve(), out_dir)
    return rebased + ("/" if value.endswith("/") else "")


def _rebase_includes(node: Any, template_dir: Path, out_dir: Path) -> None:
    """Point every local ``AWS::Include`` location at the same file from ``out_dir``."""
    if isinstance(node, list):
        for item in node:
            _rebase_includes(item, template_dir, out_dir)
        return
    if not isinstance(node, dict):
        return
    transform = node.get("Fn::Transform")
    if isinstance(transform, dict) and transform.get("Name") == "AWS::Include":
        parameters = transform.get("Parameters") or {}
        location = parameters.get("Location")
        if _is_relative_path(location):
            parameters["Location"] = _rebased(location, template_dir, out_dir)
        return
    for value in node.values():
        _rebase_includes(value, template_dir, out_dir)


def local_variant(merged: dict[str, Any]) -> dict[str, Any]:
    """The merged template minus API Gateway (API, usage plans), for the emulator (a copy).

    moto cannot deploy Chalice's ``RestAPI``: its CloudFormation wants a
    ``Name`` that SAM takes from the Swagger ``info.title``, and it ignores
    ``Body``, so the stage deployment then fails with "The REST API doesn't
    contain any methods". Locally ``devstack.api_server`` plays API
    Gateway instead; everything else (the API function with its role and
    environment) deploys as in AWS.
    """
    local = copy.deepcopy(merged)
    resources = local["Resources"]
    apis = {k for k, v in resources.items() if v.get("Type") == "AWS::Serverless::Api"}
    removed = set(apis)
    for logical_id, resource in list(resources.items()):
        uses_api = apis & _refs(resource)
        kind = str(resource.get("Type", ""))
        if logical_id in apis or (
            uses_api and (kind == "AWS::Lambda::Permission" or kind.startswith("AWS::ApiGateway::"))
        ):
            del resources[logical_id]
            removed.add(logical_id)
    outputs = local.get("Outputs") or {}
    # Outputs naming what went (the API, its usage plans) go too.
    for name in [n for n, out in outputs.items() if removed & _refs(out)]:
        del outputs[name]
    return local


def _refs(node: Any) -> set[str]:
    """Logical ids a template fragment refers to (Ref, GetAtt, and Sub's ${...})."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value.split(".")[0])  # SAM's "RestAPI.Stage" refers to RestAPI
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else str(value).split(".")[0])
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                found |= {v.split(".")[0] for v in re.findall(r"\$\{([^}!]+)\}", str(text))}
                if isinstance(value, list):
                    found |= _refs(value[1:])
            else:
                found |= _refs(value)
    elif isinstance(node, list):
        for item in node:
            found |= _refs(item)
    return found


def _is_relative_path(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and "://" not in value and not os.path.isabs(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="default: build/api")
    parser.add_argument("--stage", default="prod")
    parser.add_argument(
        "--local", action="store_true", help="also write sam.local.yaml (no API Gateway)"
    )
    args = parser.parse_args(argv)
    path = build(args.out, stage=args.stage)
    print(path)
    if args.local:
        local = path.with_name("sam.local.yaml")
        local.write_text(
            yaml.safe_dump(local_variant(load_template(path)), sort_keys=False), encoding="utf-8"
        )
        print(local)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
