"""Every place a tenant's data lives, as ``TenantDataStore``s (offboarding's ports).

Each store lists *only* the tenant's items: an S3 prefix ending in ``/``, a
DynamoDB partition, keys beginning with ``tenant#``, schedules whose input
names the tenant, SSM parameters under the tenant's path. Another tenant's
data is never listed, so it can never be deleted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from botocore.exceptions import ClientError

from quitclaim.domain.errors import DependencyFailed

_S3_BATCH = 1000  # DeleteObjects' maximum
_DDB_BATCH = 25  # BatchWriteItem's maximum
_SSM_BATCH = 10  # DeleteParameters' maximum


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "unknown"))


class S3PrefixStore:
    """Every version and delete marker under ``{prefix}{tenant}/`` in one bucket."""

    def __init__(self, client: Any, bucket: str, prefix: str, name: str) -> None:
        self._s3 = client
        self._bucket = bucket
        self._prefix = prefix
        self.name = name

    def _where(self, tenant: str) -> str:
        # The trailing slash: tenant "ab" is not a prefix match of tenant "abc".
        return f"{self._prefix}{tenant}/"

    def _versions(self, tenant: str) -> Iterator[dict[str, str]]:
        kwargs: dict[str, Any] = {"Bucket": self._bucket, "Prefix": self._where(tenant)}
        try:
            while True:
                page = self._s3.list_object_versions(**kwargs)
                for entry in (*page.get("Versions", []), *page.get("DeleteMarkers", [])):
                    yield {"Key": entry["Key"], "VersionId": str(entry["VersionId"])}
                if not page.get("IsTruncated"):
                    return
                kwargs["KeyMarker"] = page.get("NextKeyMarker")
                kwargs["VersionIdMarker"] = page.get("NextVersionIdMarker")
        except ClientError as exc:
            raise DependencyFailed(f"S3 list versions failed: {_code(exc)}") from exc

    def count(self, tenant: str) -> int:
        return sum(1 for _ in self._versions(tenant))

    def purge(self, tenant: str) -> int:
        objects = list(self._versions(tenant))
        deleted = 0
        try:
            for start in range(0, len(objects), _S3_BATCH):
                batch = objects[start : start + _S3_BATCH]
                answer = self._s3.delete_objects(
                    Bucket=self._bucket, Delete={"Objects": batch, "Quiet": True}
                )
                deleted += len(batch) - len(answer.get("Errors", []))
        except ClientError as exc:
            raise DependencyFailed(f"S3 delete failed: {_code(exc)}") from exc
        return deleted


class DynamoTenantItems:
    """A table's items of one tenant: its partition, or keys beginning ``tenant#``.

    ``hash_key="tenant"`` tables are one Query. Tables keyed ``tenant#id``
    (consents, assets, appearances) cannot be queried by prefix, so they are
    scanned for ``begins_with``: an operator's rare action, and the only way
    to also find orphans (a consent tombstone whose subject is gone).
    """

    def __init__(
        self,
        client: Any,
        table: str,
        name: str,
        *,
        hash_key: str,
        range_key: str | None = None,
        also: tuple[str, ...] = (),
    ) -> None:
        self._ddb = client
        self._table = table
        self._hash = hash_key
        self._range = range_key
        # A ``tenant``-keyed table that also holds partitions ``{tenant}{suffix}…``
        # (the tenants table's form versions ``#form``, the requests table's
        # person requests ``#person``): found by a scan for each such prefix.
        # Only the named ones: usage counters and the billing ledger stay.
        self._also = also
        self.name = name

    def _keys(self, tenant: str) -> Iterator[dict[str, Any]]:
        names = {"#h": self._hash}
        projection = "#h"
        if self._range:
            names["#r"] = self._range
            projection += ", #r"
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "ProjectionExpression": projection,
            "ExpressionAttributeNames": names,
            "ConsistentRead": True,
        }
        if self._hash == "tenant":
            query = {
                **kwargs,
                "KeyConditionExpression": "#h = :t",
                "ExpressionAttributeValues": {":t": {"S": tenant}},
            }
            yield from self._pages(self._ddb.query, query)
            prefixes = [f"{tenant}{suffix}" for suffix in self._also]
        else:
            prefixes = [f"{tenant}#"]
        for prefix in prefixes:
            scan = {
                **kwargs,
                "FilterExpression": "begins_with(#h, :p)",
                "ExpressionAttributeValues": {":p": {"S": prefix}},
            }
            yield from self._pages(self._ddb.scan, scan)

    def _pages(self, call: Callable[..., Any], kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        try:
            while True:
                page = call(**kwargs)
                yield from page.get("Items", [])
                if "LastEvaluatedKey" not in page:
                    return
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except ClientError as exc:
            raise DependencyFailed(f"DynamoDB list failed: {_code(exc)}") from exc

    def count(self, tenant: str) -> int:
        return sum(1 for _ in self._keys(tenant))

    def purge(self, tenant: str) -> int:
        keys = list(self._keys(tenant))
        try:
            for start in range(0, len(keys), _DDB_BATCH):
                pending: list[dict[str, Any]] = [
                    {"DeleteRequest": {"Key": key}} for key in keys[start : start + _DDB_BATCH]
                ]
                while pending:
                    answer = self._ddb.batch_write_item(RequestItems={self._table: pending})
                    pending = answer.get("UnprocessedItems", {}).get(self._table, [])
        except ClientError as exc:
            raise DependencyFailed(f"DynamoDB delete failed: {_code(exc)}") from exc
        return len(keys)


class TenantSchedules:
    """One-time schedules (consent expiry, webhook retry) whose input names the tenant.

    Schedule names carry a hash, not the tenant, so each candidate is read
    once to check its input; groups hold only pending one-time schedules.
    """

    def __init__(self, client: Any, groups: tuple[str, ...], name: str = "schedules") -> None:
        self._scheduler = client
        self._groups = tuple(dict.fromkeys(g for g in groups if g))
        self.name = name

    def _mine(self, tenant: str) -> Iterator[tuple[str, str]]:
        try:
            for group in self._groups:
                kwargs: dict[str, Any] = {"GroupName": group}
                while True:
                    page = self._scheduler.list_schedules(**kwargs)
                    for entry in page.get("Schedules", []):
                        if self._tenant_of(group, entry["Name"]) == tenant:
                            yield group, entry["Name"]
                    if not page.get("NextToken"):
                        break
                    kwargs["NextToken"] = page["NextToken"]
        except ClientError as exc:
            raise DependencyFailed(f"scheduler list failed: {_code(exc)}") from exc

    def _tenant_of(self, group: str, name: str) -> str | None:
        try:
            found = self._scheduler.get_schedule(Name=name, GroupName=group)
        except ClientError as exc:
            if _code(exc) == "ResourceNotFoundException":  # fired meanwhile
                return None
            raise
        try:
            payload = json.loads(found.get("Target", {}).get("Input") or "{}")
        except ValueError:
            return None
        return payload.get("tenant") if isinstance(payload, dict) else None

    def count(self, tenant: str) -> int:
        return sum(1 for _ in self._mine(tenant))

    def purge(self, tenant: str) -> int:
        deleted = 0
        for group, name in list(self._mine(tenant)):
            try:
                self._scheduler.delete_schedule(Name=name, GroupName=group)
                deleted += 1
            except ClientError as exc:
                if _code(exc) != "ResourceNotFoundException":
                    raise DependencyFailed(f"scheduler delete failed: {_code(exc)}") from exc
        return deleted


class SsmTenantPath:
    """SSM parameters under ``{prefix}/{tenant}/`` (webhook signing secrets)."""

    def __init__(self, client: Any, prefix: str, name: str = "webhook-secrets") -> None:
        self._ssm = client
        self._prefix = prefix.rstrip("/")
        self.name = name

    def _names(self, tenant: str) -> list[str]:
        kwargs: dict[str, Any] = {"Path": f"{self._prefix}/{tenant}/", "Recursive": True}
        found: list[str] = []
        try:
            while True:
                page = self._ssm.get_parameters_by_path(**kwargs)
                found.extend(p["Name"] for p in page.get("Parameters", []))
                if not page.get("NextToken"):
                    return found
                kwargs["NextToken"] = page["NextToken"]
        except ClientError as exc:
            raise DependencyFailed(f"SSM list failed: {_code(exc)}") from exc

    def count(self, tenant: str) -> int:
        return len(self._names(tenant))

    def purge(self, tenant: str) -> int:
        names = self._names(tenant)
        try:
            for start in range(0, len(names), _SSM_BATCH):
                self._ssm.delete_parameters(Names=names[start : start + _SSM_BATCH])
        except ClientError as exc:
            raise DependencyFailed(f"SSM delete failed: {_code(exc)}") from exc
        return len(names)


class CachedGalleries:
    """This process's gallery cache (warm Lambda containers drop theirs on their own).

    A warm container never serves a purged tenant again: its tenant record is
    gone, so ingest rejects the upload before a gallery is consulted.
    """

    def __init__(self, cache: Callable[[], Any], name: str = "gallery-cache") -> None:
        self._cache = cache
        self.name = name

    def count(self, tenant: str) -> int:
        return int(self._cache().count(tenant))

    def purge(self, tenant: str) -> int:
        return int(self._cache().drop(tenant))
