"""Expiry: exact-time schedules, the hourly sweep, TTL purges, held releases, retention."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quitclaim.bootstrap import expiry_service, retention_service, usage_service
from quitclaim.config import get_settings
from quitclaim.edges.batch import batch_handler

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

get_settings()


def purge_record(record: DynamoDBRecord) -> None:
    """A subject item removed by TTL: purge what hangs off it."""
    old = record.dynamodb.old_image if record.dynamodb else {}
    expiry_service().purge_subject(str(old["tenant"]), str(old["subject_id"]))


def scheduled(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The schedules' invocations (no records), by ``kind``."""
    kind = event.get("kind")
    if kind == "consent_expiry":
        expired = expiry_service().expire_consent(
            str(event["tenant"]), str(event["subject_id"]), str(event["consent_id"])
        )
        return {"expired": int(expired)}
    if kind == "sweep":
        return {"expired": expiry_service().sweep()}
    if kind == "release_held":
        # Daily: a new UTC month makes room in every quota; held uploads go to ingest again.
        return {"released": usage_service().release_all()}
    if kind == "retention":
        # Daily: quarantined images of unknown people and rejected uploads past their days.
        return {"deleted": retention_service().run_all()}
    raise ValueError(f"unknown expiry event kind: {kind!r}")


handler = batch_handler("stream", purge_record, otherwise=scheduled)
