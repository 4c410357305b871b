"""The API's policy views, and the accuracy audits that advise on it (docs/accuracy-audit.md).

The router has checked each operation's role before a view runs
(``quitclaim.api.route_access``); the tenant is always the caller's.
"""

from __future__ import annotations

from typing import Any

from quitclaim import bootstrap
from quitclaim.api import routing as api_routing
from quitclaim.api.routing import Call, Reply, View
from quitclaim.api.serialize import policy_json
from quitclaim.domain.four_eyes import PolicyUpdate


def get_policy(call: Call) -> Any:
    tenants = bootstrap.tenant_admin_service()
    shaped = policy_json(tenants.policy(call.principal.tenant))
    pending = tenants.pending_policy(call.principal.tenant)
    return {**shaped, "pending_change": pending} if pending else shaped


def update_policy(call: Call) -> Any:
    tenants = bootstrap.tenant_admin_service()
    return _policy_reply(
        tenants.update_policy(call.principal.tenant, call.body.changes(), who=call.principal)
    )


def _policy_reply(update: PolicyUpdate) -> Any:
    if update.pending is not None:
        # Loosens the gate: applies once a second administrator sends the same change.
        return Reply(202, {**policy_json(update.policy), "pending_change": update.pending})
    return policy_json(update.policy)


def prepare_accuracy_audit(call: Call) -> Any:
    return bootstrap.accuracy_jobs_service().prepare(call.principal.tenant, call.body.photos)


def start_accuracy_audit(call: Call) -> Any:
    b = call.body
    return bootstrap.accuracy_jobs_service().submit(
        call.principal.tenant,
        b.job_id,
        target_fmr=b.target_fmr,
        per_person=b.per_person,
        actor=call.principal.key_id,
    )


def get_accuracy_audit(call: Call, job_id: str) -> Any:
    return bootstrap.accuracy_jobs_service().status(call.principal.tenant, job_id)


def get_accuracy_audit_report(call: Call, job_id: str) -> Any:
    html = bootstrap.accuracy_jobs_service().report_html(call.principal.tenant, job_id)
    return api_routing.Content(html, "text/html; charset=utf-8")


def adopt_accuracy_advice(call: Call) -> Any:
    advice = bootstrap.accuracy_jobs_service().advice(call.principal.tenant, call.body.job_id)
    tenants = bootstrap.tenant_admin_service()
    return _policy_reply(
        tenants.adopt_accuracy_advice(call.principal.tenant, advice, who=call.principal)
    )


# The operations these views answer (``Router.bind``).
VIEWS: dict[str, View] = {
    "getPolicy": get_policy,
    "updatePolicy": update_policy,
    "prepareAccuracyAudit": prepare_accuracy_audit,
    "startAccuracyAudit": start_accuracy_audit,
    "getAccuracyAudit": get_accuracy_audit,
    "getAccuracyAuditReport": get_accuracy_audit_report,
    "adoptAccuracyAdvice": adopt_accuracy_advice,
}
