"""Usage-plan keys on the emulator's API Gateway (moto serves usage plans and keys).

The local stack deploys no API Gateway (``local_variant``), so the usage
plans are made here with the same client; the adapter and the plan change
then run as in AWS, against real API calls.
"""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import main
from quitclaim.adapters.dynamo import DynamoTenants
from quitclaim.adapters.usage_plans import ApiGatewayUsagePlanKeys
from quitclaim.bootstrap import onboarding_service
from quitclaim.domain.errors import ValidationFailed
from quitclaim.domain.tenancy import usage_key_name, usage_key_value
from quitclaim.usecases.plans import PlanChanges

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def apigw(local_stack: Any) -> tuple[Any, dict[str, str]]:
    client = local_stack.client("apigateway")
    plans = {
        plan: client.create_usage_plan(name=f"it-usage-{plan}")["id"]
        for plan in ("free", "standard", "enterprise")
    }
    return client, plans


def _plans_holding(client: Any, plans: dict[str, str], key_id: str) -> list[str]:
    return sorted(
        plan
        for plan, usage_plan in plans.items()
        if any(
            k["id"] == key_id for k in client.get_usage_plan_keys(usagePlanId=usage_plan)["items"]
        )
    )


def test_a_tenants_key_is_created_once_and_follows_its_plan(apigw: Any) -> None:
    client, plans = apigw
    keys = ApiGatewayUsagePlanKeys(client, namespace="it-ns", plans=plans)
    # When a tenant is attached to free, again to free, then moved to standard
    keys.attach("it-plan-a", "free")
    keys.attach("it-plan-a", "free")
    name = usage_key_name("it-ns", "it-plan-a")
    [key] = [
        k
        for k in client.get_api_keys(nameQuery=name, includeValues=True)["items"]
        if k["name"] == name
    ]
    assert key["value"] == usage_key_value("it-ns", "it-plan-a") and key["enabled"]
    assert _plans_holding(client, plans, key["id"]) == ["free"]
    keys.attach("it-plan-a", "standard")
    # Then one key, on the standard usage plan only
    assert _plans_holding(client, plans, key["id"]) == ["standard"]
    assert keys.plan_of("it-plan-a") == "standard"
    assert keys.plan_of("it-plan-nobody") is None
    # And offboarding's purge deletes it, and its count proves it
    assert (keys.count("it-plan-a"), keys.count("it-plan-nobody")) == (1, 0)
    assert keys.purge("it-plan-a") == 1 and keys.purge("it-plan-a") == 0
    assert keys.count("it-plan-a") == 0 and keys.plan_of("it-plan-a") is None
    assert _plans_holding(client, plans, key["id"]) == []


def test_onboarding_and_a_plan_change_move_the_key(apigw: Any, local_stack: Any) -> None:
    client, plans = apigw
    keys = ApiGatewayUsagePlanKeys(client, namespace="it-ns", plans=plans)
    onboarding_service().usage_plans = keys  # the stack has no usage plans of its own: wire these
    try:
        # When a tenant is onboarded on the free plan
        onboarding_service().create_tenant(
            "it-plan-b", name="Plan B", plan="free", contact_email="dpo@plan-b.example"
        )
    finally:
        onboarding_service().usage_plans = None
    assert keys.plan_of("it-plan-b") == "free"
    # And the operator moves it to enterprise
    PlanChanges(DynamoTenants(), keys).change("it-plan-b", "enterprise")
    # Then the stored plan (the in-app limit) and the usage-plan key both moved
    assert DynamoTenants().plan_of("it-plan-b") == "enterprise"
    assert keys.plan_of("it-plan-b") == "enterprise"
    with pytest.raises(ValidationFailed) as refused:
        PlanChanges(DynamoTenants(), keys).change("it-plan-b", "platinum")
    assert refused.value.field == "plan"


def test_the_operator_changes_a_plan_from_the_command_line(local_stack: Any) -> None:
    # Given a tenant on the free plan (the local stack manages no usage-plan keys)
    onboarding_service().create_tenant(
        "it-plan-c", name="Plan C", plan="free", contact_email="dpo@plan-c.example"
    )
    # When the operator moves it to standard
    result = CliRunner().invoke(
        main, ["tenants", "plan", "it-plan-c", "standard"], catch_exceptions=False
    )
    # Then the stored plan (what the in-app limit reads) is standard
    assert result.exit_code == 0, result.output
    assert DynamoTenants().plan_of("it-plan-c") == "standard"
    # And an unknown tenant is refused, naming nothing it should not
    unknown = CliRunner().invoke(main, ["tenants", "plan", "it-plan-none", "free"])
    assert unknown.exit_code != 0 and "not_found" in unknown.output
