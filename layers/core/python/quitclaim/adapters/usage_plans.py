"""API Gateway usage plans: one API key per tenant, on its plan's usage plan.

The key is what API Gateway meters and throttles (the API's key source is
``AUTHORIZER``: the authorizer names it per request, clients never send it).
Created when a tenant is created, moved when its plan changes; the client is
injected (``apigateway``), the usage plans' ids come from the stack's outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from quitclaim.domain.errors import DependencyFailed, ValidationFailed
from quitclaim.domain.tenancy import usage_key_name, usage_key_value


class ApiGatewayUsagePlanKeys:
    """``UsagePlanKeys`` on API Gateway (``plans``: plan name -> usage plan id).

    Also a ``TenantDataStore`` for offboarding: the purge takes the key off
    its usage plan and deletes it, and its count proves it gone.
    """

    name = "apigateway:usage-key"

    def __init__(self, client: Any, *, namespace: str, plans: Mapping[str, str]) -> None:
        self._apigw = client
        self._namespace = namespace
        self._plans = dict(plans)

    def attach(self, tenant: str, plan: str) -> None:
        target = self._plans.get(plan)
        if target is None:
            raise ValidationFailed(f"no usage plan for the plan {plan!r}", field="plan")
        try:
            key_id = self._key_id(tenant)
            for name, usage_plan in self._plans.items():
                if name != plan:
                    self._detach(usage_plan, key_id)
            try:
                self._apigw.create_usage_plan_key(
                    usagePlanId=target, keyId=key_id, keyType="API_KEY"
                )
            except ClientError as exc:
                if _code(exc) != "ConflictException":  # already on it: nothing to do
                    raise
        except ClientError as exc:
            raise DependencyFailed(f"usage plans failed: {_code(exc)}") from exc

    def plan_of(self, tenant: str) -> str | None:
        """The plan whose usage plan holds the tenant's key (None: on none)."""
        try:
            key_id = self._find(tenant)
            if key_id is None:
                return None
            return next(
                (name for name, plan in self._plans.items() if self._holds(plan, key_id)), None
            )
        except ClientError as exc:
            raise DependencyFailed(f"usage plans failed: {_code(exc)}") from exc

    def count(self, tenant: str) -> int:
        try:
            return 0 if self._find(tenant) is None else 1
        except ClientError as exc:
            raise DependencyFailed(f"usage plans failed: {_code(exc)}") from exc

    def purge(self, tenant: str) -> int:
        try:
            key_id = self._find(tenant)
            if key_id is None:
                return 0
            # Off every usage plan first: not every API Gateway drops them with the key.
            for usage_plan in self._plans.values():
                self._detach(usage_plan, key_id)
            self._apigw.delete_api_key(apiKey=key_id)
        except ClientError as exc:
            raise DependencyFailed(f"usage plans failed: {_code(exc)}") from exc
        return 1

    def _key_id(self, tenant: str) -> str:
        found = self._find(tenant)
        if found is not None:
            return found
        created = self._apigw.create_api_key(
            name=usage_key_name(self._namespace, tenant),
            description="Quitclaim: the tenant's usage-plan key (named by the authorizer)",
            enabled=True,
            value=usage_key_value(self._namespace, tenant),
        )
        return str(created["id"])

    def _find(self, tenant: str) -> str | None:
        name = usage_key_name(self._namespace, tenant)
        # nameQuery matches prefixes: keep the exact name only.
        found = self._apigw.get_api_keys(nameQuery=name, limit=500).get("items", [])
        return next((str(k["id"]) for k in found if k.get("name") == name), None)

    def _holds(self, usage_plan: str, key_id: str) -> bool:
        pages = self._apigw.get_paginator("get_usage_plan_keys").paginate(usagePlanId=usage_plan)
        return any(k["id"] == key_id for page in pages for k in page.get("items", []))

    def _detach(self, usage_plan: str, key_id: str) -> None:
        # Only where it is: deleting an absent key is an error (a 500 on the emulator).
        if self._holds(usage_plan, key_id):
            self._apigw.delete_usage_plan_key(usagePlanId=usage_plan, keyId=key_id)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))
