"""Recheck: consents stream → re-decide the assets of each changed subject."""

from __future__ import annotations

from typing import TYPE_CHECKING

from quitclaim.bootstrap import recheck_service
from quitclaim.config import get_settings
from quitclaim.edges.batch import batch_handler

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

get_settings()


def record_handler(record: DynamoDBRecord) -> None:
    """One consent changed: re-decide every asset its subject appears in."""
    image = record.dynamodb.new_image if record.dynamodb else {}
    recheck_service().recheck_subject(
        str(image["tenant"]), str(image["subject_id"]), actor="consents-stream"
    )


handler = batch_handler("stream", record_handler)
