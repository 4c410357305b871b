"""Composition root: builds adapters and use-cases once per container, per area, on demand.

Each ``wire_*`` module builds one area (the stores and use-cases it needs);
this package names every accessor and imports an area only when one of its
accessors is first called. So importing the package, or a name from it, costs
a function's cold start nothing, and each function pays only for the areas
its invocations use (``make bench``: handler_init).
"""

from __future__ import annotations

import sys
from importlib import import_module
from typing import TYPE_CHECKING, Any

from quitclaim import observability

if TYPE_CHECKING:
    from quitclaim.bootstrap.wire_access import authorizer_service, plan_service, usage_plan_keys
    from quitclaim.bootstrap.wire_accuracy import (
        accuracy_audit_service,
        accuracy_evidence,
        accuracy_jobs_service,
    )
    from quitclaim.bootstrap.wire_api import (
        api_keys_service,
        asset_listing_service,
        consent_admin_service,
        dashboard_service,
        monthly_bill_service,
        onboarding_service,
        processing_records_service,
        request_gate,
        review_service,
        subject_admin_service,
        tenant_admin_service,
    )
    from quitclaim.bootstrap.wire_audit import audit_reader_service, audit_trail_service
    from quitclaim.bootstrap.wire_common import face_engine, galleries
    from quitclaim.bootstrap.wire_decisions import (
        admission_service,
        expiry_service,
        recheck_service,
        redaction_service,
        retention_service,
        scan_asset_service,
    )
    from quitclaim.bootstrap.wire_metering import billing_service, usage_service
    from quitclaim.bootstrap.wire_operator import (
        backlog_service,
        backlog_source,
        conservation_service,
        offboarding_service,
    )
    from quitclaim.bootstrap.wire_people import (
        consent_import_service,
        consent_mail,
        digest_service,
        forms_service,
        link_pages_service,
        mail_feedback_service,
        person_requests_service,
        public_limits,
        registry_service,
        reminders_service,
        rights_service,
    )
    from quitclaim.bootstrap.wire_webhooks import (
        apply_inbound_service,
        webhook_admin,
        webhook_dispatcher,
        webhook_inbox,
    )
    from quitclaim.domain.ports import Clock

# Every public accessor, and the area module that builds it.
AREAS: dict[str, str] = {
    "face_engine": "wire_common",
    "galleries": "wire_common",
    "recheck_service": "wire_decisions",
    "redaction_service": "wire_decisions",
    "scan_asset_service": "wire_decisions",
    "admission_service": "wire_decisions",
    "expiry_service": "wire_decisions",
    "retention_service": "wire_decisions",
    "usage_service": "wire_metering",
    "billing_service": "wire_metering",
    "registry_service": "wire_people",
    "consent_mail": "wire_people",
    "link_pages_service": "wire_people",
    "person_requests_service": "wire_people",
    "rights_service": "wire_people",
    "reminders_service": "wire_people",
    "forms_service": "wire_people",
    "mail_feedback_service": "wire_people",
    "digest_service": "wire_people",
    "consent_import_service": "wire_people",
    "public_limits": "wire_people",
    "usage_plan_keys": "wire_access",
    "plan_service": "wire_access",
    "authorizer_service": "wire_access",
    "audit_trail_service": "wire_audit",
    "audit_reader_service": "wire_audit",
    "accuracy_audit_service": "wire_accuracy",
    "accuracy_jobs_service": "wire_accuracy",
    "accuracy_evidence": "wire_accuracy",
    "webhook_admin": "wire_webhooks",
    "webhook_inbox": "wire_webhooks",
    "apply_inbound_service": "wire_webhooks",
    "webhook_dispatcher": "wire_webhooks",
    "tenant_admin_service": "wire_api",
    "subject_admin_service": "wire_api",
    "consent_admin_service": "wire_api",
    "api_keys_service": "wire_api",
    "onboarding_service": "wire_api",
    "request_gate": "wire_api",
    "review_service": "wire_api",
    "asset_listing_service": "wire_api",
    "dashboard_service": "wire_api",
    "monthly_bill_service": "wire_api",
    "processing_records_service": "wire_api",
    "offboarding_service": "wire_operator",
    "conservation_service": "wire_operator",
    "backlog_service": "wire_operator",
    "backlog_source": "wire_operator",
}
# Kept across resets: the engine's models load once per process (seconds).
_KEPT = frozenset({"face_engine"})

_clock: Clock | None = None  # None: the system clock, made at first use


def set_clock(clock: Clock) -> None:
    """Replace the clock (the local stack's controllable time)."""
    global _clock
    _clock = clock
    reset_container(keep_settings=True)


def current_clock() -> Clock:
    global _clock
    if _clock is None:
        from quitclaim.domain.ports import SystemClock

        _clock = SystemClock()
    return _clock


def _area(name: str) -> Any:
    return import_module(f"{__name__}.{AREAS[name]}")


class _Deferred:
    """An accessor whose area is imported at its first call (``cache_clear`` passes on)."""

    def __init__(self, name: str) -> None:
        self.__name__ = self.__qualname__ = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(_area(self.__name__), self.__name__)(*args, **kwargs)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(getattr(_area(self.__name__), self.__name__), attribute)


if not TYPE_CHECKING:
    globals().update({name: _Deferred(name) for name in AREAS})


def reset_container(*, keep_settings: bool = False) -> None:
    """Forget everything built from settings (a new 'container' locally)."""
    from quitclaim.config import reset_settings

    if not keep_settings:
        reset_settings()
    # Only areas already imported have built anything.
    for area in sorted(set(AREAS.values())):
        module = sys.modules.get(f"{__name__}.{area}")
        if module is None:
            continue
        for name, value in vars(module).items():
            if getattr(value, "__module__", None) != module.__name__:
                continue  # imported, not built here (``get_settings`` is config's)
            if hasattr(value, "cache_clear") and name not in _KEPT:
                value.cache_clear()


def _chain_block(block_id: str, events: Any) -> None:
    # Looked up per block: the local stack swaps the container's cache.
    audit_trail_service().record_block(block_id, events)


# Every handler invocation's audit block goes to the tenants' chains.
observability.set_audit_sink(_chain_block)

__all__ = [
    "accuracy_audit_service",
    "accuracy_evidence",
    "accuracy_jobs_service",
    "admission_service",
    "api_keys_service",
    "apply_inbound_service",
    "asset_listing_service",
    "audit_reader_service",
    "audit_trail_service",
    "authorizer_service",
    "backlog_service",
    "backlog_source",
    "billing_service",
    "consent_admin_service",
    "consent_import_service",
    "consent_mail",
    "conservation_service",
    "current_clock",
    "dashboard_service",
    "digest_service",
    "expiry_service",
    "face_engine",
    "forms_service",
    "galleries",
    "link_pages_service",
    "mail_feedback_service",
    "monthly_bill_service",
    "offboarding_service",
    "onboarding_service",
    "person_requests_service",
    "plan_service",
    "processing_records_service",
    "public_limits",
    "recheck_service",
    "redaction_service",
    "registry_service",
    "reminders_service",
    "request_gate",
    "reset_container",
    "retention_service",
    "review_service",
    "rights_service",
    "scan_asset_service",
    "set_clock",
    "subject_admin_service",
    "tenant_admin_service",
    "usage_plan_keys",
    "usage_service",
    "webhook_admin",
    "webhook_dispatcher",
    "webhook_inbox",
]
