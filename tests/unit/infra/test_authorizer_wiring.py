"""The API's Lambda authorizer and usage plans, checked on the translated template.

The emulator runs no authorizer (the local stack serves the Chalice app
without API Gateway), so the wiring is proven here, on what CloudFormation
would receive.
"""

from __future__ import annotations

from typing import Any

from infra.api_template import local_variant
from quitclaim.api.openapi import OPERATIONS
from tests.unit.infra import templates

AUTHORIZER = "QuitclaimKeyAuthorizer"


def _rest_api_body() -> dict[str, Any]:
    translated = templates.translated("merged")
    [api] = [r for r in translated["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    body: dict[str, Any] = api["Properties"]["Body"]
    return body


def test_the_api_takes_usage_plan_keys_from_the_authorizer_without_a_cache() -> None:
    # Given the REST API as CloudFormation gets it
    body = _rest_api_body()
    # Then API Gateway takes the usage-plan key from the authorizer, not from clients
    assert body["x-amazon-apigateway-api-key-source"] == "AUTHORIZER"
    authorizer = body["securityDefinitions"][AUTHORIZER]["x-amazon-apigateway-authorizer"]
    # And it is a REQUEST authorizer on the authorizer function, never cached
    assert authorizer["type"] == "request"
    assert authorizer["authorizerResultTtlInSeconds"] == 0
    assert "${AuthorizerFunction.Arn}" in authorizer["authorizerUri"]["Fn::Sub"]


def test_every_route_that_takes_a_key_goes_through_the_authorizer_and_a_usage_plan() -> None:
    body = _rest_api_body()
    for op in OPERATIONS:
        security = body["paths"][op.path][op.method.lower()].get("security")
        if op.role is None:
            # Public pages and signed webhooks: nothing in front of them
            assert not security, op.operation_id
        else:
            assert security == [{AUTHORIZER: [], "api_key": []}], op.operation_id


def test_api_gateway_may_invoke_the_authorizer_and_each_plan_has_a_usage_plan() -> None:
    translated = templates.translated("merged")
    resources = translated["Resources"]
    permission = resources["AuthorizerInvokePermission"]["Properties"]
    assert permission["Principal"] == "apigateway.amazonaws.com"
    assert permission["FunctionName"] == {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]}
    assert "/authorizers/*" in permission["SourceArn"]["Fn::Sub"]
    function = resources["AuthorizerFunction"]["Properties"]
    assert function["Handler"] == "app.handler"
    plans = templates.merged()["Metadata"]["Plans"]
    usage_plans = {
        k: r["Properties"]
        for k, r in resources.items()
        if r["Type"] == "AWS::ApiGateway::UsagePlan"
    }
    assert set(usage_plans) == {f"UsagePlan{p.capitalize()}" for p in plans}
    for plan, numbers in plans.items():
        throttle = usage_plans[f"UsagePlan{plan.capitalize()}"]["Throttle"]
        assert throttle == {"RateLimit": numbers["RatePerSecond"], "BurstLimit": numbers["Burst"]}
    # And the operator CLI finds the usage plans' ids in the outputs
    ids = translated["Outputs"]["UsagePlanIds"]["Value"]["Fn::Sub"]
    assert ids == ",".join(f"{p}=${{UsagePlan{p.capitalize()}}}" for p in plans)


def test_the_local_variant_drops_the_api_and_what_names_it() -> None:
    # The emulator cannot deploy API Gateway: the permission and outputs go with it
    local = local_variant(templates.merged())
    assert "AuthorizerInvokePermission" not in local["Resources"]
    assert "UsagePlanIds" not in local.get("Outputs", {})
    assert "AuthorizerFunction" in local["Resources"]
