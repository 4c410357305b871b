"""API keys and sign-in: the authorizer function, usage-plan keys, plan changes."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

from quitclaim.adapters.aws import aws_client
from quitclaim.adapters.dynamo import (
    DynamoApiKeys,
    DynamoTenants,
)
from quitclaim.adapters.usage_plans import ApiGatewayUsagePlanKeys
from quitclaim.bootstrap.wire_common import (
    bound_settings,
)
from quitclaim.config import Settings, get_settings
from quitclaim.usecases.keys import ApiKeys

if TYPE_CHECKING:
    from quitclaim.domain.registry import Principal
    from quitclaim.usecases.authorizer import KeyAuthorizer
    from quitclaim.usecases.plans import PlanChanges


def sign_in_tokens(settings: Settings) -> Callable[[str], Principal] | None:
    """The sign-in token verifier of the stack's user pool (None: keys only)."""
    if not (settings.user_pool_id and settings.user_pool_client_id):
        return None
    from quitclaim.adapters.user_tokens import UserTokens, issuer_of, jwks_url_of

    issuer = issuer_of(settings.region, settings.user_pool_id)
    return UserTokens(
        issuer=issuer,
        client_id=settings.user_pool_client_id,
        # Locally the emulator serves the pool's keys; in AWS the issuer does.
        jwks_url=jwks_url_of(issuer, settings.endpoint_url),
    ).principal


def usage_plan_keys() -> ApiGatewayUsagePlanKeys | None:
    """The tenants' usage-plan keys, where the stack has usage plans (not locally)."""
    settings = bound_settings(get_settings())
    plans = dict(
        pair.strip().split("=", 1) for pair in settings.usage_plan_ids.split(",") if "=" in pair
    )
    if not plans:
        return None
    return ApiGatewayUsagePlanKeys(
        aws_client("apigateway", settings), namespace=settings.usage_key_namespace, plans=plans
    )


def plan_service() -> PlanChanges:
    """The operator's plan change: stored plan and usage-plan key."""
    from quitclaim.usecases.plans import PlanChanges

    return PlanChanges(DynamoTenants(), usage_plan_keys())


@lru_cache(maxsize=1)
def authorizer_service() -> KeyAuthorizer:
    """The API's Lambda authorizer (functions/authorizer)."""
    settings = bound_settings(get_settings())
    from quitclaim.usecases.authorizer import KeyAuthorizer

    return KeyAuthorizer(
        ApiKeys(DynamoApiKeys()).resolve,
        namespace=settings.usage_key_namespace,
        resolve_token=sign_in_tokens(settings),
    )
