"""API-key authentication and role checks: the tenant comes from the key only.

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
    headers: Mapping[str, str], resolve_key: Callable[[str], Principal], minimum: Role
) -> Principal:
    """The caller's principal, checked against the route's minimum role."""
    principal = resolve_key(secret_from_headers(headers))
    if principal.role not in _SATISFIES[minimum]:
        raise Forbidden(f"this action needs the {minimum.value} role")
    return principal
