"""Usage and billing: the metering function, held releases, the console's usage."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from quitclaim.adapters.aws import aws_client
from quitclaim.adapters.dynamo import (
    DynamoAssets,
    DynamoUsage,
)
from quitclaim.bootstrap import current_clock
from quitclaim.bootstrap.wire_common import (
    bound_settings,
    event_publisher,
    work_queue,
)
from quitclaim.config import get_settings
from quitclaim.usecases.usage_metering import Usage

if TYPE_CHECKING:
    from quitclaim.usecases.billing_runs import Billing


@lru_cache(maxsize=1)
def usage_service() -> Usage:
    """Usage export, API-call metering, and releases of uploads held over quota."""
    settings = bound_settings(get_settings())
    return Usage(
        meter=DynamoUsage(),
        assets=DynamoAssets(),
        clock=current_clock(),
        ingest=work_queue(settings, settings.ingest_queue_url),
    )


@lru_cache(maxsize=1)
def billing_service() -> Billing:
    """Hourly Marketplace metering, the usage.hourly event, reconciliation (docs/billing.md)."""
    from quitclaim.adapters.billing_store import AwsMarketplace, DynamoLedgers, StoredRecount
    from quitclaim.usecases.billing_runs import Billing

    settings = bound_settings(get_settings())
    code = settings.marketplace_product_code
    return Billing(
        ledgers=DynamoLedgers(aws_client("dynamodb", settings), settings.tenants_table),
        meter=DynamoUsage(),
        clock=current_clock(),
        marketplace=AwsMarketplace(aws_client("meteringmarketplace", settings), code)
        if code
        else None,
        events=event_publisher(settings),
        recount=StoredRecount(),
    )
