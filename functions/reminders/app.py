"""Reminders: the daily schedule → renewal and request reminders, each sent once; the digest."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from quitclaim.bootstrap import (
    digest_service,
    mail_feedback_service,
    person_requests_service,
    reminders_service,
)
from quitclaim.config import get_settings
from quitclaim.observability import lambda_handler

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

get_settings()


@lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "Records" in event:
        # SES bounce and complaint notifications, through an SNS subscription.
        marked = 0
        for record in event["Records"]:
            if record.get("EventSource") == "aws:sns":
                notification = json.loads(record["Sns"]["Message"])
                marked += int(mail_feedback_service().record(notification))
        return {"unreachable": marked}
    kind = event.get("kind")
    if kind == "digest":
        # Daily: the tenants whose digest is due today (daily, or weekly on Mondays).
        return {"digests": digest_service().send_due()}
    if kind != "reminders":
        raise ValueError(f"unknown reminders event kind: {kind!r}")
    sent = reminders_service().send_due()
    # The officer's reminders of a person's requests due in 7 and 2 days.
    requests = person_requests_service()
    reminded = requests.remind_officers()
    # Then what a person's requests leave behind: stale unverified ones, old export ZIPs.
    return {"sent": sent, "request_reminders": reminded, "request_sweep": requests.sweep()}
