"""I1 (issue 19) at the adapter: a decision and its appearance rows, on the local DynamoDB.

A withdrawal finds a person's images only through their appearance rows, so
no decision may exist without them: they are written in the decision's own
TransactWriteItems, or, when there are more than one transaction holds, all
of them before it.
"""

from __future__ import annotations

from typing import Any

import pytest

from quitclaim.adapters.dynamo import MAX_TRANSACTION_ITEMS, DynamoAssets, bind_models
from quitclaim.config import get_settings
from quitclaim.domain.errors import Conflict, DependencyFailed
from quitclaim.domain.models import AssetStatus
from quitclaim.domain.records import AssetRecord, FaceRecord
from quitclaim.domain.usage import UsageIncrement
from tests.conftest import DEMO_NOW
from tests.integration.faults import after_call, failing_calls, table

pytestmark = pytest.mark.integration
TENANT = "it-reach-adapter"


@pytest.fixture(scope="module")
def stack(local_stack: Any) -> Any:
    bind_models(get_settings())
    return local_stack


def _record(asset_id: str, people: int) -> AssetRecord:
    faces = tuple(
        FaceRecord([i, 0, i + 10, 10], 0, True, f"sub_{i:04d}", 0.3, f"con_{i}", "valid", None)
        for i in range(people)
    )
    return AssetRecord(
        tenant=TENANT,
        asset_id=asset_id,
        source_bucket="uploads",
        source_key=f"incoming/{TENANT}/{asset_id}.jpg",
        source_version="v1",
        path=f"{asset_id}.jpg",
        purpose="web",
        status=AssetStatus.APPROVED,
        reasons=(),
        dest_bucket="library",
        dest_key=f"{TENANT}/{asset_id}.jpg",
        decided_at=DEMO_NOW,
        faces=faces,
    )


def _usage() -> UsageIncrement:
    return UsageIncrement(TENANT, "2026-11", {"images_scanned": 1}, None)


def _reached(record: AssetRecord) -> list[str]:
    """The subjects of ``record`` whose appearance row finds it."""
    assets = DynamoAssets()
    return [s for s in record.subject_ids if record.asset_id in assets.appearances(TENANT, s)]


def test_a_decision_and_its_appearance_rows_are_written_together_or_not_at_all(
    stack: Any,
) -> None:
    assets, record = DynamoAssets(), _record("ast_together", 3)
    appearances = table(stack.resources["AppearancesTable"])
    # When the one transaction that writes them fails, nothing of it is written
    with (
        failing_calls(
            "dynamodb", "TransactWriteItems", "ThrottlingException", times=1, match=appearances
        ) as hit,
        pytest.raises(DependencyFailed),
    ):
        assets.create(record, _usage())
    assert hit[0] == 1
    assert assets.get(TENANT, record.asset_id) is None and _reached(record) == []
    # When it is written, record and rows come in one TransactWriteItems, no other write
    with (
        after_call("dynamodb", "TransactWriteItems", lambda: None, times=9) as tx,
        after_call("dynamodb", "BatchWriteItem", lambda: None, times=9) as batch,
    ):
        assert assets.create(record, _usage()) is True
    assert (tx[0], batch[0]) == (1, 0)
    assert _reached(record) == list(record.subject_ids)


def test_a_refused_replace_writes_no_appearance_row(stack: Any) -> None:
    assets, record = DynamoAssets(), _record("ast_refused", 0)
    assert assets.create(record)
    changed = _record("ast_refused", 2)
    # When a replace carrying rows finds the record changed meanwhile
    with pytest.raises(Conflict):
        assets.replace(changed, expected_version=7, appearances=changed.subject_ids)
    # Then neither the record nor a row was written
    assert _reached(changed) == []
    # And with the right version both are
    assets.replace(changed, expected_version=1, appearances=changed.subject_ids)
    assert _reached(changed) == list(changed.subject_ids)


def test_more_people_than_one_transaction_holds_have_their_rows_first(stack: Any) -> None:
    assets, record = DynamoAssets(), _record("ast_crowd", MAX_TRANSACTION_ITEMS + 50)
    decision = table(stack.resources["AssetsTable"])
    # When the decision's own write fails after the rows went first
    with (
        failing_calls(
            "dynamodb", "TransactWriteItems", "ThrottlingException", times=1, match=decision
        ) as hit,
        pytest.raises(DependencyFailed),
    ):
        assets.create(record, _usage())
    # Then there is no decision (nothing can be placed), and every row is there
    assert hit[0] == 1
    assert assets.get(TENANT, record.asset_id) is None
    assert len(_reached(record)) == MAX_TRANSACTION_ITEMS + 50
    # And a retry writes the decision, its rows complete
    assert assets.create(record, _usage()) is True
    stored = assets.get(TENANT, record.asset_id)
    assert stored is not None and len(stored.subject_ids) == MAX_TRANSACTION_ITEMS + 50
    assert len(_reached(record)) == MAX_TRANSACTION_ITEMS + 50
