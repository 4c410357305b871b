"""The billing ledger and accounts in the tenants table; AWS Marketplace metering.

Ledger item ``{tenant}#billing#{YYYY-MM}`` (a tenant id never holds ``#``):
``version`` (every claim is conditional on it), ``through`` (last claimed
hour), ``cumulative`` (the counters at that claim) and ``hours`` (a map: hour
-> quantities, statuses, record ids, event flag). Only hours with usage are
in it: at most 744 small entries, well under DynamoDB's 400 KB item limit.
Low-level client calls, because a claim sets one key of a map and a mark
updates one hour in place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from quitclaim.domain.billing import DIMENSIONS, HourRecord, Ledger, RecordStatus
from quitclaim.domain.errors import DependencyFailed, NotFound
from quitclaim.domain.records import AssetRecord
from quitclaim.usecases.billing import (
    Account,
    MeterAnswer,
    MeteringThrottled,
    MeterRequest,
)

_SER = TypeSerializer()
_DES = TypeDeserializer()

THROTTLING = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException"})


def ledger_key(tenant: str, month: str) -> str:
    return f"{tenant}#billing#{month}"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "unknown"))


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals back to ints (every number here is a count)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "as_integer_ratio") and not isinstance(value, bool | int):
        return int(value)
    return value


def _ledger(tenant: str, month: str, item: Mapping[str, Any] | None) -> Ledger:
    if not item:
        return Ledger(tenant, month)
    data = _plain({k: _DES.deserialize(v) for k, v in item.items()})
    return Ledger(
        tenant=tenant,
        month=month,
        version=int(data.get("version", 0)),
        through=data.get("through"),
        cumulative=dict(data.get("cumulative") or {}),
        hours={h: HourRecord.from_json(h, v) for h, v in (data.get("hours") or {}).items()},
    )


class DynamoLedgers:
    """``Ledgers`` on the tenants table (tenant in every key; scans only to list tenants)."""

    def __init__(self, client: Any, table: str) -> None:
        self._db = client
        self._table = table

    def read(self, tenant: str, month: str) -> Ledger:
        try:
            item = self._db.get_item(
                TableName=self._table,
                Key={"tenant": {"S": ledger_key(tenant, month)}},
                ConsistentRead=True,
            ).get("Item")
        except ClientError as exc:
            raise DependencyFailed(f"DynamoDB ledger read failed: {_code(exc)}") from exc
        return _ledger(tenant, month, item)

    def snapshot(
        self, keys: Sequence[tuple[str, str]]
    ) -> tuple[dict[tuple[str, str], Ledger], dict[tuple[str, str], dict[str, int]]]:
        """Ledgers and usage counters with ``BatchGetItem`` (100 keys a call, consistent)."""
        wanted: dict[str, tuple[str, tuple[str, str]]] = {}
        for tenant, month in keys:
            wanted[ledger_key(tenant, month)] = ("ledger", (tenant, month))
            wanted[f"{tenant}#usage#{month}"] = ("usage", (tenant, month))
        found: dict[str, dict[str, Any]] = {}
        names = list(wanted)
        for start in range(0, len(names), 100):
            request = {
                self._table: {
                    "Keys": [{"tenant": {"S": n}} for n in names[start : start + 100]],
                    "ConsistentRead": True,
                }
            }
            try:
                while request:
                    reply = self._db.batch_get_item(RequestItems=request)
                    for item in reply.get("Responses", {}).get(self._table, []):
                        found[item["tenant"]["S"]] = item
                    # Unprocessed keys (throttling): asked again (the client backs off).
                    request = reply.get("UnprocessedKeys") or {}
            except ClientError as exc:
                raise DependencyFailed(f"DynamoDB batch read failed: {_code(exc)}") from exc
        ledgers: dict[tuple[str, str], Ledger] = {}
        counters: dict[tuple[str, str], dict[str, int]] = {}
        for name, (kind, (tenant, month)) in wanted.items():
            item = found.get(name)
            if kind == "ledger":
                ledgers[(tenant, month)] = _ledger(tenant, month, item)
            else:
                data = _plain({k: _DES.deserialize(v) for k, v in (item or {}).items()})
                counters[(tenant, month)] = {d: int(data.get(d) or 0) for d in DIMENSIONS}
        return ledgers, counters

    def claim(
        self,
        ledger: Ledger,
        hour: str,
        cumulative: Mapping[str, int],
        record: HourRecord | None,
    ) -> bool:
        names = {"#v": "version", "#t": "through", "#c": "cumulative"}
        values: dict[str, Any] = {
            ":v": ledger.version,
            ":n": ledger.version + 1,
            ":t": hour,
            ":c": dict(cumulative),
            ":o": ledger.tenant,
            ":m": ledger.month,
        }
        sets = ["#v = :n", "#t = :t", "#c = :c", "#ow = :o", "#mo = :m"]
        names["#ow"], names["#mo"] = "owner", "month"
        if ledger.version == 0:
            condition = "attribute_not_exists(tenant)"
            del values[":v"]
            values[":hs"] = {} if record is None else {hour: record.to_json()}
            names["#h"] = "hours"
            sets.append("#h = :hs")
        else:
            condition = "#v = :v"
            if record is not None:
                names["#h"], names["#k"] = "hours", hour
                values[":r"] = record.to_json()
                sets.append("#h.#k = :r")
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"tenant": {"S": ledger_key(ledger.tenant, ledger.month)}},
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={k: _SER.serialize(v) for k, v in values.items()},
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False
            raise DependencyFailed(f"DynamoDB ledger claim failed: {_code(exc)}") from exc
        return True

    def mark(self, tenant: str, month: str, record: HourRecord) -> None:
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"tenant": {"S": ledger_key(tenant, month)}},
                UpdateExpression="SET #h.#k.s = :s, #h.#k.id = :i, #h.#k.event = :e",
                ConditionExpression="attribute_exists(#h.#k)",
                ExpressionAttributeNames={"#h": "hours", "#k": record.hour},
                ExpressionAttributeValues={
                    ":s": _SER.serialize(dict(record.statuses)),
                    ":i": _SER.serialize(dict(record.record_ids)),
                    ":e": _SER.serialize(record.event_published),
                },
            )
        except ClientError as exc:
            raise DependencyFailed(f"DynamoDB ledger mark failed: {_code(exc)}") from exc

    def accounts(self) -> list[Account]:
        """Every tenant (items with a policy), its plan and customer id: a projected scan."""
        found: list[Account] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": "attribute_exists(match_threshold)",
            "ProjectionExpression": "tenant, #p, marketplace_customer_id",
            "ExpressionAttributeNames": {"#p": "plan"},
        }
        try:
            while True:
                page = self._db.scan(**kwargs)
                for item in page.get("Items", []):
                    found.append(
                        Account(
                            tenant=item["tenant"]["S"],
                            plan=item.get("plan", {}).get("S"),
                            customer=item.get("marketplace_customer_id", {}).get("S"),
                        )
                    )
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except ClientError as exc:
            raise DependencyFailed(f"DynamoDB tenants scan failed: {_code(exc)}") from exc
        return sorted(found, key=lambda a: a.tenant)

    def set_customer(self, tenant: str, customer: str | None) -> None:
        update = (
            {"UpdateExpression": "REMOVE marketplace_customer_id"}
            if customer is None
            else {
                "UpdateExpression": "SET marketplace_customer_id = :c",
                "ExpressionAttributeValues": {":c": {"S": customer}},
            }
        )
        try:
            self._db.update_item(
                TableName=self._table,
                Key={"tenant": {"S": tenant}},
                ConditionExpression="attribute_exists(match_threshold)",
                **update,
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise NotFound(f"tenant {tenant!r} does not exist") from exc
            raise DependencyFailed(f"DynamoDB tenant update failed: {_code(exc)}") from exc


class AwsMarketplace:
    """``BatchMeterUsage`` (25 records a call, AWS's limit), answers in request order."""

    BATCH = 25

    def __init__(self, client: Any, product_code: str) -> None:
        self._mm = client
        self._product = product_code

    def batch_meter(self, requests: Sequence[MeterRequest]) -> list[MeterAnswer]:
        answers: list[MeterAnswer] = []
        for start in range(0, len(requests), self.BATCH):
            answers += self._batch(requests[start : start + self.BATCH])
        return answers

    def _batch(self, requests: Sequence[MeterRequest]) -> list[MeterAnswer]:
        try:
            reply = self._mm.batch_meter_usage(
                ProductCode=self._product,
                UsageRecords=[
                    {
                        "Timestamp": r.hour,
                        "CustomerIdentifier": r.customer,
                        "Dimension": r.dimension,
                        "Quantity": r.quantity,
                    }
                    for r in requests
                ],
            )
        except ClientError as exc:
            if _code(exc) in THROTTLING:
                raise MeteringThrottled("marketplace throttled the batch") from exc
            raise DependencyFailed(f"BatchMeterUsage failed: {_code(exc)}") from exc
        by_key: dict[tuple[str, str], MeterAnswer] = {}
        for result in reply.get("Results", []):
            usage = result.get("UsageRecord", {})
            key = (str(usage.get("CustomerIdentifier")), str(usage.get("Dimension")))
            by_key[key] = MeterAnswer(str(result.get("Status")), result.get("MeteringRecordId"))
        # Unprocessed records (and any not answered) stay Pending: sent again next run.
        pending = MeterAnswer(RecordStatus.PENDING.value)
        return [by_key.get((r.customer, r.dimension), pending) for r in requests]


class StoredRecount:
    """``Recount`` from the assets and webhooks tables (the metering test's sources)."""

    def records(self, tenant: str) -> Iterable[AssetRecord]:
        from quitclaim.adapters.dynamo import DynamoAssets
        from quitclaim.usecases.ledger import every_asset

        return every_asset(DynamoAssets(), tenant)

    def delivered(self, tenant: str) -> Iterable[tuple[str, datetime]]:
        from quitclaim.adapters.webhook_store import DynamoWebhooks

        return [
            (d.event_type, d.delivered_at)
            for d in DynamoWebhooks().outbound_deliveries(tenant, "delivered", None)
            if d.delivered_at is not None
        ]
