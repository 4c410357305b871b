"""Ingest: SQS batch of S3 ObjectCreated events → admission → scan_asset, partial failures."""

from __future__ import annotations

from typing import TYPE_CHECKING

from quitclaim.bootstrap import admission_service, scan_asset_service
from quitclaim.config import get_settings
from quitclaim.edges.ingest_batch import ingest_handler, scan_uploads

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

# Validated at cold start: a container outside the EU refuses to run at all.
get_settings()


def record_handler(record: SQSRecord) -> None:
    """Scan every upload one message names; raising returns the message."""
    scan_uploads(scan_asset_service(), record.body)


# Looked up per batch: tests and the local stack swap the services.
handler = ingest_handler(record_handler, lambda: admission_service())
