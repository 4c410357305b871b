"""Authentication and role checks: the tenant comes from the key or sign-in token only.

A key is sent as ``Authorization: Bearer <secret>`` or ``x-api-key: <secret>``.
It is resolved by the console (which stores only hashes); the resulting
``Principal`` scopes every call. Nothing in the request body or path can
name a tenant.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from quitclaim.domain.errors import Forbidden, Unauthorized
from quitclaim.domain.registry import Principal, Role

# Real secrets are far shorter; this bounds the hashing work of a hostile caller.
MAX_SECRET_LENGTH = 256

# Which roles satisfy a route's minimum role.
_SATISFIES: dict[Role, frozenset[Role]] = {
    Role.REVIEWER: frozenset({Role.REVIEWER, Role.ADMIN}),
    Role.ADMIN: frozenset({Role.ADMIN}),
}


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
    minimum: Role,
    resolve_token: Callable[[str], Principal] | None = None,
) -> Principal:
    """The caller's principal, checked against the route's minimum role.

    A bearer shaped as a JWT is a person's sign-in token (``resolve_token``,
    docs/sign-in.md); anything else is an API key.
    """
    token = _bearer_jwt(headers) if resolve_token is not None else None
    if token is not None and resolve_token is not None:
        principal = resolve_token(token)
    else:
        principal = resolve_key(secret_from_headers(headers))
    if principal.role not in _SATISFIES[minimum]:
        raise Forbidden(f"this action needs the {minimum.value} role")
    return principal


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
