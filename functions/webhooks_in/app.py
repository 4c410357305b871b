"""Inbound webhooks worker: apply one verified, queued delivery (SQS)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from quitclaim.bootstrap import apply_inbound_service
from quitclaim.config import get_settings
from quitclaim.edges.batch import batch_handler

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

get_settings()


def apply_record(record: SQSRecord) -> None:
    """``{"tenant", "source", "delivery_id"}``: a failure is retried, then dead-lettered."""
    item = json.loads(record.body)
    apply_inbound_service().apply(
        str(item["tenant"]), str(item["source"]), str(item["delivery_id"])
    )


handler = batch_handler("sqs", apply_record)
