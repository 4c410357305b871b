"""The capability each authenticated operation needs (``quitclaim.domain.access``).

One explicit entry per operation id, checked in one place
(``quitclaim.api.auth.authenticate``). An operation missing here (one added
on another branch) falls back to its ``Operation.role`` read as before:
``admin`` → ``write``; ``reviewer`` → ``read`` for GET, ``review`` otherwise;
``tests/unit/test_access.py`` fails until it is listed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quitclaim.domain.access import Capability
from quitclaim.domain.registry import Role

if TYPE_CHECKING:  # the route table imports this module to document each rule
    from quitclaim.api.openapi import Operation

_R = Capability.READ
_AR = Capability.ADMIN_READ
_RV = Capability.REVIEW
_W = Capability.WRITE

ACCESS: dict[str, Capability] = {
    # dashboard and keys
    "getOverview": _R,
    "listPeople": _R,
    "createKey": _W,
    "whoAmI": Capability.SELF,
    "listKeys": _AR,
    "revokeKey": _W,
    "rotateKey": _W,
    # policy
    "getPolicy": _R,
    "updatePolicy": _W,
    # subjects and consents
    "createSubject": _W,
    "listSubjects": _R,
    "getSubject": _R,
    "updateSubject": _W,
    "deleteSubject": _W,
    "enrolSubject": _W,
    "grantConsent": _W,
    "listConsents": _R,
    "getConsent": _R,
    "renewConsent": _W,
    "revokeConsent": _W,
    "getConsentDocument": _R,
    # assets and the review queue
    "listAssets": _R,
    "getAsset": _R,
    "getAssetThumbnail": _R,
    "releaseAsset": _RV,
    "keepAsset": _RV,
    "reassignFace": _RV,
    "deleteAsset": _RV,
    "redactAsset": _RV,
    # people's requests and rights
    "listPersonRequests": _R,
    "exportSubject": Capability.EXPORT,
    # A POST that stores nothing: where a person appears is part of answering Art. 15.
    "searchAppearances": Capability.EXPORT,
    "eraseSubject": _W,
    "getErasure": _AR,
    "getRecordsOfProcessing": Capability.RECORDS,
    "setSubjectRetention": _W,
    "getUsage": _R,
    # webhooks
    "createWebhookSource": _W,
    "listWebhookSources": _AR,
    "deleteWebhookSource": _W,
    "rotateWebhookSource": _W,
    "listInboundDeliveries": _AR,
    "retryInboundDelivery": _W,
    "dismissInboundDelivery": _W,
    "createWebhookEndpoint": _W,
    "listWebhookEndpoints": _AR,
    "deleteWebhookEndpoint": _W,
    "rotateWebhookEndpoint": _W,
    "listWebhookDeliveries": _AR,
    "replayWebhookDelivery": _W,
    # forms and imports
    "publishForm": _W,
    "getForm": _R,
    "getFormSettings": _R,
    "updateFormSettings": _W,
    "createFormLink": _W,
    "createImportUploads": _W,
    "importConsents": _W,
    # the accuracy and bias audit (docs/accuracy-audit.md): admins run and adopt
    # it; the dpo reads its reports (the DPIA's accuracy evidence)
    "prepareAccuracyAudit": _W,
    "startAccuracyAudit": _W,
    "getAccuracyAudit": _AR,
    "getAccuracyAuditReport": _AR,
    "adoptAccuracyAdvice": _W,
    # the audit trail (docs/audit.md)
    "listAuditEvents": Capability.AUDIT,
    "verifyAuditTrail": Capability.AUDIT,
}


def capability_of(op: Operation) -> Capability:
    """What ``op`` needs (its entry; else its legacy minimum role, see above)."""
    found = ACCESS.get(op.operation_id)
    if found is not None:
        return found
    if op.role is Role.REVIEWER:
        return Capability.READ if op.method == "GET" else Capability.REVIEW
    return Capability.WRITE
