"""Inbound webhooks worker: apply one verified, queued delivery (SQS)."""

from __future__ import annotations

import json

from aws_lambda_powertools.utilities.batch import EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from quitclaim.bootstrap import apply_inbound_service
from quitclaim.config import get_settings
from quitclaim.edges.batch import batch_handler

get_settings()


def apply_record(record: SQSRecord) -> None:
    """``{"tenant", "source", "delivery_id"}``: a failure is retried, then dead-lettered."""
    item = json.loads(record.body)
    apply_inbound_service().apply(
        str(item["tenant"]), str(item["source"]), str(item["delivery_id"])
    )


handler = batch_handler(EventType.SQS, apply_record)
