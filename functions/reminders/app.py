"""Reminders: the daily schedule → renewal reminders and request reminders, each sent once."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from quitclaim.bootstrap import person_requests_service, reminders_service
from quitclaim.config import get_settings
from quitclaim.observability import audited, logger, metrics, tracer

get_settings()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@audited("invocation")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("kind") != "reminders":
        raise ValueError(f"unknown reminders event kind: {event.get('kind')!r}")
    sent = reminders_service().send_due()
    # The officer's reminders of a person's requests due in 7 and 2 days.
    return {"sent": sent, "request_reminders": person_requests_service().remind_officers()}
