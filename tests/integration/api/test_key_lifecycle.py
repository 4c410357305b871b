"""Key lifecycle on the local stack: list, revoke, rotate, expire; each refused next time.

Through Chalice's client and the real key table (DynamoDB on the emulator);
the CLI once over HTTP (``quitclaim keys``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import main
from quitclaim.adapters.dynamo import DynamoApiKeys
from quitclaim.domain.registry import Role
from quitclaim.usecases.keys import ApiKeys
from tests.integration.api.conftest import ChaliceApi, HttpApi, Tenant, assert_error, make_tenant

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tenant(local_stack: Any) -> Tenant:
    return make_tenant("api-key-life")


def _issue(api: ChaliceApi, tenant: Tenant, **body: Any) -> dict[str, Any]:
    reply = api.call("POST", "/keys", key=tenant.admin, json_body=body)
    assert reply.status == 201, reply.body
    issued: dict[str, Any] = reply.json
    return issued


def test_a_revoked_key_gets_401_on_its_next_request(
    chalice_api: ChaliceApi, tenant: Tenant
) -> None:
    # Given a reviewer key that works, issued for 30 days
    issued = _issue(chalice_api, tenant, role="reviewer", label="temp", person="tom", valid_days=30)
    assert chalice_api.call("GET", "/policy", key=issued["secret"]).status == 200
    expires = datetime.fromisoformat(issued["expires_at"])
    assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)
    # When an admin revokes it
    done = chalice_api.call("POST", f"/keys/{issued['key_id']}/revoke", key=tenant.admin)
    assert done.status == 200 and done.json["status"] == "revoked", done.body
    # Then its very next request is 401
    assert_error(chalice_api.call("GET", "/policy", key=issued["secret"]), 401, "unauthorized")
    # And the listing shows it revoked, with its person, and no secret anywhere
    listing = chalice_api.call("GET", "/keys", key=tenant.admin)
    assert listing.status == 200
    row = next(k for k in listing.json["items"] if k["key_id"] == issued["key_id"])
    assert (row["status"], row["person"], row["label"]) == ("revoked", "tom", "temp")
    assert issued["secret"] not in listing.body.decode() and "hash" not in listing.body.decode()


def test_rotation_gives_a_new_secret_and_the_old_one_gets_401(
    chalice_api: ChaliceApi, tenant: Tenant
) -> None:
    old = _issue(chalice_api, tenant, role="reviewer", label="scanner", person="uma")
    # When an admin rotates it
    reply = chalice_api.call("POST", f"/keys/{old['key_id']}/rotate", key=tenant.admin)
    assert reply.status == 201, reply.body
    new = reply.json
    # Then the new secret is the same person and name, and the old one is refused
    assert (new["label"], new["person"], new["role"]) == ("scanner", "uma", "reviewer")
    me = chalice_api.call("GET", "/me", key=new["secret"]).json
    assert me["person"] == "uma" and me["key_id"] == new["key_id"]
    assert_error(chalice_api.call("GET", "/me", key=old["secret"]), 401)
    # And an unknown key id is 404
    assert_error(chalice_api.call("POST", "/keys/key_nope/rotate", key=tenant.admin), 404)


def test_an_expired_key_gets_401(chalice_api: ChaliceApi, tenant: Tenant) -> None:
    # Given a key issued two days ago for one day (the real table, a clock in the past)
    past = ApiKeys(DynamoApiKeys(), clock=lambda: datetime.now(UTC) - timedelta(days=2))
    issued = past.issue(tenant.id, Role.REVIEWER, "old laptop", "vic", valid_days=1)
    # When it is used / Then 401, saying it expired
    body = assert_error(chalice_api.call("GET", "/policy", key=issued.secret), 401)
    assert "expired" in body["message"]
    listing = chalice_api.call("GET", "/keys", key=tenant.admin).json["items"]
    assert {k["key_id"]: k["status"] for k in listing}[issued.key_id] == "expired"


def test_a_reviewer_cannot_list_or_revoke_keys(chalice_api: ChaliceApi, tenant: Tenant) -> None:
    assert_error(chalice_api.call("GET", "/keys", key=tenant.reviewer), 403)
    me = chalice_api.call("GET", "/me", key=tenant.admin).json
    revoke = chalice_api.call("POST", f"/keys/{me['key_id']}/revoke", key=tenant.reviewer)
    assert_error(revoke, 403)
    assert chalice_api.call("GET", "/me", key=tenant.admin).status == 200


def test_the_keys_cli_lists_and_revokes(http_api: HttpApi, tenant: Tenant) -> None:
    runner = CliRunner()
    env = {"QUITCLAIM_URL": http_api.base_url, "QUITCLAIM_KEY": tenant.admin}
    # Given a key created from the command line
    made = runner.invoke(
        main,
        ["keys", "create", "--role", "dpo", "--label", "dpo", "--person", "dee", "--json"],
        env=env,
        catch_exceptions=False,
    )
    assert made.exit_code == 0, made.output
    key_id = json.loads(made.stdout)["key_id"]
    # When it is revoked from the command line
    revoked = runner.invoke(main, ["keys", "revoke", key_id], env=env, catch_exceptions=False)
    assert revoked.exit_code == 0, revoked.output
    # Then the listing shows it revoked
    listed = runner.invoke(main, ["keys", "list", "--json"], env=env, catch_exceptions=False)
    rows = {k["key_id"]: k for k in json.loads(listed.stdout)["items"]}
    assert rows[key_id]["status"] == "revoked" and rows[key_id]["role"] == "dpo"
    assert "secret" not in rows[key_id]
