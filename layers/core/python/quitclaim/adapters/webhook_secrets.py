"""Webhook signing secrets in SSM Parameter Store (SecureString, the stack's key).

One parameter per tenant and source or endpoint:
``{prefix}/{tenant}/{kind}/{name}`` holding ``{"current": "whsec_...",
"previous": "whsec_...", "previous_until": "<ISO time>"}``. A rotation keeps
the previous secret valid until ``previous_until`` (the overlap window).
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from quitclaim.domain.errors import DependencyFailed
from quitclaim.domain.webhooks import SecretSet

_CACHE_SECONDS = 60.0


class SsmWebhookSecrets:
    """The ``WebhookSecrets`` port (cached per container for a minute)."""

    def __init__(self, client: Any, prefix: str, key_id: str | None) -> None:
        self._ssm = client
        self._prefix = prefix.rstrip("/")
        self._key_id = key_id or None
        self._cache: dict[str, tuple[float, SecretSet | None]] = {}

    def name(self, tenant: str, kind: str, name: str) -> str:
        return f"{self._prefix}/{tenant}/{kind}/{name}"

    def get(self, tenant: str, kind: str, name: str, *, fresh: bool = False) -> SecretSet | None:
        parameter = self.name(tenant, kind, name)
        cached = self._cache.get(parameter)
        if cached and not fresh and time.monotonic() - cached[0] < _CACHE_SECONDS:
            return cached[1]
        try:
            answer = self._ssm.get_parameter(Name=parameter, WithDecryption=True)
        except ClientError as exc:
            if _code(exc) == "ParameterNotFound":
                self._cache[parameter] = (time.monotonic(), None)
                return None
            raise DependencyFailed(f"secret read failed: {_code(exc)}") from exc
        value = json.loads(answer["Parameter"]["Value"])
        found = SecretSet(
            current=value["current"],
            previous=value.get("previous"),
            previous_until=(
                datetime.fromisoformat(value["previous_until"])
                if value.get("previous_until")
                else None
            ),
        )
        self._cache[parameter] = (time.monotonic(), found)
        return found

    def put(self, tenant: str, kind: str, name: str, value: SecretSet) -> None:
        parameter = self.name(tenant, kind, name)
        body = {
            "current": value.current,
            "previous": value.previous,
            "previous_until": value.previous_until.isoformat() if value.previous_until else None,
        }
        params: dict[str, Any] = {
            "Name": parameter,
            "Value": json.dumps(body),
            "Type": "SecureString",
            "Overwrite": True,
        }
        if self._key_id:
            params["KeyId"] = self._key_id
        try:
            self._ssm.put_parameter(**params)
        except ClientError as exc:
            raise DependencyFailed(f"secret write failed: {_code(exc)}") from exc
        self._cache[parameter] = (time.monotonic(), value)

    def delete(self, tenant: str, kind: str, name: str) -> None:
        parameter = self.name(tenant, kind, name)
        try:
            self._ssm.delete_parameter(Name=parameter)
        except ClientError as exc:
            if _code(exc) != "ParameterNotFound":
                raise DependencyFailed(f"secret delete failed: {_code(exc)}") from exc
        self._cache.pop(parameter, None)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "unknown"))
