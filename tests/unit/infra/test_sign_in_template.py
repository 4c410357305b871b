"""The user pool in the deployable template (docs/sign-in.md): people's accounts, roles, MFA."""

from __future__ import annotations

from typing import Any

from tests.unit.infra import templates


def _of(kind: str) -> dict[str, dict[str, Any]]:
    # The translated, merged template: what CloudFormation receives.
    resources = templates.translated()["Resources"]
    return {k: v["Properties"] for k, v in resources.items() if v["Type"] == kind}


def test_one_pool_with_mfa_required_no_self_sign_up_and_a_tenant_attribute() -> None:
    pools = _of("AWS::Cognito::UserPool")
    assert list(pools) == ["UserPool"]
    pool = pools["UserPool"]
    assert (pool["MfaConfiguration"], pool["EnabledMfas"]) == ("ON", ["SOFTWARE_TOKEN_MFA"])
    assert pool["AdminCreateUserConfig"] == {"AllowAdminCreateUserOnly": True}
    assert {"Name": "tenant", "AttributeDataType": "String"}.items() <= pool["Schema"][0].items()


def test_the_app_client_is_public_code_with_pkce_and_cannot_write_the_tenant() -> None:
    client = _of("AWS::Cognito::UserPoolClient")["UserPoolClient"]
    assert client["GenerateSecret"] is False
    assert client["AllowedOAuthFlows"] == ["code"]  # no implicit flow
    assert "custom:tenant" in client["ReadAttributes"]
    assert "custom:tenant" not in client["WriteAttributes"]


def test_a_group_per_role_and_every_function_knows_the_pool() -> None:
    groups = {p["GroupName"]: p["Precedence"] for p in _of("AWS::Cognito::UserPoolGroup").values()}
    assert groups == {"admin": 0, "reviewer": 1, "dpo": 2, "auditor": 3}
    for name, function in _of("AWS::Lambda::Function").items():
        variables = function["Environment"]["Variables"]
        assert variables["QC_USER_POOL_ID"] == {"Ref": "UserPool"}, name
        assert variables["QC_USER_POOL_CLIENT_ID"] == {"Ref": "UserPoolClient"}, name
