"""Keys: no key or a wrong key is 401 everywhere; roles limit what a key may do."""

from __future__ import annotations

import re
from typing import Any

import pytest

from quitclaim.api.openapi import OPERATIONS, Operation
from tests.integration.api.conftest import Api, Tenant, assert_error, make_tenant

pytestmark = pytest.mark.integration

PROTECTED = [op for op in OPERATIONS if op.role is not None]
ADMIN_ONLY = [op for op in PROTECTED if op.role is not None and op.role.value == "admin"]


def _path(op: Operation) -> str:
    # Ids that look real: an anonymous caller must not learn whether they exist.
    return re.sub(r"{(\w+)}", "abc123", op.path)


@pytest.fixture(scope="module")
def tenant(local_stack: Any) -> Tenant:
    return make_tenant("api-auth")


@pytest.mark.parametrize("op", PROTECTED, ids=lambda op: op.operation_id)
def test_missing_key_is_401_on_every_protected_route(api: Api, op: Operation) -> None:
    # Given no key at all / When any protected route is called
    reply = api.call(op.method, _path(op), json_body={})
    # Then 401 in the error shape, with a Bearer challenge, before any lookup
    assert_error(reply, 401, "unauthorized", None)
    assert (reply.header("WWW-Authenticate") or "").startswith("Bearer")


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer qc_nobody_0000000000000000"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"x-api-key": "not-a-key"},
        {"Authorization": "Bearer " + "x" * 5000},
    ],
    ids=["unknown", "basic", "empty-bearer", "x-api-key-unknown", "huge"],
)
def test_wrong_key_is_401(api: Api, headers: dict[str, str]) -> None:
    reply = api.call("GET", "/subjects", headers=headers)
    body = assert_error(reply, 401, "unauthorized")
    # And the error never echoes what was presented
    assert "dXNlcjpwYXNz" not in body["message"] and "not-a-key" not in body["message"]


def test_public_routes_need_no_key(api: Api) -> None:
    assert api.call("GET", "/health").json == {"status": "ok"}
    assert api.call("GET", "/").status == 200  # the dashboard page (it holds no data)
    reply = api.call("GET", "/openapi.json")
    assert reply.status == 200 and reply.json["openapi"].startswith("3.1")


def test_bearer_and_x_api_key_both_work(api: Api, tenant: Tenant) -> None:
    assert api.call("GET", "/policy", key=tenant.admin).json["tenant"] == tenant.id
    reply = api.call("GET", "/policy", headers={"x-api-key": tenant.reviewer})
    assert reply.status == 200 and reply.json["tenant"] == tenant.id
    # The scheme is case-insensitive, as RFC 7235 says
    lower = api.call("GET", "/policy", headers={"Authorization": f"bearer {tenant.admin}"})
    assert lower.status == 200


@pytest.mark.parametrize("op", ADMIN_ONLY, ids=lambda op: op.operation_id)
def test_reviewer_key_cannot_use_admin_routes(api: Api, tenant: Tenant, op: Operation) -> None:
    # Given a valid reviewer key / When an admin-only route is called
    reply = api.call(op.method, _path(op), key=tenant.reviewer, json_body={})
    # Then 403, whatever the body or ids
    assert_error(reply, 403, "forbidden")


def test_admin_issues_keys_and_the_secret_works_once_shown(api: Api, tenant: Tenant) -> None:
    # When the admin issues a reviewer key
    reply = api.call(
        "POST",
        "/keys",
        key=tenant.admin,
        json_body={"role": "reviewer", "label": "night shift", "person": "dana"},
    )
    assert reply.status == 201, reply.body
    issued = reply.json
    assert issued["role"] == "reviewer" and issued["label"] == "night shift"
    assert issued["person"] == "dana"
    assert issued["secret"] and issued["key_id"] and issued["secret"] != issued["key_id"]
    # Then the new secret authenticates as a reviewer of the same tenant
    policy = api.call("GET", "/policy", key=issued["secret"])
    assert policy.status == 200 and policy.json["tenant"] == tenant.id
    # And the key's id is not a credential
    assert_error(api.call("GET", "/policy", key=issued["key_id"]), 401)


def test_unknown_role_is_400_naming_the_field(api: Api, tenant: Tenant) -> None:
    reply = api.call(
        "POST", "/keys", key=tenant.admin, json_body={"role": "root", "label": "x", "person": "x"}
    )
    assert_error(reply, 400, "validation_failed", "role")


def test_a_key_without_a_person_is_400_naming_the_field(api: Api, tenant: Tenant) -> None:
    # Four eyes count people, so every new key names the person who holds it
    reply = api.call("POST", "/keys", key=tenant.admin, json_body={"role": "admin", "label": "x"})
    assert_error(reply, 400, "validation_failed", "person")


def test_a_path_that_is_no_route_never_echoes_the_key(http_api: Api, tenant: Tenant) -> None:
    # Given a valid key / When a path that is no route is called over HTTP
    reply = http_api.call("GET", "/no/such/route", key=tenant.admin)
    # Then API Gateway's 403, without the key in it
    assert reply.status == 403
    assert tenant.admin not in reply.body.decode()
