"""Authentication and role checks: the tenant comes from the key or sign-in token only.

A key is sent as ``Authorization: Bearer <secret>`` or ``x-api-key: <secret>``.
It is resolved by the console (which stores only hashes); the resulting
``Principal`` scopes every call. Nothing in the request body or path can
name a tenant.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from quitclaim.domain.access import Capability, require
from quitclaim.domain.errors import Unauthorized
from quitclaim.domain.registry import Principal, Role

# Real secrets are far shorter; this bounds the hashing work of a hostile caller.
MAX_SECRET_LENGTH = 256

# A bare role (callers from before capabilities) means what "minimum role" meant.
_LEGACY: dict[Role, Capability] = {Role.REVIEWER: Capability.READ, Role.ADMIN: Capability.WRITE}


def secret_from_headers(headers: Mapping[str, str]) -> str:
    """The presented key (``Unauthorized`` when missing or malformed).

    ``headers`` must be case-insensitive (Chalice's request headers are).
    """
    authorization = (headers.get("authorization") or "").strip()
    if authorization:
        scheme, _, secret = authorization.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <API key>'")
        return _bounded(secret.strip())
    api_key = (headers.get("x-api-key") or "").strip()
    if api_key:
        return _bounded(api_key)
    raise Unauthorized("an API key is required (Authorization: Bearer <key>)")


def _bounded(secret: str) -> str:
    if len(secret) > MAX_SECRET_LENGTH or not secret.isprintable():
        raise Unauthorized("invalid API key")
    return secret


def authenticate(
    headers: Mapping[str, str],
    resolve_key: Callable[[str], Principal],
    needs: Capability | Role,
    resolve_token: Callable[[str], Principal] | None = None,
) -> Principal:
    """The caller's principal, checked against the capability the route needs.

    The one place a route's access rule is checked (``quitclaim.domain.access``).
    A bearer shaped as a JWT is a person's sign-in token (``resolve_token``,
    docs/sign-in.md); anything else is an API key.
    """
    principal = identify(headers, resolve_key, resolve_token)
    require(principal, _LEGACY[needs] if isinstance(needs, Role) else needs)
    return principal


def identify(
    headers: Mapping[str, str],
    resolve_key: Callable[[str], Principal],
    resolve_token: Callable[[str], Principal] | None = None,
) -> Principal:
    """Who is calling: a person's sign-in token, else an API key (no role check).

    Shared by the API and its Lambda authorizer, so both read a request alike.
    """
    token = _bearer_jwt(headers) if resolve_token is not None else None
    if token is not None and resolve_token is not None:
        return resolve_token(token)
    return resolve_key(secret_from_headers(headers))


# A Cognito ID token is 1-2 KB; the verifier bounds it again.
MAX_TOKEN_LENGTH = 8192


def _bearer_jwt(headers: Mapping[str, str]) -> str | None:
    """The bearer when it has a JWT's three dot-separated parts (keys have no dot)."""
    scheme, _, value = (headers.get("authorization") or "").strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or value.count(".") != 2:
        return None
    if len(value) > MAX_TOKEN_LENGTH or not value.isprintable():
        raise Unauthorized("invalid sign-in token")
    return value
