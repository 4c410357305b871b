"""``ApiKeyRepository`` on the API keys table (keys stored as a hash of their secret)."""

from __future__ import annotations

from datetime import UTC, datetime

from quitclaim.adapters.dynamo.plumbing import dependency
from quitclaim.adapters.dynamo.tables import ApiKeyModel
from quitclaim.domain.errors import Unauthorized
from quitclaim.domain.registry import ApiKeyInfo, Role
from quitclaim.domain.tenancy import TenantDeleting


class DynamoApiKeys:
    """API keys by (tenant, hash of secret)."""

    def put(
        self,
        tenant: str,
        key_hash: str,
        key_id: str,
        role: Role,
        label: str,
        person: str = "",
        expires_at: datetime | None = None,
    ) -> None:
        with dependency("api key write"):
            ApiKeyModel(
                tenant,
                key_hash,
                key_id=key_id,
                role=role.value,
                label=label,
                person=person or None,
                created_at=datetime.now(UTC),
                expires_at=expires_at,
            ).save(condition=ApiKeyModel.key_hash.does_not_exist())

    def find(self, tenant: str, key_hash: str) -> tuple[str, Role, str, str] | None:
        """(key_id, role, label, person) of a live key, or None."""
        with dependency("api key read"):
            try:
                item = ApiKeyModel.get(tenant, key_hash, consistent_read=True)
            except ApiKeyModel.DoesNotExist:
                return None
        if item.revoked_at is not None:
            if item.revoked_reason == TenantDeleting.code:
                # The caller holds a real key: telling them why is no leak.
                raise Unauthorized(
                    "this tenant is being deleted; its API keys were revoked",
                    code=TenantDeleting.code,
                )
            return None
        return item.key_id, Role(item.role), item.label, item.person or ""

    def info(self, tenant: str, key_hash: str) -> ApiKeyInfo | None:
        """The key with this hash, live or not (``Unauthorized`` for a deleting tenant)."""
        with dependency("api key read"):
            try:
                item = ApiKeyModel.get(tenant, key_hash, consistent_read=True)
            except ApiKeyModel.DoesNotExist:
                return None
        if item.revoked_at is not None and item.revoked_reason == TenantDeleting.code:
            raise Unauthorized(
                "this tenant is being deleted; its API keys were revoked",
                code=TenantDeleting.code,
            )
        return _key_info(item)

    def keys(self, tenant: str) -> list[ApiKeyInfo]:
        """Every key of ``tenant`` (a tenant has tens of keys: one partition query)."""
        with dependency("api key query"):
            items = list(ApiKeyModel.query(tenant, consistent_read=True))
        return sorted((_key_info(i) for i in items), key=lambda k: (k.created_at, k.key_id))

    def revoke(self, tenant: str, key_id: str, *, reason: str) -> ApiKeyInfo | None:
        """Revoke one key by its id now (idempotent: a revoked key keeps its first time)."""
        with dependency("api key revoke"):
            for item in ApiKeyModel.query(tenant, consistent_read=True):
                if item.key_id != key_id:
                    continue
                if item.revoked_at is None:
                    item.update(
                        actions=[
                            ApiKeyModel.revoked_at.set(datetime.now(UTC)),
                            ApiKeyModel.revoked_reason.set(reason),
                        ]
                    )
                return _key_info(item)
        return None

    def revoke_all(self, tenant: str, *, reason: str) -> int:
        """Revoke every live key of ``tenant`` now; the number revoked."""
        now = datetime.now(UTC)
        revoked = 0
        with dependency("api key revoke"):
            for item in ApiKeyModel.query(tenant, consistent_read=True):
                if item.revoked_at is not None:
                    continue
                item.update(
                    actions=[
                        ApiKeyModel.revoked_at.set(now),
                        ApiKeyModel.revoked_reason.set(reason),
                    ]
                )
                revoked += 1
        return revoked


def _key_info(item: ApiKeyModel) -> ApiKeyInfo:
    return ApiKeyInfo(
        tenant=item.tenant,
        key_id=item.key_id,
        role=Role(item.role),
        label=item.label or "",
        person=item.person or "",
        created_at=item.created_at,
        expires_at=item.expires_at,
        revoked_at=item.revoked_at,
    )
