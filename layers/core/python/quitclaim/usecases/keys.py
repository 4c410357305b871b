"""API keys: random, shown once, stored only as a hash, resolved to a tenant.

Each key is named (``label``) and held by a person; it expires
(``expires_at``: a year by default, at most ``MAX_KEY_DAYS``), and can be
listed (never its secret), revoked and rotated. A revoked or expired key is
refused on its next request: every request reads the key again (consistent
read), and the AWS authorizer caches nothing (docs/access.md).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from quitclaim.domain.errors import NotFound, Unauthorized, ValidationFailed
from quitclaim.domain.four_eyes import person_name, person_of
from quitclaim.domain.models import is_tenant_id
from quitclaim.domain.ports import ApiKeyRepository
from quitclaim.domain.registry import ApiKeyInfo, IssuedKey, Principal, Role, key_status
from quitclaim.observability import audit

PREFIX = "qc_"
DEFAULT_KEY_DAYS = 365
# A key lives at most two years: a forgotten key must end by itself.
MAX_KEY_DAYS = 730
REVOKED_BY_ADMIN = "revoked"
ROTATED = "rotated"


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


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ApiKeys:
    def __init__(
        self, repository: ApiKeyRepository, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self._keys = repository
        self._now = clock

    def issue(
        self,
        tenant: str,
        role: Role,
        label: str,
        person: str = "",
        *,
        valid_days: int | None = None,
    ) -> IssuedKey:
        """A new key of ``person`` (four eyes count people); "" makes it its own person."""
        days = DEFAULT_KEY_DAYS if valid_days is None else int(valid_days)
        if not 1 <= days <= MAX_KEY_DAYS:
            raise ValidationFailed(
                f"valid_days must be between 1 and {MAX_KEY_DAYS}", field="valid_days"
            )
        expires_at = self._now() + timedelta(days=days)
        secret = secrets.token_hex(24)
        key_id = f"key_{secrets.token_hex(6)}"
        self._keys.put(tenant, hash_secret(secret), key_id, role, label, person, expires_at)
        return IssuedKey(
            tenant,
            key_id,
            role,
            label,
            f"{PREFIX}{tenant}_{secret}",
            person or key_id,
            expires_at,
        )

    def create_key(
        self,
        who: Principal,
        role: Role,
        label: str,
        person: str,
        valid_days: int | None = None,
    ) -> IssuedKey:
        """An admin issues another key to a named person (audited; four eyes count people)."""
        issued = self.issue(
            who.tenant,
            Role(role),
            label.strip()[:100],
            person_name(person),
            valid_days=valid_days,
        )
        audit(
            "key.created",
            tenant=who.tenant,
            key_id=issued.key_id,
            role=issued.role.value,
            source=who.key_id,
            people=[person_of(who)],
        )
        return issued

    def resolve(self, key: str | None) -> Principal:
        """The principal of a live key; ``Unauthorized`` (one message) otherwise."""
        parts = split_key((key or "").strip())
        if parts is None:
            raise Unauthorized("a valid API key is required")
        tenant, secret = parts
        digest = hash_secret(secret)
        found = self._keys.info(tenant, digest)
        if found is None or found.revoked_at is not None:
            raise Unauthorized("a valid API key is required")
        # The lookup already matched the hash; compare again in constant time so
        # no code path depends on how much of a guessed key was right.
        if not hmac.compare_digest(digest, hash_secret(secret)):  # pragma: no cover
            raise Unauthorized("a valid API key is required")
        if found.expires_at is not None and found.expires_at <= self._now():
            # The caller holds the real secret: saying why is no leak, and tells them what to do.
            raise Unauthorized("this API key has expired; ask an admin to rotate it")
        # A key issued without a person is its own person.
        person = found.person or found.key_id
        return Principal(tenant, found.key_id, found.role, found.label, person)

    # -- lifecycle ----------------------------------------------------------
    def list_keys(self, tenant: str) -> list[ApiKeyInfo]:
        """Every key of the tenant with its status inputs (never a secret or hash)."""
        now = self._now()
        return [replace(k, status=key_status(k, now)) for k in self._keys.keys(tenant)]

    def revoke(self, who: Principal, key_id: str) -> ApiKeyInfo:
        """Revoke ``key_id`` of the caller's tenant now (idempotent; audited)."""
        revoked = self._keys.revoke(who.tenant, key_id, reason=REVOKED_BY_ADMIN)
        if revoked is None:
            raise NotFound("no such key")
        audit(
            "key.revoked",
            tenant=who.tenant,
            key_id=key_id,
            source=who.key_id,
            people=[person_of(who)],
        )
        return replace(revoked, status=key_status(revoked, self._now()))

    def rotate(self, who: Principal, key_id: str, *, valid_days: int | None = None) -> IssuedKey:
        """A new secret for the same name, role and person; the old key is revoked (audited).

        The new key is issued first, so a failure in between leaves two live
        keys rather than none.
        """
        old = next((k for k in self._keys.keys(who.tenant) if k.key_id == key_id), None)
        if old is None:
            raise NotFound("no such key")
        if old.revoked_at is not None:
            raise ValidationFailed("a revoked key cannot be rotated", field="key_id")
        issued = self.issue(who.tenant, old.role, old.label, old.person, valid_days=valid_days)
        self._keys.revoke(who.tenant, key_id, reason=ROTATED)
        audit(
            "key.rotated",
            tenant=who.tenant,
            key_id=key_id,
            new_key_id=issued.key_id,
            source=who.key_id,
            people=[person_of(who)],
        )
        return issued

    def expiring(self, tenant: str, within: timedelta) -> list[ApiKeyInfo]:
        """Live keys that expire within ``within`` from now, soonest first."""
        now = self._now()
        return sorted(
            (
                k
                for k in self._keys.keys(tenant)
                if key_status(k, now) == "active"
                and k.expires_at is not None
                and k.expires_at <= now + within
            ),
            key=lambda k: k.expires_at or now,
        )
