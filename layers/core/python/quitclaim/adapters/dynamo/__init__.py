"""The DynamoDB adapters: the tables (``tables``) and one repository module per port.

``plumbing`` holds what every repository shares (tenant keys, page cursors,
error mapping, transactions). The names below are re-exported so callers can
say ``from quitclaim.adapters.dynamo import DynamoAssets``.
"""

from quitclaim.adapters.dynamo.api_key_store import DynamoApiKeys
from quitclaim.adapters.dynamo.asset_store import DynamoAssets
from quitclaim.adapters.dynamo.consent_store import DynamoConsents
from quitclaim.adapters.dynamo.plumbing import (
    MAX_TRANSACTION_ITEMS,
    SEP,
    decode_cursor,
    encode_cursor,
    tenant_key,
)
from quitclaim.adapters.dynamo.request_log import DynamoRequests
from quitclaim.adapters.dynamo.subject_store import DynamoSubjects
from quitclaim.adapters.dynamo.tables import (
    ApiKeyModel,
    AppearanceModel,
    AssetModel,
    AssetsByStatus,
    ConsentModel,
    ConsentsByExpiryDay,
    ConsentsByTenantExpiry,
    HistoryEvent,
    RequestModel,
    SubjectModel,
    SubjectsByEmail,
    SubjectsByExternalRef,
    TenantModel,
    UsageModel,
    WebhookModel,
    bind_models,
)
from quitclaim.adapters.dynamo.tenant_store import DynamoTenants
from quitclaim.adapters.dynamo.usage_meter import DynamoUsage, usage_key, usage_update

__all__ = [
    "MAX_TRANSACTION_ITEMS",
    "SEP",
    "ApiKeyModel",
    "AppearanceModel",
    "AssetModel",
    "AssetsByStatus",
    "ConsentModel",
    "ConsentsByExpiryDay",
    "ConsentsByTenantExpiry",
    "DynamoApiKeys",
    "DynamoAssets",
    "DynamoConsents",
    "DynamoRequests",
    "DynamoSubjects",
    "DynamoTenants",
    "DynamoUsage",
    "HistoryEvent",
    "RequestModel",
    "SubjectModel",
    "SubjectsByEmail",
    "SubjectsByExternalRef",
    "TenantModel",
    "UsageModel",
    "WebhookModel",
    "bind_models",
    "decode_cursor",
    "encode_cursor",
    "tenant_key",
    "usage_key",
    "usage_update",
]
