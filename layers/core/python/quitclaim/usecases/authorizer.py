"""The API's Lambda authorizer: an API key or sign-in token to its tenant's usage-plan key.

API Gateway calls it before the API function (key source ``AUTHORIZER``):
it resolves the presented key as the API does (``ApiKeys.resolve``, one
consistent read; revoked, expired or unknown keys are ``Unauthorized``) and
answers an Allow for this one method with ``usageIdentifierKey`` = the
tenant's API Gateway key, so the tenant's usage plan throttles and meters the
request before any function runs. A person's sign-in token (docs/sign-in.md)
is verified the same way the API verifies it and meters on the same tenant
key. Roles are still the API's to check; the in-app token bucket stays as the
second line. The result is not cached (TTL
0, docs/access.md): a revoked key is refused on its next request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from quitclaim.api.auth import identify
from quitclaim.domain.registry import Principal
from quitclaim.domain.tenancy import usage_key_value


class KeyAuthorizer:
    def __init__(
        self,
        resolve_key: Callable[[str], Principal],
        *,
        namespace: str,
        resolve_token: Callable[[str], Principal] | None = None,
    ) -> None:
        self._resolve = resolve_key
        self._resolve_token = resolve_token
        self._namespace = namespace

    def authorize(self, headers: Mapping[str, str], method_arn: str) -> dict[str, Any]:
        """The authorizer's answer (``Unauthorized`` when the key or token is not live).

        ``headers`` must be case-insensitive, as for ``secret_from_headers``.
        """
        principal = identify(headers, self._resolve, self._resolve_token)
        return {
            "principalId": principal.key_id,
            "policyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": method_arn}
                ],
            },
            "usageIdentifierKey": usage_key_value(self._namespace, principal.tenant),
            # Ids only (API Gateway logs may show the context): never a name or secret.
            "context": {
                "tenant": principal.tenant,
                "key_id": principal.key_id,
                "role": principal.role.value,
            },
        }
