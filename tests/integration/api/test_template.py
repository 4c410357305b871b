"""``chalice package --merge-template``: the API half of the template is generated, not written."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.stack import LocalStack
from infra.api_template import build, local_variant, usage_plan_id
from infra.template_source import load_template
from quitclaim.api.openapi import OPERATIONS
from quitclaim.domain.tenancy import PLANS
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration

TEMPLATE = REPO_ROOT / "infra" / "template.yaml"


@pytest.fixture(scope="module")
def merged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("api-template") / "api"
    path = build(out, template=TEMPLATE)
    return path, load_template(path)


def test_infra_template_has_no_hand_written_api(local_stack: Any) -> None:
    types = {r.get("Type") for r in load_template(TEMPLATE)["Resources"].values()}
    assert not {t for t in types if t and ("ApiGateway" in t or t == "AWS::Serverless::Api")}


def test_merged_template_holds_the_generated_api(merged: tuple[Path, dict[str, Any]]) -> None:
    path, template = merged
    resources = template["Resources"]
    # The generated half: function, REST API, invoke permission, role
    assert resources["APIHandler"]["Type"] == "AWS::Serverless::Function"
    assert resources["RestAPI"]["Type"] == "AWS::Serverless::Api"
    assert resources["APIHandlerInvokePermission"]["Type"] == "AWS::Lambda::Permission"
    assert resources["ApiHandlerRole"]["Type"] == "AWS::IAM::Role"
    assert "EndpointURL" in template["Outputs"]
    # And the hand-written half is all still there, EU rule included
    for logical_id in load_template(TEMPLATE)["Resources"]:
        assert logical_id in resources
    assert "EuRegionOnly" in template["Rules"]
    # The Swagger routes are exactly the route table's
    swagger = resources["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
    generated = {(p, m.upper()) for p, methods in swagger.items() for m in methods}
    assert generated == {(op.path, op.method) for op in OPERATIONS}
    assert (path.parent / "deployment.zip").is_file()


def test_fix_ups_runtime_layer_and_paths(merged: tuple[Path, dict[str, Any]]) -> None:
    path, template = merged
    api = template["Resources"]["APIHandler"]["Properties"]
    # Runtime and the core layer come from Globals, as for every other function;
    # the face layer (enrolment computes templates) is added as for ingest
    assert "Runtime" not in api
    assert template["Globals"]["Function"]["Runtime"] == "python3.13"
    assert template["Globals"]["Function"]["Layers"] == [{"Ref": "CoreLayer"}]
    assert api["Layers"] == [{"Ref": "FaceLayer"}]
    assert api["Architectures"] == ["arm64"] and api["Handler"] == "app.app"
    # Relative code paths still point at the same folders from the output directory
    source = load_template(TEMPLATE)["Resources"]
    for logical_id, resource in template["Resources"].items():
        code = (resource.get("Properties") or {}).get("CodeUri")
        if logical_id == "APIHandler" or not isinstance(code, str):
            continue
        original = (TEMPLATE.parent / source[logical_id]["Properties"]["CodeUri"]).resolve()
        assert (path.parent / code).resolve() == original


def test_role_is_scoped_to_the_stacks_tables_and_buckets(
    merged: tuple[Path, dict[str, Any]],
) -> None:
    _, template = merged
    role = template["Resources"]["ApiHandlerRole"]["Properties"]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    for statement in statements:
        if statement["Sid"] == "SendTraces":  # X-Ray has no resource-level permissions
            continue
        resources = statement["Resource"]
        resources = resources if isinstance(resources, list) else [resources]
        # No wildcard resources for data: every ARN names a table or bucket of the stack
        assert all(isinstance(r, dict) for r in resources), statement
        assert not any("*" in a for a in statement["Action"]), statement
    # The policy is policies/functions/api.json, read by Chalice (not a copy)
    assert role["Policies"][0]["PolicyDocument"] == json.loads(
        (REPO_ROOT / "policies" / "functions" / "api.json").read_text()
    )
    # And the function has the name its role, log group and alarms use
    api = template["Resources"]["APIHandler"]
    assert api["Properties"]["FunctionName"] == {"Fn::Sub": "quitclaim-${Stage}-api"}
    assert api["DependsOn"] == "ApiLogGroup"


def test_each_plan_is_a_usage_plan_on_the_generated_api(
    merged: tuple[Path, dict[str, Any]],
) -> None:
    _, template = merged
    resources = template["Resources"]
    # Given the plan catalogue, Then each plan throttles the generated API's stage
    for name, plan in PLANS.items():
        usage = resources[usage_plan_id(name)]
        assert usage["Type"] == "AWS::ApiGateway::UsagePlan"
        props = usage["Properties"]
        assert props["Throttle"] == {
            "RateLimit": plan.api_rate_per_second,
            "BurstLimit": plan.api_burst,
        }
        assert props["ApiStages"] == [
            {"ApiId": {"Ref": "RestAPI"}, "Stage": {"Ref": "RestAPI.Stage"}}
        ]
    # And the emulator's variant leaves them out with the API they belong to
    local = local_variant(template)["Resources"]
    assert not [k for k, v in local.items() if v["Type"].startswith("AWS::ApiGateway::")]
    assert "RestAPI" not in local and "TenantsTable" in local


def test_local_variant_deploys_into_the_emulator(
    merged: tuple[Path, dict[str, Any]], local_stack: Any
) -> None:
    path, template = merged
    local_path = path.with_name("sam.local.yaml")
    local_path.write_text(yaml.safe_dump(local_variant(template)), encoding="utf-8")
    tag = f"t{uuid.uuid4().hex[:8]}"
    # Given the merged template without API Gateway (moto cannot deploy Chalice's RestAPI)
    stack = LocalStack(template_path=local_path, stack_name=f"qc-{tag}", parameters={"Stage": tag})
    try:
        stack.start()
        # Then the API function is deployed with the template's environment
        assert "APIHandler" in stack.runtime.functions
        env = stack.function_env("APIHandler")
        assert env["QC_SUBJECTS_TABLE"] == stack.resources["SubjectsTable"]
        assert env["QC_LIBRARY_BUCKET"] == stack.outputs["LibraryBucketName"]
        assert stack.runtime.functions["APIHandler"].runtime == "python3.13"
    finally:
        stack.stop()
