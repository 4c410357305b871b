"""Accuracy audit worker: run one queued audit job (SQS; docs/accuracy-audit.md)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from quitclaim.bootstrap import accuracy_jobs_service
from quitclaim.config import get_settings
from quitclaim.edges.batch import batch_handler

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

get_settings()


def run_record(record: SQSRecord) -> None:
    """``{"tenant", "job_id"}``: the job records its own failure; only a crash is retried."""
    item = json.loads(record.body)
    accuracy_jobs_service().run(str(item["tenant"]), str(item["job_id"]))


handler = batch_handler("sqs", run_record)
