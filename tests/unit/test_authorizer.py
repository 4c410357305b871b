"""The API's Lambda authorizer: its use-case and its thin handler (in memory)."""

from __future__ import annotations

import importlib.util
from datetime import timedelta
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from quitclaim.domain.errors import Unauthorized
from quitclaim.domain.registry import Principal, Role
from quitclaim.domain.tenancy import usage_key_value
from quitclaim.usecases.authorizer import KeyAuthorizer
from quitclaim.usecases.keys import ApiKeys
from tests.conftest import REPO_ROOT
from tests.unit.test_key_lifecycle import NOW, Clock, MemoryKeys

ARN = "arn:aws:execute-api:eu-central-1:123456789012:abc123/api/GET/subjects"
CONTEXT = SimpleNamespace(
    function_name="authorizer",
    memory_limit_in_mb=256,
    invoked_function_arn="arn:aws:lambda:eu-central-1:123456789012:function:authorizer",
    aws_request_id="req",
)


@pytest.fixture
def world() -> tuple[KeyAuthorizer, ApiKeys, Clock]:
    clock = Clock()
    keys = ApiKeys(MemoryKeys(), clock)
    return KeyAuthorizer(keys.resolve, namespace="qc-prod"), keys, clock


def test_a_live_key_is_allowed_this_method_with_its_tenants_usage_plan_key(world: Any) -> None:
    authorizer, keys, _ = world
    issued = keys.issue("acme", Role.REVIEWER, "laptop", "dana")
    # When API Gateway asks about a request with the key
    answer = authorizer.authorize({"authorization": f"Bearer {issued.secret}"}, ARN)
    # Then it is allowed for this method only, metered on the tenant's usage-plan key
    assert answer["policyDocument"]["Statement"] == [
        {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": ARN}
    ]
    assert answer["usageIdentifierKey"] == usage_key_value("qc-prod", "acme")
    assert answer["principalId"] == issued.key_id
    # And the context carries ids only: no person, no secret
    assert answer["context"] == {"tenant": "acme", "key_id": issued.key_id, "role": "reviewer"}
    assert "dana" not in str(answer) and issued.secret not in str(answer)


def test_tenants_get_different_usage_keys_at_least_20_characters_long() -> None:
    a, b = usage_key_value("s", "a"), usage_key_value("s", "b")
    assert a != b and len(a) >= 20 and len(b) >= 20
    assert usage_key_value("stack-1", "a") != usage_key_value("stack-2", "a")


def test_revoked_expired_unknown_and_missing_keys_are_unauthorized(world: Any) -> None:
    authorizer, keys, clock = world
    revoked = keys.issue("acme", Role.ADMIN, "old", "ada")
    keys.revoke(Principal("acme", "key_x", Role.ADMIN, "", "ada"), revoked.key_id)
    expiring = keys.issue("acme", Role.ADMIN, "short", "ada", valid_days=1)
    for headers in (
        {"authorization": f"Bearer {revoked.secret}"},
        {"x-api-key": "qc_acme_" + "0" * 48},
        {},
    ):
        with pytest.raises(Unauthorized):
            authorizer.authorize(headers, ARN)
    # An expired key: refused from the moment it expires (no cached answer)
    assert authorizer.authorize({"x-api-key": expiring.secret}, ARN)["principalId"]
    clock.at = NOW + timedelta(days=1)
    with pytest.raises(Unauthorized):
        authorizer.authorize({"x-api-key": expiring.secret}, ARN)


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch, world: Any) -> ModuleType:
    path = REPO_ROOT / "functions" / "authorizer" / "app.py"
    spec = importlib.util.spec_from_file_location("_authorizer_app_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "authorizer_service", lambda: world[0])
    return module


def _event(headers: dict[str, str]) -> dict[str, Any]:
    return {"type": "REQUEST", "methodArn": ARN, "headers": headers}


def test_the_handler_reads_headers_in_any_case(app: ModuleType, world: Any) -> None:
    _, keys, _ = world
    issued = keys.issue("acme", Role.DPO, "dpo", "dee")
    answer = app.handler(_event({"Authorization": f"Bearer {issued.secret}"}), CONTEXT)
    assert answer["context"]["role"] == "dpo"
    assert answer["policyDocument"]["Statement"][0]["Resource"] == ARN


def test_the_handler_answers_unauthorized_as_api_gateway_expects(app: ModuleType) -> None:
    # API Gateway turns an authorizer error with exactly this message into a 401
    with pytest.raises(Exception, match=r"^Unauthorized$") as raised:
        app.handler(_event({"Authorization": "Bearer qc_acme_" + "1" * 48}), CONTEXT)
    assert not isinstance(raised.value, Unauthorized)


def test_a_sign_in_token_is_verified_and_metered_on_its_tenants_key() -> None:
    # Given an authorizer that knows the pool's verifier beside the keys
    seen: list[str] = []

    def verify(token: str) -> Principal:
        seen.append(token)
        if token != "h.p.s":
            raise Unauthorized("invalid sign-in token")
        return Principal("acme", "user:sub-1", Role.REVIEWER, "", "sub-1")

    keys = ApiKeys(MemoryKeys(), Clock())
    authorizer = KeyAuthorizer(keys.resolve, namespace="qc-prod", resolve_token=verify)
    # When a person's token (a JWT's three parts) is presented
    answer = authorizer.authorize({"authorization": "Bearer h.p.s"}, ARN)
    # Then the token went to the verifier and meters on the tenant's usage-plan key
    assert seen == ["h.p.s"]
    assert answer["usageIdentifierKey"] == usage_key_value("qc-prod", "acme")
    assert answer["principalId"] == "user:sub-1"
    # And a token the verifier refuses is Unauthorized, never tried as a key
    with pytest.raises(Unauthorized):
        authorizer.authorize({"authorization": "Bearer h.p.forged"}, ARN)
    assert seen[-1] == "h.p.forged"
