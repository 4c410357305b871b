"""DynamoDB's TTL deletions on the emulator (gap 13 in ``gaps.py``): moto stores the
TTL setting but never deletes an expired item. The reaper deletes what is due at the
local clock's time, as the service principal does, and marks each removal in the
table's stream as DynamoDB's TTL does (``userIdentity``), so the expiry handler
receives it as in AWS."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from devstack.tick_report import Reaped

if TYPE_CHECKING:
    from devstack.deploy import Deployment

log = logging.getLogger(__name__)


TTL_IDENTITY = {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"}
# AWS does not delete items whose TTL lies more than five years in the past.
_TTL_HORIZON = timedelta(days=5 * 365)


@dataclass(frozen=True)
class TtlTable:
    logical_id: str
    name: str
    attribute: str
    keys: tuple[str, ...]


def ttl_tables(deployment: Deployment) -> list[TtlTable]:
    """The stack's tables with TTL enabled, as DescribeTimeToLive reports them."""
    dynamodb = deployment.client("dynamodb")
    tables = []
    for logical_id, kind in deployment.resource_types.items():
        if kind != "AWS::DynamoDB::Table" or logical_id not in deployment.resources:
            continue
        name = deployment.resources[logical_id]
        ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            continue
        schema = dynamodb.describe_table(TableName=name)["Table"]["KeySchema"]
        keys = tuple(k["AttributeName"] for k in schema)
        tables.append(TtlTable(logical_id, name, ttl["AttributeName"], keys))
    return tables


def reap_expired_items(
    deployment: Deployment, tables: list[TtlTable], now: datetime
) -> list[Reaped]:
    """Delete what DynamoDB TTL would have deleted by ``now``, as TTL does (gap 13)."""
    dynamodb = deployment.client("dynamodb")
    epoch = int(now.timestamp())
    oldest = epoch - int(_TTL_HORIZON.total_seconds())
    reaped: list[Reaped] = []
    for table in tables:
        expired = _expired_keys(deployment, table, oldest, epoch)
        for key in expired:
            before = _stream_length(deployment, table.name)
            try:
                dynamodb.delete_item(
                    TableName=table.name,
                    Key=key,
                    # Re-checked at delete time: an item whose TTL moved on stays.
                    ConditionExpression="#ttl <= :now",
                    ExpressionAttributeNames={"#ttl": table.attribute},
                    ExpressionAttributeValues={":now": {"N": str(epoch)}},
                )
            except dynamodb.exceptions.ConditionalCheckFailedException:
                continue
            _mark_ttl_removal(deployment, table.name, key, before)
            reaped.append(Reaped(table.logical_id, _plain(key), now))
    return reaped


def _expired_keys(
    deployment: Deployment, table: TtlTable, oldest: int, now: int
) -> list[dict[str, Any]]:
    """Keys of items whose TTL lies in [oldest, now], read from moto's table in-process.

    In-process because the clock runs the reaper at every step of a tick:
    a Scan per table per step would cost more than the rest of the step.
    The deletes themselves go through the API.
    """
    from moto.dynamodb.models import dynamodb_backends

    moto_table = dynamodb_backends[deployment.account_id][deployment.region].get_table(table.name)
    keys = []
    for item in moto_table.all_items():
        ttl = item.attrs.get(table.attribute)
        # A TTL attribute that is not a number is ignored, as by DynamoDB.
        if ttl is None or ttl.type != "N":
            continue
        try:
            expires = float(ttl.value)
        except ValueError:
            continue
        if oldest <= expires <= now:
            keys.append({name: item.attrs[name].to_json() for name in table.keys})
    return keys


def _stream_shard(deployment: Deployment, table_name: str) -> Any:
    from moto.dynamodb.models import dynamodb_backends

    table = dynamodb_backends[deployment.account_id][deployment.region].get_table(table_name)
    return getattr(table, "stream_shard", None)


def _stream_length(deployment: Deployment, table_name: str) -> int:
    shard = _stream_shard(deployment, table_name)
    return len(shard.items) if shard is not None else 0


def _mark_ttl_removal(
    deployment: Deployment, table_name: str, key: dict[str, Any], before: int
) -> None:
    """Give the REMOVE record of this deletion the TTL service identity (in moto's shard)."""
    shard = _stream_shard(deployment, table_name)
    if shard is None:
        return
    for record in shard.items[before:]:
        data = record.to_json()
        if data.get("eventName") == "REMOVE" and data["dynamodb"].get("Keys") == key:
            # A newer moto that sets an identity itself is left alone.
            data.setdefault("userIdentity", dict(TTL_IDENTITY))
            return
    log.warning("no REMOVE stream record found for the TTL deletion of %s in %s", key, table_name)


def _plain(key: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB key as plain JSON values (for reports)."""
    plain: dict[str, Any] = {}
    for name, value in key.items():
        ((kind, inner),) = value.items()
        plain[name] = int(inner) if kind == "N" and inner.lstrip("-").isdigit() else inner
        if isinstance(plain[name], bytes):
            plain[name] = plain[name].hex()
    return plain
