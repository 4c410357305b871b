"""The ingest handler settles a batch: forwards acked, failed sends and scans returned."""

from __future__ import annotations

import importlib.util
import json
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from quitclaim.domain.ports import LANE_ATTRIBUTE
from quitclaim.usecases.admit_uploads import Admission
from tests.conftest import REPO_ROOT
from tests.unit.fakes import FixedClock
from tests.unit.test_admission import NOW, FakeBulkLane, FakeCounter, s3_event


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    path = REPO_ROOT / "functions" / "ingest" / "app.py"
    spec = importlib.util.spec_from_file_location("_ingest_app_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Scanner:
    """Stands in for scan_asset: records keys, fails those it is told to."""

    def __init__(self, failing: set[str]) -> None:
        self.failing = failing
        self.scanned: list[str] = []

    def __call__(self, request: Any) -> Any:
        if request.key in self.failing:
            raise RuntimeError("scan failed")
        self.scanned.append(request.key)
        return SimpleNamespace(asset_id="x", duplicate=False)


def record(n: int, tenant: str = "a", *, bulk: bool = False) -> dict[str, Any]:
    attributes = {LANE_ATTRIBUTE: {"stringValue": "bulk", "dataType": "String"}} if bulk else {}
    return {
        "messageId": f"{tenant}-{n}",
        "receiptHandle": "r",
        "body": s3_event(f"incoming/{tenant}/{n}.jpg"),
        "attributes": {},
        "messageAttributes": attributes,
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-central-1:123456789012:q",
        "awsRegion": "eu-central-1",
    }


CONTEXT = SimpleNamespace(
    function_name="ingest",
    memory_limit_in_mb=2048,
    invoked_function_arn="arn:aws:lambda:eu-central-1:123456789012:function:ingest",
    aws_request_id="req",
)


def wire(
    monkeypatch: pytest.MonkeyPatch, app: ModuleType, bulk: FakeBulkLane, scanner: Scanner
) -> None:
    lanes = Admission(counter=FakeCounter(), bulk=bulk, clock=FixedClock(NOW), share=2, window_s=60)
    monkeypatch.setattr(app, "admission_service", lambda: lanes)
    monkeypatch.setattr(app, "scan_asset_service", lambda: scanner)


def failures(response: dict[str, Any]) -> list[str]:
    return sorted(f["itemIdentifier"] for f in response["batchItemFailures"])


def test_forwards_are_acknowledged_and_a_failed_send_or_scan_comes_back(
    monkeypatch: pytest.MonkeyPatch, app: ModuleType
) -> None:
    # Given a share of 2: a-0 and a-1 are scanned (a-1 fails), a-2 forwarded, a-3's send fails
    bulk, scanner = FakeBulkLane(refuse={"a-3"}), Scanner({"incoming/a/1.jpg"})
    wire(monkeypatch, app, bulk, scanner)
    # When the handler gets the batch
    response = app.handler({"Records": [record(i) for i in range(4)]}, CONTEXT)
    # Then only the failed scan and the failed send come back; a-2 is on the bulk lane
    assert failures(response) == ["a-1", "a-3"]
    assert scanner.scanned == ["incoming/a/0.jpg"]
    assert [json.loads(m.body) for m in bulk.sent] == [json.loads(record(2)["body"])]


def test_all_scans_failing_returns_only_the_scans_when_some_were_forwarded(
    monkeypatch: pytest.MonkeyPatch, app: ModuleType
) -> None:
    bulk, scanner = FakeBulkLane(), Scanner({"incoming/a/0.jpg", "incoming/a/1.jpg"})
    wire(monkeypatch, app, bulk, scanner)
    response = app.handler({"Records": [record(i) for i in range(3)]}, CONTEXT)
    assert failures(response) == ["a-0", "a-1"]
    assert len(bulk.sent) == 1


def test_all_scans_failing_with_nothing_forwarded_is_a_function_error_as_before(
    monkeypatch: pytest.MonkeyPatch, app: ModuleType
) -> None:
    bulk, scanner = FakeBulkLane(), Scanner({"incoming/a/0.jpg"})
    wire(monkeypatch, app, bulk, scanner)
    with pytest.raises(BatchProcessingError):
        app.handler({"Records": [record(0)]}, CONTEXT)


def test_bulk_lane_messages_are_scanned_whatever_the_count(
    monkeypatch: pytest.MonkeyPatch, app: ModuleType
) -> None:
    bulk, scanner = FakeBulkLane(), Scanner(set())
    wire(monkeypatch, app, bulk, scanner)
    response = app.handler({"Records": [record(i, bulk=True) for i in range(5)]}, CONTEXT)
    assert failures(response) == []
    assert len(scanner.scanned) == 5 and bulk.sent == []
