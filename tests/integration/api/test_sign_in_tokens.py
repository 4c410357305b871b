"""People's sign-in tokens on the local stack's API: moto's pool, the API's own verifier.

The valid tokens are moto's (``admin_initiate_auth`` on the pool the template
made); the forged ones are signed with moto's own pool key where that is the
point (an expired token, a token of another pool: moto signs every pool with
one key, so only the issuer tells them apart) and with a foreign key otherwise.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from moto.utilities.utils import load_resource

from devstack.signin import create_user, sign_in_tokens
from quitclaim.adapters.user_tokens import email_hash
from tests.integration.api.conftest import Api, assert_error, make_tenant

pytestmark = pytest.mark.integration

TENANT = "api-signin"
PASSWORD = "Correct-horse-9"


@pytest.fixture(scope="module")
def pool(local_stack: Any) -> dict[str, Any]:
    """The pool, a reviewer and a user in no role group, and their ID tokens' claims."""
    make_tenant(TENANT)
    cognito = local_stack.client("cognito-idp")
    pool_id, client_id = local_stack.resources["UserPool"], local_stack.resources["UserPoolClient"]
    people = {}
    for name, group in (("rev", "reviewer"), ("none", None)):
        email = f"{name}@{TENANT}.example.org"
        sub = create_user(
            cognito,
            pool_id,
            email=email,
            tenant=TENANT,
            group=group or "auditor",
            password=PASSWORD,
        )
        if group is None:
            cognito.admin_remove_user_from_group(
                UserPoolId=pool_id, Username=email, GroupName="auditor"
            )
        tokens = sign_in_tokens(cognito, pool_id, client_id, email, PASSWORD)
        people[name] = {"sub": sub, "email": email, **tokens}
    return {"id": pool_id, "client": client_id, "people": people, "cognito": cognito}


def _claims(token: str) -> dict[str, Any]:
    return dict(json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==")))


def _resign(claims: dict[str, Any], key: Any, kid: str = "dummy") -> str:
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def test_a_reviewers_token_is_the_person_with_their_role(api: Api, pool: dict[str, Any]) -> None:
    # Given a reviewer's ID token from the pool, When they ask who they are
    rev = pool["people"]["rev"]
    reply = api.call("GET", "/me", key=rev["id_token"])
    # Then they are that person of the tenant, a reviewer, their e-mail only as a hash
    assert reply.status == 200, reply.body
    me = reply.json
    assert (me["tenant"], me["role"], me["person"], me["key_id"]) == (
        TENANT,
        "reviewer",
        rev["sub"],
        f"user:{rev['sub']}",
    )
    assert me["email_hash"] == email_hash(rev["email"]) and "@" not in reply.body.decode()


def test_a_user_in_no_role_group_is_403(api: Api, pool: dict[str, Any]) -> None:
    reply = api.call("GET", "/me", key=pool["people"]["none"]["id_token"])
    assert_error(reply, 403, "forbidden")


def _forgeries(pool: dict[str, Any]) -> dict[str, str]:
    rev = pool["people"]["rev"]
    claims = _claims(rev["id_token"])
    # The one key moto signs every pool's tokens with (its private JWK ships with moto).
    moto_key = jwt.PyJWK(
        dict(load_resource("cognitoidp/resources/jwks-private.json")), algorithm="RS256"
    ).key
    foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_pool = pool["cognito"].create_user_pool(PoolName="another-org")["UserPool"]["Id"]
    unsigned = (
        base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT","kid":"dummy"}').rstrip(b"=").decode()
        + "."
        + rev["id_token"].split(".")[1]
        + "."
    )
    return {
        # The control: the same claims re-signed with moto's key are accepted (below).
        "control": _resign(claims, moto_key),
        "other issuer (same moto key)": _resign(
            {**claims, "iss": claims["iss"].rsplit("/", 1)[0] + "/" + other_pool}, moto_key
        ),
        "foreign key, right issuer": _resign(claims, foreign),
        "expired": _resign({**claims, "exp": int(time.time()) - 120}, moto_key),
        "alg none": unsigned,
        "wrong aud": _resign({**claims, "aud": "another-client"}, moto_key),
        "access token (no tenant claim)": rev["access_token"],
    }


def test_tokens_not_of_this_pool_and_client_are_401(api: Api, pool: dict[str, Any]) -> None:
    # Given tokens that each fail one check, When each calls the API, Then 401
    forgeries = _forgeries(pool)
    assert api.call("GET", "/me", key=forgeries.pop("control")).status == 200
    for case, token in forgeries.items():
        reply = api.call("GET", "/me", key=token)
        assert reply.status == 401, (case, reply.body)
        assert_error(reply, 401, "unauthorized")


def test_the_cli_creates_an_account_that_signs_in(pool: dict[str, Any]) -> None:
    # Given the stack's environment (what `local up` writes to its env file)
    from click.testing import CliRunner

    from cli.main import main

    # When an operator creates an auditor account with the CLI
    email = f"cli@{TENANT}.example.org"
    args = ["local", "user", "--tenant", TENANT, "--email", email, "--group", "auditor"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    password = result.output.rsplit("password: ", 1)[1].strip()
    # Then that account signs in, as an auditor of the tenant
    tokens = sign_in_tokens(pool["cognito"], pool["id"], pool["client"], email, password)
    claims = _claims(tokens["id_token"])
    assert (claims["custom:tenant"], claims["cognito:groups"]) == (TENANT, ["auditor"])
