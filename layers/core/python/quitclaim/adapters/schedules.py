"""EventBridge Scheduler: one-time schedules (a consent's expiry, a webhook retry)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from quitclaim.domain.errors import DependencyFailed
from quitclaim.domain.models import Consent


def schedule_name(consent: Consent) -> str:
    """≤ 64 characters of [A-Za-z0-9-_], unique per tenant and consent."""
    tenant = hashlib.sha256(consent.tenant.encode()).hexdigest()[:8]
    return f"expire-{consent.consent_id}-{tenant}"


class SchedulerExpirySchedules:
    def __init__(self, client: Any, *, group: str, target_arn: str, role_arn: str) -> None:
        self._scheduler = client
        self._group = group
        self._target = target_arn
        self._role = role_arn

    def schedule(self, consent: Consent) -> None:
        if consent.expires_at is None:
            self.cancel(consent)
            return
        params = _one_time(
            schedule_name(consent),
            self._group,
            consent.expires_at,
            self._target,
            self._role,
            {
                "kind": "consent_expiry",
                "tenant": consent.tenant,
                "subject_id": consent.subject_id,
                "consent_id": consent.consent_id,
            },
        )
        try:
            try:
                self._scheduler.create_schedule(**params)
            except ClientError as exc:
                if _code(exc) != "ConflictException":
                    raise
                self._scheduler.update_schedule(**params)  # renewal: replace the time
        except ClientError as exc:
            raise DependencyFailed(f"scheduler failed: {_code(exc)}") from exc

    def cancel(self, consent: Consent) -> None:
        try:
            self._scheduler.delete_schedule(Name=schedule_name(consent), GroupName=self._group)
        except ClientError as exc:
            if _code(exc) != "ResourceNotFoundException":
                raise DependencyFailed(f"scheduler failed: {_code(exc)}") from exc


def _one_time(
    name: str, group: str, at: datetime, target: str, role: str, payload: dict[str, str]
) -> dict[str, Any]:
    """A CreateSchedule request: invoke ``target`` once at ``at`` (UTC), then delete itself."""
    return {
        "Name": name,
        "GroupName": group,
        "ScheduleExpression": f"at({at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S')})",
        "ScheduleExpressionTimezone": "UTC",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "ActionAfterCompletion": "DELETE",
        "Target": {
            "Arn": target,
            "RoleArn": role,
            "Input": json.dumps(payload),
            "RetryPolicy": {"MaximumRetryAttempts": 10},
        },
    }


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "unknown"))


class SchedulerRetrySchedules:
    """One-time schedules that retry an outbound webhook delivery at a given time."""

    def __init__(self, client: Any, *, group: str, target_arn: str, role_arn: str) -> None:
        self._scheduler = client
        self._group = group
        self._target = target_arn
        self._role = role_arn

    def retry_at(self, tenant: str, delivery_id: str, attempt: int, at: datetime) -> None:
        """Schedule attempt number ``attempt`` (idempotent: the name carries it)."""
        digest = hashlib.sha256(f"{tenant}#{delivery_id}".encode()).hexdigest()[:24]
        params = _one_time(
            f"webhook-{digest}-{attempt}",
            self._group,
            at,
            self._target,
            self._role,
            {"kind": "webhook_retry", "tenant": tenant, "delivery_id": delivery_id},
        )
        try:
            self._scheduler.create_schedule(**params)
        except ClientError as exc:
            if _code(exc) != "ConflictException":  # scheduled already: fine
                raise DependencyFailed(f"scheduler failed: {_code(exc)}") from exc
