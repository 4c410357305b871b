"""Sign-in tokens: only RS256 tokens of this pool and app client, unexpired, make a principal."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from quitclaim.adapters.user_tokens import UserTokens, email_hash, issuer_of, role_of
from quitclaim.api.auth import authenticate
from quitclaim.domain.errors import Forbidden, Unauthorized
from quitclaim.domain.registry import Principal, Role

ISSUER = issuer_of("eu-central-1", "eu-central-1_pool")
CLIENT = "client123"
NOW = 1_800_000_000


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


POOL_KEY = _key()
FOREIGN_KEY = _key()


def _jwks(*keys: tuple[str, rsa.RSAPrivateKey]) -> dict[str, Any]:
    out = []
    for kid, key in keys:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        out.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
    return {"keys": out}


class Fetches:
    """The pool's JWKS endpoint, counting downloads."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.count = 0

    def __call__(self, url: str) -> dict[str, Any]:
        self.count += 1
        return self.document


def _claims(**over: Any) -> dict[str, Any]:
    claims = {
        "iss": ISSUER,
        "sub": "sub-ana",
        "aud": CLIENT,
        "token_use": "id",
        "exp": NOW + 600,
        "iat": NOW,
        "email": "Ana@Example.org",
        "custom:tenant": "acme",
        "cognito:groups": ["reviewer"],
    }
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(claims: dict[str, Any], key: Any = POOL_KEY, kid: str = "k1", alg: str = "RS256") -> str:
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def _verifier(fetch: Fetches | None = None, now: float = NOW) -> UserTokens:
    return UserTokens(
        issuer=ISSUER,
        client_id=CLIENT,
        jwks_url="https://example.invalid/jwks.json",
        fetch=fetch or Fetches(_jwks(("k1", POOL_KEY))),
        now=lambda: now,
    )


def test_a_valid_id_token_is_the_person_of_its_tenant_with_their_role() -> None:
    # Given an ID token of the pool for a reviewer of acme
    token = _sign(_claims())
    # When it is verified
    principal = _verifier().principal(token)
    # Then the principal is that person: sub, tenant, role, the e-mail only as a hash
    assert principal == Principal(
        "acme",
        "user:sub-ana",
        Role.REVIEWER,
        "signed in",
        "sub-ana",
        email_hash("ana@example.org"),
    )
    assert "ana" not in principal.email_hash


def test_a_valid_access_token_is_checked_by_client_id() -> None:
    # Given an access token (client_id, no aud) that names a tenant
    token = _sign(_claims(aud=None, token_use="access", client_id=CLIENT))
    # Then it is accepted
    assert _verifier().principal(token).person == "sub-ana"


def _unsigned(claims: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT', 'kid': 'k1'})}.{part(claims)}."


REFUSED = {
    "other issuer": lambda: _sign(_claims(iss=issuer_of("eu-central-1", "eu-central-1_other"))),
    "foreign key, right issuer and kid": lambda: _sign(_claims(), key=FOREIGN_KEY),
    "foreign key, its own kid": lambda: _sign(_claims(), key=FOREIGN_KEY, kid="k2"),
    "expired": lambda: _sign(_claims(exp=NOW - 60)),
    "alg none": lambda: _unsigned(_claims()),
    "HS256": lambda: _sign(_claims(), key="s" * 32, alg="HS256"),
    "wrong aud": lambda: _sign(_claims(aud="another-client")),
    "wrong client_id": lambda: _sign(
        _claims(aud=None, token_use="access", client_id="another-client")
    ),
    "access token with aud only": lambda: _sign(_claims(token_use="access")),
    "wrong token_use": lambda: _sign(_claims(token_use="refresh")),
    "no token_use": lambda: _sign(_claims(token_use=None)),
    "no tenant": lambda: _sign(_claims(**{"custom:tenant": None})),
    "garbage": lambda: "a.b.c",
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_token_that_is_not_this_pools_is_refused_with_401(case: str) -> None:
    # Given a token that fails one check
    token = REFUSED[case]()
    # When the API authenticates it, Then 401 (Unauthorized)
    with pytest.raises(Unauthorized):
        authenticate(
            {"authorization": f"Bearer {token}"},
            _no_keys,
            Role.REVIEWER,
            _verifier().principal,
        )


def _no_keys(secret: str) -> Principal:
    raise AssertionError("a JWT must not be resolved as an API key")


def test_an_api_key_still_goes_to_the_key_side() -> None:
    # Given a key-shaped bearer
    seen: list[str] = []

    def resolve(secret: str) -> Principal:
        seen.append(secret)
        return Principal("acme", "key_1", Role.ADMIN)

    # When authenticated with both resolvers, Then the key resolver decides
    principal = authenticate(
        {"authorization": "Bearer qc_acme_" + "a" * 48}, resolve, Role.ADMIN, _verifier().principal
    )
    assert principal.key_id == "key_1" and seen == ["qc_acme_" + "a" * 48]


def test_roles_take_the_most_privileged_known_group_and_no_group_is_403() -> None:
    assert role_of(["auditor", "reviewer", "staff"]) is Role.REVIEWER
    assert role_of(["admin", "reviewer"]) is Role.ADMIN
    with pytest.raises(Forbidden):
        role_of(["staff"])
    with pytest.raises(Forbidden):
        _verifier().principal(_sign(_claims(**{"cognito:groups": None})))


def test_keys_are_fetched_once_and_again_only_for_an_unknown_kid_at_most_once_a_minute() -> None:
    # Given a verifier whose pool then rotates in a new key k2
    fetch = Fetches(_jwks(("k1", POOL_KEY)))
    clock = [float(NOW)]
    verifier = UserTokens(
        issuer=ISSUER, client_id=CLIENT, jwks_url="u", fetch=fetch, now=lambda: clock[0]
    )
    verifier.principal(_sign(_claims()))
    verifier.principal(_sign(_claims()))
    assert fetch.count == 1
    new_key = _key()
    fetch.document = _jwks(("k1", POOL_KEY), ("k2", new_key))
    # When a k2 token comes within a minute, Then no download (and 401) ...
    with pytest.raises(Unauthorized):
        verifier.principal(_sign(_claims(), key=new_key, kid="k2"))
    assert fetch.count == 1
    # ... and after a minute the keys are fetched again and it is accepted
    clock[0] += 61
    assert (
        verifier.principal(_sign(_claims(exp=NOW + 6000), key=new_key, kid="k2")).tenant == "acme"
    )
    assert fetch.count == 2


def test_the_wall_clock_decides_expiry() -> None:
    # Given a token valid now, checked an hour later
    token = _sign(_claims())
    with pytest.raises(Unauthorized):
        _verifier(now=NOW + 3600).principal(token)


def test_every_audit_event_of_a_request_names_who_acted() -> None:
    from quitclaim import observability

    # Given an audit block in which a signed-in person acts
    flushed: list[tuple[str, list[dict[str, Any]]]] = []
    observability.set_audit_sink(lambda block, events: flushed.append((block, list(events))))
    try:
        with observability.audit_block("api/r1"):
            with observability.acting_as("user:sub-ana", email_hash("ana@example.org")):
                observability.audit("asset.kept", tenant="acme", asset_id="a1")
            # an event outside the caller's part names nobody
            observability.audit("asset.kept", tenant="acme", asset_id="a2")
    finally:
        observability.set_audit_sink(None)
    # Then the event names the person by sub and e-mail hash, and nothing else of them
    events = flushed[0][1]
    assert events[0]["actor"] == "user:sub-ana"
    assert events[0]["actor_email_hash"] == email_hash("ana@example.org")
    assert "actor" not in events[1]
