"""API-key authentication and role checks: the tenant comes from the key only.

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
) -> Principal:
    """The caller's principal, checked against the capability the route needs.

    The one place a route's access rule is checked (``quitclaim.domain.access``).
    """
    principal = resolve_key(secret_from_headers(headers))
    require(principal, _LEGACY[needs] if isinstance(needs, Role) else needs)
    return principal
