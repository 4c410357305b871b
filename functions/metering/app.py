"""Metering: hourly usage to AWS Marketplace and the usage.hourly event; daily reconciliation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quitclaim.bootstrap import billing_service
from quitclaim.config import get_settings
from quitclaim.observability import lambda_handler

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

get_settings()


@lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    kind = event.get("kind")
    if kind == "meter_hour":
        return billing_service().run_hour()
    if kind == "reconcile":
        # Daily: this month and the last, to the operator digest's hook.
        return {"differences": billing_service().reconcile_daily()}
    raise ValueError(f"unknown metering event kind: {kind!r}")
