"""API keys: random, shown once, stored only as a hash, resolved to a tenant."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from quitclaim.domain.errors import Unauthorized
from quitclaim.domain.models import is_tenant_id
from quitclaim.domain.ports import ApiKeyRepository
from quitclaim.domain.registry import IssuedKey, Principal, Role

PREFIX = "qc_"


def hash_secret(secret: str) -> str:
    """SHA-256 of the secret part: 192 random bits need no slow KDF."""
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(key: str) -> tuple[str, str] | None:
    """``qc_{tenant}_{secret}`` → (tenant, secret); None if it is not shaped so."""
    if not key.startswith(PREFIX):
        return None
    tenant, sep, secret = key[len(PREFIX) :].rpartition("_")
    if not sep or not is_tenant_id(tenant) or len(secret) != 48:
        return None
    return tenant, secret


class ApiKeys:
    def __init__(self, repository: ApiKeyRepository) -> None:
        self._keys = repository

    def issue(self, tenant: str, role: Role, label: str, person: str = "") -> IssuedKey:
        """A new key of ``person`` (four eyes count people); "" makes it its own person."""
        secret = secrets.token_hex(24)
        key_id = f"key_{secrets.token_hex(6)}"
        self._keys.put(tenant, hash_secret(secret), key_id, role, label, person)
        return IssuedKey(
            tenant, key_id, role, label, f"{PREFIX}{tenant}_{secret}", person or key_id
        )

    def resolve(self, key: str | None) -> Principal:
        """The principal of a live key; ``Unauthorized`` (one message) otherwise."""
        parts = split_key((key or "").strip())
        if parts is None:
            raise Unauthorized("a valid API key is required")
        tenant, secret = parts
        digest = hash_secret(secret)
        found = self._keys.find(tenant, digest)
        if found is None:
            raise Unauthorized("a valid API key is required")
        key_id, role, label, person = found
        # The lookup already matched the hash; compare again in constant time so
        # no code path depends on how much of a guessed key was right.
        if not hmac.compare_digest(digest, hash_secret(secret)):  # pragma: no cover
            raise Unauthorized("a valid API key is required")
        # A key issued without a person is its own person.
        return Principal(tenant, key_id, role, label, person or key_id)
