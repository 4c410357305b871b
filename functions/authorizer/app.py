"""API Gateway's Lambda authorizer (REQUEST): an API key to its tenant's usage-plan key.

The logic is ``quitclaim.usecases.authorizer``; this only shapes the event.
It audits nothing (a read), so its audit block stays empty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quitclaim.bootstrap import authorizer_service
from quitclaim.config import get_settings
from quitclaim.domain.errors import Unauthorized
from quitclaim.observability import lambda_handler

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

get_settings()


class Refused(Exception):
    """API Gateway answers 401 for an authorizer error whose message is "Unauthorized"."""


@lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Lower-cased: HTTP header names are case-insensitive, the lookup is not.
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    try:
        return authorizer_service().authorize(headers, str(event.get("methodArn") or ""))
    except Unauthorized:
        raise Refused("Unauthorized") from None
