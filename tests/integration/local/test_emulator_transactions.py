"""TransactWriteItems on the emulator keeps DynamoDB's all-or-nothing (gap 18).

The emulator checks every condition before it writes (moto copied whole tables
to roll back instead); these pin the semantics the adapters rely on, over HTTP
with real boto3: a cancelled transaction writes nothing and names each
operation's reason, a passing one writes everything.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from devstack.emulator import Emulator

pytestmark = pytest.mark.integration


@pytest.fixture
def table() -> Iterator[tuple[Any, str]]:
    with Emulator() as emulator:
        ddb = emulator.client("dynamodb", "eu-central-1")
        name = f"tx-{uuid.uuid4().hex[:12]}"
        ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for n in range(50):  # a table with other items in it
            ddb.put_item(TableName=name, Item={"pk": {"S": f"other-{n}"}, "n": {"N": "0"}})
        ddb.put_item(TableName=name, Item={"pk": {"S": "counter"}, "n": {"N": "1"}})
        try:
            yield ddb, name
        finally:
            ddb.delete_table(TableName=name)


def _put_new(name: str, pk: str) -> dict[str, Any]:
    return {
        "Put": {
            "TableName": name,
            "Item": {"pk": {"S": pk}, "n": {"N": "7"}},
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }


def _add_if(name: str, expected: str) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": name,
            "Key": {"pk": {"S": "counter"}},
            "UpdateExpression": "ADD n :one",
            "ConditionExpression": "n = :expected",
            "ExpressionAttributeValues": {":one": {"N": "1"}, ":expected": {"N": expected}},
        }
    }


def _item(ddb: Any, name: str, pk: str) -> dict[str, Any] | None:
    got: dict[str, Any] | None = ddb.get_item(
        TableName=name, Key={"pk": {"S": pk}}, ConsistentRead=True
    ).get("Item")
    return got


def test_a_failed_condition_cancels_every_write(table: tuple[Any, str]) -> None:
    ddb, name = table
    # When a transaction puts a new item and updates the counter on a stale condition
    with pytest.raises(ClientError) as raised:
        ddb.transact_write_items(TransactItems=[_put_new(name, "new"), _add_if(name, "5")])
    # Then it is cancelled with each operation's reason, and neither write happened
    error = raised.value.response
    assert error["Error"]["Code"] == "TransactionCanceledException"
    codes = [reason.get("Code") for reason in error["CancellationReasons"]]
    assert codes == ["None", "ConditionalCheckFailed"]
    assert _item(ddb, name, "new") is None
    assert _item(ddb, name, "counter") == {"pk": {"S": "counter"}, "n": {"N": "1"}}


def test_a_transaction_whose_conditions_hold_writes_everything(table: tuple[Any, str]) -> None:
    ddb, name = table
    # When every condition holds
    ddb.transact_write_items(TransactItems=[_put_new(name, "new"), _add_if(name, "1")])
    # Then both writes landed
    assert _item(ddb, name, "new") == {"pk": {"S": "new"}, "n": {"N": "7"}}
    assert _item(ddb, name, "counter") == {"pk": {"S": "counter"}, "n": {"N": "2"}}
    # and the same transaction again is cancelled by both conditions, changing nothing
    with pytest.raises(ClientError) as raised:
        ddb.transact_write_items(TransactItems=[_put_new(name, "new"), _add_if(name, "1")])
    codes = [r.get("Code") for r in raised.value.response["CancellationReasons"]]
    assert codes == ["ConditionalCheckFailed", "ConditionalCheckFailed"]
    assert _item(ddb, name, "counter") == {"pk": {"S": "counter"}, "n": {"N": "2"}}


def test_two_operations_on_one_item_are_refused(table: tuple[Any, str]) -> None:
    ddb, name = table
    # When one transaction touches the counter twice
    with pytest.raises(ClientError) as raised:
        ddb.transact_write_items(TransactItems=[_add_if(name, "1"), _add_if(name, "1")])
    # Then DynamoDB's validation error, and the counter is untouched
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert _item(ddb, name, "counter") == {"pk": {"S": "counter"}, "n": {"N": "1"}}


def test_a_write_that_fails_itself_restores_the_writes_before_it(table: tuple[Any, str]) -> None:
    ddb, name = table
    # When the second write's update is invalid for the stored type (a string ADDed to a number)
    bad = _add_if(name, "1")
    bad["Update"]["ExpressionAttributeValues"][":one"] = {"S": "x"}
    with pytest.raises(ClientError):
        ddb.transact_write_items(TransactItems=[_put_new(name, "new"), bad])
    # Then the first write was undone: all or nothing
    assert _item(ddb, name, "new") is None
    assert _item(ddb, name, "counter") == {"pk": {"S": "counter"}, "n": {"N": "1"}}
