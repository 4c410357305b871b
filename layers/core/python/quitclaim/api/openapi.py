"""The route table of the HTTP API and the OpenAPI 3.1 document built from it.

``OPERATIONS`` is the single source: the Chalice app registers exactly these
routes (``quitclaim.api.routing`` refuses an operation without a view, and a
view without an operation), and ``document()`` describes exactly these. The
request schemas are the pydantic models that validate the requests; the
response schemas come from the domain dataclasses the views serialise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from quitclaim.api import schemas as s
from quitclaim.api.http_errors import ERROR_SCHEMA
from quitclaim.api.route_access import capability_of
from quitclaim.domain.access import ROLES
from quitclaim.domain.forms import FormSettings, FormVersion
from quitclaim.domain.models import TenantPolicy
from quitclaim.domain.records import AssetRecord
from quitclaim.domain.registry import ApiKeyInfo, ConsentView, IssuedKey, Principal, Role, Subject
from quitclaim.domain.rights import (
    ErasureReport,
    ErasureStatus,
    ProcessingRecords,
    SelfieSearch,
)
from quitclaim.domain.usage import UsageReport
from quitclaim.domain.webhooks import (
    InboundDelivery,
    IssuedSecret,
    OutboundDelivery,
    WebhookEndpoint,
    WebhookSource,
)

API_TITLE = "Quitclaim API"
API_VERSION = "1.0.0"
REF = "#/components/schemas/{model}"

_ERROR_TEXT = {
    400: "Invalid request (the body names the field)",
    401: "Missing or unknown API key",
    403: "Not allowed for this key (role, or the two-reviewer rule)",
    404: "No such thing for this tenant",
    409: "The state changed meanwhile; reload and retry",
    413: "Too large",
    415: "Unsupported media type",
    422: "Understood, but refused (e.g. a photo without exactly one face)",
    429: "Over the tenant plan's request rate; wait Retry-After seconds",
    500: "Internal error (no details are given)",
    503: "A dependency is unavailable; retry later",
}


@dataclass(frozen=True)
class Operation:
    """One route: what it takes, who may call it, what it answers."""

    operation_id: str
    method: str
    path: str
    summary: str
    tag: str
    # Who may call it is api/route_access.py (one capability per operation); this role
    # is what it was before capabilities (documented, and the fallback). None: no key.
    role: Role | None = Role.REVIEWER
    # Authenticated by a Standard Webhooks signature instead of a key (role None).
    signed: bool = False
    body: type[s.Body] | None = None
    query: type[s.Query] | None = None
    status: int = 200
    response: str | None = None  # a components/schemas name; None: no body
    errors: tuple[int, ...] = ()
    # Extra request media types besides JSON (a raw photo upload).
    raw_types: tuple[str, ...] = ()
    description: str = ""
    # What a success answers with: JSON unless a page or file of the dashboard.
    produces: tuple[str, ...] = ("application/json",)

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)

    @property
    def content_types(self) -> list[str]:
        return ["application/json", *self.raw_types]


_ADMIN = Role.ADMIN
_ANY = Role.REVIEWER
_WRITE_ERRORS = (400, 404, 409)

OPERATIONS: tuple[Operation, ...] = (
    Operation("health", "GET", "/health", "Liveness check", "meta", role=None, response="Health"),
    Operation(
        "dashboard",
        "GET",
        "/",
        "The review dashboard (a web page; it signs in with an API key)",
        "dashboard",
        role=None,
        produces=("text/html",),
        description="Static: the page holds no data; everything it shows comes from the API.",
    ),
    Operation(
        "dashboardFile",
        "GET",
        "/ui/{file}",
        "A script, style sheet or image of the dashboard",
        "dashboard",
        role=None,
        errors=(404,),
        produces=("text/css", "text/javascript", "image/svg+xml"),
    ),
    Operation(
        "getOverview",
        "GET",
        "/overview",
        "Monthly volumes, consents expiring soon, dead-letter counts",
        "dashboard",
        query=s.OverviewQuery,
        response="OverviewReport",
        errors=(400,),
        description=(
            "Volumes per calendar month (UTC) from the decision history of the tenant's "
            "images. `dead_letters` maps each dead-letter queue of the deployment to the "
            "messages waiting in it (counts only; the queues are shared by every tenant; "
            "null where a queue could not be read); more queues may be added."
        ),
    ),
    Operation(
        "listPeople",
        "GET",
        "/people",
        "People with their consents and a summary status (paged)",
        "dashboard",
        query=s.PageQuery,
        response="PersonPage",
        errors=(400,),
        description=(
            "`consent_status`: valid, expiring (every valid consent ends within 30 days), "
            "expired, withdrawn, not_yet_valid, or none; computed at the server's now."
        ),
    ),
    Operation(
        "openapi",
        "GET",
        "/openapi.json",
        "This OpenAPI document",
        "meta",
        role=None,
        response="OpenAPIDocument",
    ),
    Operation(
        "createKey",
        "POST",
        "/keys",
        "Issue an API key to a named person (its secret is shown once)",
        "keys",
        role=_ADMIN,
        body=s.CreateKey,
        status=201,
        response="IssuedKey",
        errors=(400,),
    ),
    Operation(
        "whoAmI",
        "GET",
        "/me",
        "The presented key: its tenant, id, role and label (never its secret)",
        "keys",
        role=_ANY,
        response="Principal",
    ),
    Operation(
        "getPolicy",
        "GET",
        "/policy",
        "Read the tenant policy",
        "policy",
        role=_ANY,
        response="TenantPolicy",
    ),
    Operation(
        "updatePolicy",
        "PATCH",
        "/policy",
        "Change the tenant policy (audited; applies to new uploads only)",
        "policy",
        role=_ADMIN,
        body=s.PolicyChanges,
        response="TenantPolicy",
        errors=(400, 403, 409),
        description=(
            "A change that lets the gate see less (min_face_px up, match_threshold up, "
            "match_margin down, a scan mode towards `off`, unknown_face_policy away from "
            "`quarantine`, auto_redact on) is only requested (202, the policy unchanged, "
            "`pending_change` set). It applies (200) when a second, different person "
            "sends a change giving the same policy; the requester again gets 403 "
            "`same_reviewer`. Other changes apply at once."
        ),
    ),
    Operation(
        "createSubject",
        "POST",
        "/subjects",
        "Register a person",
        "subjects",
        role=_ADMIN,
        body=s.CreateSubject,
        status=201,
        response="Subject",
        errors=(400,),
    ),
    Operation(
        "listSubjects",
        "GET",
        "/subjects",
        "List people (paged)",
        "subjects",
        query=s.PageQuery,
        response="SubjectPage",
        errors=(400,),
    ),
    Operation(
        "getSubject",
        "GET",
        "/subjects/{subject_id}",
        "Read a person",
        "subjects",
        response="Subject",
        errors=(404,),
    ),
    Operation(
        "updateSubject",
        "PATCH",
        "/subjects/{subject_id}",
        "Change a person's details",
        "subjects",
        role=_ADMIN,
        body=s.UpdateSubject,
        response="Subject",
        errors=_WRITE_ERRORS,
    ),
    Operation(
        "deleteSubject",
        "DELETE",
        "/subjects/{subject_id}",
        "Delete a person and their templates (consents stay as tombstones)",
        "subjects",
        role=_ADMIN,
        status=204,
        errors=(404, 409),
    ),
    Operation(
        "enrolSubject",
        "POST",
        "/subjects/{subject_id}/photos",
        "Enrol reference photos (exactly one face each)",
        "subjects",
        role=_ADMIN,
        body=s.EnrolPhotos,
        query=s.EnrolQuery,
        response="Subject",
        errors=(400, 404, 409, 413, 415, 422),
        raw_types=s.PHOTO_TYPES,
        description=(
            "JSON `{photos: [base64, ...], biometric_consent: true}`, or one raw image/jpeg "
            "or image/png body with `?biometric_consent=true`. Refused (400, field "
            "`biometric_consent`) without the person's explicit consent to matching. "
            "Answers the subject with its template count; templates are never returned."
        ),
    ),
    Operation(
        "grantConsent",
        "POST",
        "/subjects/{subject_id}/consents",
        "Record a signed quitclaim",
        "consents",
        role=_ADMIN,
        body=s.GrantConsent,
        status=201,
        response="ConsentView",
        errors=_WRITE_ERRORS,
    ),
    Operation(
        "listConsents",
        "GET",
        "/subjects/{subject_id}/consents",
        "A person's consents",
        "consents",
        response="ConsentList",
        errors=(404,),
    ),
    Operation(
        "getConsent",
        "GET",
        "/subjects/{subject_id}/consents/{consent_id}",
        "A consent with its history",
        "consents",
        response="ConsentView",
        errors=(404,),
    ),
    Operation(
        "renewConsent",
        "POST",
        "/subjects/{subject_id}/consents/{consent_id}/renew",
        "Give a consent a new validity window",
        "consents",
        role=_ADMIN,
        body=s.RenewConsent,
        response="ConsentView",
        errors=_WRITE_ERRORS,
    ),
    Operation(
        "revokeConsent",
        "POST",
        "/subjects/{subject_id}/consents/{consent_id}/revoke",
        "Withdraw a consent, effective immediately",
        "consents",
        role=_ADMIN,
        body=s.RevokeConsent,
        response="ConsentView",
        errors=_WRITE_ERRORS,
    ),
    Operation(
        "getConsentDocument",
        "GET",
        "/subjects/{subject_id}/consents/{consent_id}/document",
        "The signed quitclaim document",
        "consents",
        response="Document",
        errors=(404,),
    ),
    Operation(
        "listAssets",
        "GET",
        "/assets",
        "Assets by status (default: the quarantine queue), paged",
        "assets",
        query=s.AssetQuery,
        response="AssetPage",
        errors=(400,),
    ),
    Operation(
        "getAsset",
        "GET",
        "/assets/{asset_id}",
        "An asset with its faces, reasons and decision history",
        "assets",
        response="AssetRecord",
        errors=(404,),
    ),
    Operation(
        "getAssetThumbnail",
        "GET",
        "/assets/{asset_id}/thumbnail",
        "A small JPEG of a quarantined or approved image (base64)",
        "assets",
        response="Thumbnail",
        errors=(404, 409, 422),
        description=(
            "`width` and `height` are those of the oriented original, the space the "
            "asset's face boxes are in. A rejected upload has no preview (409)."
        ),
    ),
    Operation(
        "releaseAsset",
        "POST",
        "/assets/{asset_id}/release",
        "Ask for, or confirm, a release past the gate (two different reviewers)",
        "assets",
        body=s.ReviewAction,
        response="AssetRecord",
        errors=(400, 403, 404, 409),
        description=(
            "The first reviewer's call records a pending release (202). A second, "
            "different person's call publishes the asset (200). The same person "
            "confirming their own request, with any of their keys, gets 403."
        ),
    ),
    Operation(
        "keepAsset",
        "POST",
        "/assets/{asset_id}/keep",
        "Keep an asset in quarantine (recorded)",
        "assets",
        body=s.ReviewAction,
        response="AssetRecord",
        errors=_WRITE_ERRORS,
    ),
    Operation(
        "reassignFace",
        "POST",
        "/assets/{asset_id}/reassign",
        "Say a face is someone else (or nobody enrolled) and re-decide",
        "assets",
        body=s.Reassign,
        response="AssetRecord",
        errors=(*_WRITE_ERRORS, 403),
        description=(
            "When the new decision holds the asset, it applies at once (200). When it "
            "would publish the asset (or keep it published), the first call records "
            "`review.pending_reassign` (202, faces unchanged); a second, different "
            "person asking for the same face and subject applies it (200); the same "
            "person again gets 403 `same_reviewer`. The original match is kept in the "
            "history, and the person it named keeps their appearance row."
        ),
    ),
    Operation(
        "deleteAsset",
        "DELETE",
        "/assets/{asset_id}",
        "Delete an asset's stored objects (recorded)",
        "assets",
        body=s.ReviewAction,
        status=204,
        errors=_WRITE_ERRORS,
    ),
    *(
        op
        for action, name in (("renew", "Renew"), ("withdraw", "Withdraw"))
        for op in (
            Operation(
                f"check{name}Link",
                "GET",
                f"/links/{action}",
                f"Check an e-mailed {action} link (changes nothing; confirm with POST)",
                "links",
                role=None,
                query=s.LinkQuery,
                response="LinkCheck",
                errors=(400, 403, 409),
                description=(
                    "Mail scanners fetch links; only the POST acts. A renewal link "
                    "works once (409 link_used after); a withdrawal link works while "
                    "the consent is in force (409 already_withdrawn once it acted)."
                ),
            ),
            Operation(
                f"follow{name}Link",
                "POST",
                f"/links/{action}",
                f"Confirm an e-mailed {action} link",
                "links",
                role=None,
                query=s.LinkQuery,
                response="LinkResult",
                errors=(400, 403, 409),
                # The page's confirming button posts a plain HTML form.
                raw_types=("application/x-www-form-urlencoded",),
            ),
        )
    ),
    # A person's own access / erasure request (docs/person-pages.md).
    Operation(
        "personRequestPage",
        "GET",
        "/requests/{tenant}",
        "The page where a person asks for access or erasure by e-mail address",
        "person requests",
        role=None,
        errors=(404,),
        produces=("text/html",),
    ),
    Operation(
        "submitPersonRequest",
        "POST",
        "/requests/{tenant}",
        "Ask for access or erasure: a link to confirm goes to the address",
        "person requests",
        role=None,
        status=202,
        errors=(400, 404, 429),
        raw_types=("application/x-www-form-urlencoded",),
        description=(
            "Fields `email` and `kind` (access | erasure), as a form or JSON. The answer is "
            "the same for every address (nothing is looked up before the address is verified)."
        ),
    ),
    Operation(
        "checkPersonRequestLink",
        "GET",
        "/requests/{tenant}/verify",
        "Check a request's verification link (changes nothing; confirm with POST)",
        "person requests",
        role=None,
        query=s.LinkQuery,
        errors=(400, 403),
    ),
    Operation(
        "verifyPersonRequest",
        "POST",
        "/requests/{tenant}/verify",
        "Verify the address: the request is registered with its one-month deadline",
        "person requests",
        role=None,
        query=s.LinkQuery,
        errors=(400, 403, 409),
        raw_types=("application/x-www-form-urlencoded",),
    ),
    Operation(
        "listPersonRequests",
        "GET",
        "/person-requests",
        "The tenant's verified access and erasure requests, nearest deadline first",
        "person requests",
        response="PersonRequestList",
    ),
)

_SOURCE = "/webhook-sources/{source}"
_ENDPOINT = "/webhook-endpoints/{endpoint_id}"

WEBHOOK_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "receiveWebhook",
        "POST",
        "/webhooks/{tenant}/{source}",
        "A marketing tool's consent event (signed in the source's dialect)",
        "webhooks",
        role=None,
        signed=True,
        query=s.WebhookQuery,
        status=202,
        response="WebhookReceipt",
        errors=(400, 401, 409, 413, 422, 503),
        raw_types=("application/x-www-form-urlencoded",),
        description=(
            "`standard` sources: `webhook-id`, `webhook-timestamp` (5 minutes "
            "tolerance) and `webhook-signature` headers. `hubspot`: `X-HubSpot-Signature-v3` "
            "(or v1/v2), a JSON array of events; `typeform`: `Typeform-Signature`; "
            "`mailchimp`: a form post to the URL with its `token` (docs/webhooks.md). "
            "Answers 202 once every delivery is stored and queued (one per event, by the "
            "tool's own event id), `duplicate` for one seen before, 422 (and parks the "
            "delivery for review) when a standard payload does not fit the source's mapping."
        ),
    ),
    Operation(
        "checkWebhook",
        "GET",
        "/webhooks/{tenant}/{source}",
        "Mailchimp's check that a webhook URL exists (the URL token is the auth)",
        "webhooks",
        role=None,
        signed=True,
        query=s.WebhookQuery,
        response="WebhookCheck",
        errors=(401,),
    ),
    Operation(
        "createWebhookSource",
        "POST",
        "/webhook-sources",
        "Register an inbound source (answers its signing secret once)",
        "webhooks",
        role=_ADMIN,
        body=s.CreateWebhookSource,
        status=201,
        response="WebhookSourceCreated",
        errors=(400, 409),
    ),
    Operation(
        "listWebhookSources",
        "GET",
        "/webhook-sources",
        "Inbound sources",
        "webhooks",
        role=_ADMIN,
        response="WebhookSourceList",
    ),
    Operation(
        "deleteWebhookSource",
        "DELETE",
        _SOURCE,
        "Remove a source and its secret",
        "webhooks",
        role=_ADMIN,
        status=204,
        errors=(404,),
    ),
    Operation(
        "rotateWebhookSource",
        "POST",
        f"{_SOURCE}/rotate",
        "A new signing secret; the old one stays valid for the overlap",
        "webhooks",
        role=_ADMIN,
        body=s.RotateSecret,
        response="IssuedSecret",
        errors=(400, 404),
    ),
    Operation(
        "listInboundDeliveries",
        "GET",
        f"{_SOURCE}/deliveries",
        "A source's deliveries (parked ones wait for review)",
        "webhooks",
        role=_ADMIN,
        query=s.InboundQuery,
        response="InboundDeliveryList",
        errors=(400, 404),
    ),
    Operation(
        "retryInboundDelivery",
        "POST",
        f"{_SOURCE}/deliveries/{{delivery_id}}/retry",
        "Apply a parked delivery again",
        "webhooks",
        role=_ADMIN,
        status=202,
        response="InboundDelivery",
        errors=(404, 409),
    ),
    Operation(
        "dismissInboundDelivery",
        "POST",
        f"{_SOURCE}/deliveries/{{delivery_id}}/dismiss",
        "Close a parked delivery without applying it",
        "webhooks",
        role=_ADMIN,
        response="InboundDelivery",
        errors=(404, 409),
    ),
    Operation(
        "createWebhookEndpoint",
        "POST",
        "/webhook-endpoints",
        "Register a receiver of events (answers its signing secret once)",
        "webhooks",
        role=_ADMIN,
        body=s.CreateWebhookEndpoint,
        status=201,
        response="WebhookEndpointCreated",
        errors=(400,),
    ),
    Operation(
        "listWebhookEndpoints",
        "GET",
        "/webhook-endpoints",
        "Receivers of events",
        "webhooks",
        role=_ADMIN,
        response="WebhookEndpointList",
    ),
    Operation(
        "deleteWebhookEndpoint",
        "DELETE",
        _ENDPOINT,
        "Remove a receiver and its secret",
        "webhooks",
        role=_ADMIN,
        status=204,
        errors=(404,),
    ),
    Operation(
        "rotateWebhookEndpoint",
        "POST",
        f"{_ENDPOINT}/rotate",
        "A new signing secret; both sign every delivery during the overlap",
        "webhooks",
        role=_ADMIN,
        body=s.RotateSecret,
        response="IssuedSecret",
        errors=(400, 404),
    ),
    Operation(
        "listWebhookDeliveries",
        "GET",
        "/webhook-deliveries",
        "Outbound deliveries with their status (dead: the dead-letter list)",
        "webhooks",
        role=_ADMIN,
        query=s.DeliveryQuery,
        response="OutboundDeliveryList",
        errors=(400,),
    ),
    Operation(
        "replayWebhookDelivery",
        "POST",
        "/webhook-deliveries/{delivery_id}/replay",
        "Send a dead or delivered event again (same webhook-id)",
        "webhooks",
        role=_ADMIN,
        status=202,
        response="OutboundDelivery",
        errors=(404, 409, 503),
    ),
)

_SUBJECT = "/subjects/{subject_id}"

# Data-subject rights (GDPR Art. 15, 17, 30) and redaction.
RIGHTS_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "exportSubject",
        "GET",
        f"{_SUBJECT}/export",
        "Everything held about a person, as a ZIP (GDPR Art. 15)",
        "rights",
        role=_ADMIN,
        response="AccessExport",
        errors=(404,),
        description=(
            "`export_base64` is a ZIP: `manifest.json` (the subject without templates, "
            "consents with history and evidence, every asset they appear in with only their "
            "own faces, every decision and reviewer action on those assets, earlier "
            "requests), `summary.html` (the same, readable) and `documents/` (the signed "
            "forms). Thumbnails are not included. The request is logged and audited."
        ),
    ),
    Operation(
        "searchAppearances",
        "POST",
        "/appearances/search",
        "Where does the person in this photo appear? (processed in memory, never stored)",
        "rights",
        role=_ADMIN,
        body=s.SelfieSearchBody,
        response="SelfieSearch",
        errors=(400, 413, 415, 422),
        raw_types=s.PHOTO_TYPES,
        description=(
            "JSON `{photo_base64}` or one raw image/jpeg or image/png body with exactly one "
            "face. Its template is compared with the tenant's enrolled templates in memory "
            "and discarded; only the search and its result count are logged."
        ),
    ),
    Operation(
        "eraseSubject",
        "POST",
        f"{_SUBJECT}/erase",
        "Erase a person (GDPR Art. 17) and answer the completeness report",
        "rights",
        role=_ADMIN,
        response="ErasureReport",
        errors=(404, 409),
        description=(
            "Templates, contact data and every version of the signed documents are "
            "deleted; consents become tombstones (ids, dates, outcome); every asset they "
            "appear in is decided again with their face unknown, so it leaves the library. "
            "Every store is then read again (`verification`). `DELETE /subjects/{id}` does "
            "the same and answers 204. Calling again completes an interrupted erasure."
        ),
    ),
    Operation(
        "getErasure",
        "GET",
        f"{_SUBJECT}/erasure",
        "A past erasure's report, with every store verified again now",
        "rights",
        role=_ADMIN,
        response="ErasureStatus",
        errors=(404,),
    ),
    Operation(
        "redactAsset",
        "POST",
        "/assets/{asset_id}/redact",
        "Publish a held asset's variant with the faces lacking consent pixelated",
        "assets",
        body=s.ReviewAction,
        status=201,
        response="AssetRecord",
        errors=(400, 403, 404, 409, 422),
        description=(
            "Four eyes: the first call records `review.pending_redaction` on the held "
            "original and answers it (202); a second, different person's call makes and "
            "publishes the variant (201); the same person again gets 403 `same_reviewer`. "
            "Only for an asset held for faces without consent (unknown, no consent, "
            "expired, withdrawn, out of scope). The variant "
            "`<tenant>/<path stem>.redacted.png` is scanned again and published only when "
            "the engine identifies no redacted face and every other face has a valid "
            "consent; it answers the variant's own record. The original stays held."
        ),
    ),
    Operation(
        "getRecordsOfProcessing",
        "GET",
        "/records-of-processing",
        "Records of processing (GDPR Art. 30) and a DPIA starter, pre-filled",
        "rights",
        role=_ADMIN,
        response="ProcessingRecords",
    ),
    Operation(
        "getUsage",
        "GET",
        "/usage",
        "Billable usage of one UTC month: images, faces, matches, storage, calls, webhooks",
        "usage",
        role=_ANY,
        query=s.UsageQuery,
        response="UsageReport",
        description="Counters are written with what they count (exactly once); storage "
        "is GB-months (2^30 bytes) derived from the decision records' placement history.",
    ),
)

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
FORM_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "publishForm",
        "POST",
        "/forms",
        "Publish a new version of the tenant's quitclaim form (texts per language)",
        "forms",
        role=_ADMIN,
        body=s.PublishForm,
        status=201,
        response="FormVersion",
        errors=(400, 409),
        description=(
            "A version is written once: publishing it again is 409 `version_exists`, so "
            "what an earlier signer agreed to never changes. The newest version is the "
            "one links open."
        ),
    ),
    Operation(
        "getForm",
        "GET",
        "/forms/{version}",
        "One published form version",
        "forms",
        role=_ANY,
        response="FormVersion",
        errors=(404,),
    ),
    Operation(
        "getFormSettings",
        "GET",
        "/form-settings",
        "The form settings: age of consent, versions, the current one",
        "forms",
        role=_ANY,
        response="FormSettings",
    ),
    Operation(
        "updateFormSettings",
        "PATCH",
        "/form-settings",
        "Set the age of consent (13-16; under it a guardian signs)",
        "forms",
        role=_ADMIN,
        body=s.FormSettingsChange,
        response="FormSettings",
        errors=(400,),
    ),
    Operation(
        "createFormLink",
        "POST",
        "/form-links",
        "A personal form link (e-mailed) or an event link (with a QR code as SVG)",
        "forms",
        role=_ADMIN,
        body=s.CreateFormLink,
        status=201,
        response="IssuedLink",
        errors=(400, 404),
    ),
    Operation(
        "openForm",
        "GET",
        "/form",
        "The quitclaim form a link opens (a page)",
        "forms",
        role=None,
        query=s.FormQuery,
        produces=("text/html",),
        errors=(400,),
        raw_types=_FORM_TYPES,
    ),
    Operation(
        "signForm",
        "POST",
        "/form",
        "Sign the quitclaim form (an HTML form post; answers a page)",
        "forms",
        role=None,
        query=s.FormQuery,
        status=201,
        produces=("text/html",),
        errors=(400, 403, 409, 422, 429),
        raw_types=_FORM_TYPES,
        description=(
            "application/x-www-form-urlencoded, or multipart/form-data with an optional "
            "reference photo (field `photo`, only with `biometric_consent`). A refusal "
            "is the form again with the field named, status 400 (422: the photo)."
        ),
    ),
)

# Bringing an organisation's existing records in (docs/import.md).
IMPORT_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "createImportUploads",
        "POST",
        "/imports/consents/uploads",
        "Presigned upload URLs for an import's signed documents and reference photos",
        "imports",
        role=_ADMIN,
        body=s.ImportUploadsBody,
        response="ImportUploads",
        errors=(400, 422),
        description=(
            "API Gateway bodies stop at 10 MB, so files go straight to S3: PUT each file's "
            "bytes to its URL (valid 15 minutes), then POST /imports/consents with the "
            "`import_id`."
        ),
    ),
    Operation(
        "importConsents",
        "POST",
        "/imports/consents",
        "Import existing consents from a CSV: a dry-run report, or the import",
        "imports",
        role=_ADMIN,
        body=s.ImportConsentsBody,
        response="ConsentImportReport",
        errors=(400, 404, 422),
        description=(
            "One row per consent (docs/templates/consents-import.csv). `dry_run` (default "
            "true) reports per row what would be created or why it is refused; a real run "
            "is idempotent (each row's consent id is derived from the row). At most 200 rows "
            "per request (API Gateway's 29 s); the CLI has no limit."
        ),
    ),
)

OPERATIONS = OPERATIONS + WEBHOOK_OPERATIONS + RIGHTS_OPERATIONS
OPERATIONS = OPERATIONS + FORM_OPERATIONS + IMPORT_OPERATIONS

# Retention (docs/retention.md): the tenant's days are policy fields (updatePolicy).
RETENTION_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "setSubjectRetention",
        "PUT",
        f"{_SUBJECT}/retention",
        "Set a person's end of retention",
        "rights",
        role=_ADMIN,
        body=s.SubjectRetention,
        status=204,
        errors=(400, 404),
        description=(
            "At `until` DynamoDB TTL deletes the person's record and templates; the TTL "
            "stream then drops them from the gallery and removes their appearance rows "
            "(their consents stay, as for a deleted person). Audited (`subject.retention_set`)."
        ),
    ),
)
OPERATIONS = OPERATIONS + RETENTION_OPERATIONS

# Key lifecycle (docs/access.md): list, revoke, rotate.
_KEY = "/keys/{key_id}"
KEY_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "listKeys",
        "GET",
        "/keys",
        "List the tenant's API keys (never their secrets)",
        "keys",
        role=_ADMIN,
        response="ApiKeyList",
        description="Every key with its name, person, role, expiry and status "
        "(`active`, `expired`, `revoked`).",
    ),
    Operation(
        "revokeKey",
        "POST",
        f"{_KEY}/revoke",
        "Revoke an API key: refused from its next request on",
        "keys",
        role=_ADMIN,
        response="ApiKeyInfo",
        errors=(404,),
        description="Idempotent; audited (`key.revoked`, who and which key).",
    ),
    Operation(
        "rotateKey",
        "POST",
        f"{_KEY}/rotate",
        "Rotate an API key: a new secret, same name and person; the old key is revoked",
        "keys",
        role=_ADMIN,
        body=s.RotateKey,
        status=201,
        response="IssuedKey",
        errors=(400, 404),
        description="The new secret is shown once. Audited (`key.rotated`).",
    ),
)
OPERATIONS = OPERATIONS + KEY_OPERATIONS

# The tenant's audit trail over HTTP (docs/audit.md): auditors, the dpo, admins.
AUDIT_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "listAuditEvents",
        "GET",
        "/audit/events",
        "A page of the tenant's audit events, oldest first (ids, codes, counts, actors)",
        "audit",
        role=_ADMIN,
        query=s.AuditEventQuery,
        response="AuditEventPage",
        errors=(400,),
        description=(
            "Events as the tenant's hash chain holds them (unverified: see "
            "`GET /audit/verify`): `seq` (and `lane`) of their record, its `at`, the "
            "`action`, the ids it names and `actor` (the key id or `user:<sub>`). "
            "Filters: `since` / `until` (record time), `action`. Read within about 20 s "
            "(API Gateway's 29 s limit): a chain too large for that answers "
            "`complete: false` and no items; `quitclaim audit show` reads any size."
        ),
    ),
    Operation(
        "verifyAuditTrail",
        "GET",
        "/audit/verify",
        "Verify the tenant's audit hash chain: intact, or the first broken link",
        "audit",
        role=_ADMIN,
        response="AuditVerdict",
        description=(
            "Recomputes every record's hash and link, and the chain's end against its "
            "head. `problems` counts breaks by code (the verifier stops at the first). "
            "Within about 20 s: a larger chain answers `complete: false`, `intact: null` "
            "and points at `quitclaim audit verify` (docs/audit.md)."
        ),
    ),
)
OPERATIONS = OPERATIONS + AUDIT_OPERATIONS
# The accuracy and bias audit as an asynchronous job (docs/accuracy-audit.md).
_ACCURACY = "/audits/accuracy"
ACCURACY_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "prepareAccuracyAudit",
        "POST",
        f"{_ACCURACY}/uploads",
        "A new accuracy audit job: upload URLs for its labels CSV and photos",
        "audits",
        role=_ADMIN,
        body=s.AccuracyUploadsBody,
        status=201,
        response="AccuracyUploads",
        errors=(400,),
        description=(
            "PUT the labels CSV (docs/accuracy-audit.md) to `labels` and each photo to its "
            "URL (valid 15 minutes), then POST /audits/accuracy with the `job_id`. The "
            "staged files are deleted when the audit ends, verified."
        ),
    ),
    Operation(
        "startAccuracyAudit",
        "POST",
        _ACCURACY,
        "Start a prepared accuracy audit (asynchronous: 202 and the job)",
        "audits",
        role=_ADMIN,
        body=s.AccuracyJobBody,
        status=202,
        response="AccuracyJob",
        errors=(400, 404, 409),
        description="Poll GET /audits/accuracy/{job_id} until `done` or `failed`.",
    ),
    Operation(
        "getAccuracyAudit",
        "GET",
        f"{_ACCURACY}/{{job_id}}",
        "An accuracy audit job's status; when done, its report (JSON)",
        "audits",
        role=_ADMIN,
        response="AccuracyJob",
        errors=(400, 404),
    ),
    Operation(
        "getAccuracyAuditReport",
        "GET",
        f"{_ACCURACY}/{{job_id}}/report",
        "A done accuracy audit job's report, readable (HTML)",
        "audits",
        role=_ADMIN,
        produces=("text/html",),
        errors=(400, 404),
    ),
    Operation(
        "adoptAccuracyAdvice",
        "POST",
        "/policy/accuracy-advice",
        "Adopt an accuracy audit's threshold advice (two administrators, audited)",
        "policy",
        role=_ADMIN,
        body=s.AccuracyAdviceBody,
        response="TenantPolicy",
        errors=(400, 403, 404, 409),
        description=(
            "The advice of the job named, else of the latest stored report. Always two "
            "people: the first call keeps it pending (202, `pending_change`); a second, "
            "different administrator's call applies it (200); the first again gets 403 "
            "`same_reviewer`. Audited (`policy.change_requested`, `policy.updated`)."
        ),
    ),
)
OPERATIONS = OPERATIONS + ACCURACY_OPERATIONS

# Four-eyes actions answer 202 while they wait for a second person.
EXTRA_SUCCESS = {
    "releaseAsset": {202: ("Release requested; waiting for a second person", "AssetRecord")},
    "reassignFace": {202: ("Reassignment requested; waiting for a second person", "AssetRecord")},
    "redactAsset": {202: ("Redaction requested; waiting for a second person", "AssetRecord")},
    "updatePolicy": {202: ("Change requested; waiting for a second administrator", "TenantPolicy")},
}

EXTRA_SUCCESS["adoptAccuracyAdvice"] = {
    202: ("Adoption requested; waiting for a second administrator", "TenantPolicy")
}

BY_ID = {op.operation_id: op for op in OPERATIONS}


def _response_types() -> tuple[type, ...]:
    """The response dataclasses, each a named schema as it serializes.

    The use-cases' own types are imported here, when the document is built: the
    route table loads with every API cold start, the document on request.
    """
    from quitclaim.usecases.dashboard import OverviewReport, Person
    from quitclaim.usecases.form_submissions import IssuedLink

    return (
        Subject,
        ConsentView,
        AssetRecord,
        TenantPolicy,
        IssuedKey,
        ApiKeyInfo,
        WebhookSource,
        WebhookEndpoint,
        InboundDelivery,
        OutboundDelivery,
        IssuedSecret,
        Person,
        OverviewReport,
        Principal,
        ErasureReport,
        ErasureStatus,
        SelfieSearch,
        ProcessingRecords,
        UsageReport,
        FormVersion,
        FormSettings,
        IssuedLink,
    )


def _component_schemas() -> dict[str, Any]:
    """Every named schema: request models, response dataclasses, the error."""
    models: list[type[BaseModel]] = sorted(
        {m for op in OPERATIONS for m in (op.body, op.query) if m is not None},
        key=lambda m: m.__name__,
    )
    _, request = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    components: dict[str, Any] = dict(request.get("$defs", {}))
    for cls in _response_types():
        schema = TypeAdapter(cls).json_schema(mode="serialization", ref_template=REF)
        components.update(schema.pop("$defs", {}))
        components[cls.__name__] = schema
    # On the wire scan_modes is an object (see serialize.policy_json).
    components["TenantPolicy"]["properties"]["scan_modes"] = {
        "type": "object",
        "additionalProperties": {"$ref": REF.format(model="ScanMode")},
    }
    components["TenantPolicy"]["properties"]["pending_change"] = {
        "type": "object",
        "description": (
            "Only while a change that loosens the gate waits for a second administrator: "
            "`changes` (as sent), `loosens` (the fields), `by` (key id), `person`, `at`."
        ),
    }
    components.update(_plain_schemas())
    components.update(_webhook_schemas())
    components.update(_listing_schemas())
    components.update(_import_schemas())
    components.update(_rights_schemas())
    components.update(_audit_schemas())
    components.update(ACCURACY_SCHEMAS)
    return components


def _plain_schemas() -> dict[str, Any]:
    """The error, the meta routes' answers and the e-mailed links' JSON."""
    return {
        "Error": ERROR_SCHEMA,
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"const": "ok"}},
        },
        "OpenAPIDocument": {"type": "object", "description": "This document."},
        "LinkCheck": {
            "type": "object",
            "required": ["action", "consent_id", "confirm"],
            "properties": {
                "action": {"enum": ["renew", "withdraw"]},
                "consent_id": {"type": "string"},
                "confirm": {"type": "string"},
            },
        },
        "LinkResult": {
            "type": "object",
            "required": ["action", "consent_id", "status"],
            "properties": {
                "action": {"enum": ["renew", "withdraw"]},
                "consent_id": {"type": "string"},
                "status": {"type": "string"},
                "expires_at": {"type": ["string", "null"], "format": "date-time"},
            },
        },
    }


def _webhook_schemas() -> dict[str, Any]:
    """Webhook sources, endpoints and deliveries (usecases/webhooks.py)."""
    return {
        "WebhookReceipt": {
            "type": "object",
            "required": ["status", "delivery_id"],
            "properties": {
                "status": {"enum": ["accepted", "duplicate", "ignored"]},
                "delivery_id": {"type": "string"},
                "deliveries": {"type": "array", "items": {"type": "string"}},
            },
        },
        "WebhookCheck": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"const": "ready"}},
        },
        "WebhookSourceCreated": {
            "type": "object",
            "required": ["source", "secret", "url_path"],
            "properties": {
                "source": _ref("WebhookSource"),
                "secret": {
                    "type": ["string", "null"],
                    "description": (
                        "Shown once: whsec_... (standard), the URL token (mailchimp); "
                        "null where the tool owns the secret (hubspot, typeform)."
                    ),
                },
                "url_path": {"type": "string"},
            },
        },
        "WebhookEndpointCreated": {
            "type": "object",
            "required": ["endpoint", "secret"],
            "properties": {
                "endpoint": _ref("WebhookEndpoint"),
                "secret": {"type": "string", "description": "Shown once: whsec_..."},
            },
        },
        "WebhookSourceList": _list("WebhookSource"),
        "WebhookEndpointList": _list("WebhookEndpoint"),
        "InboundDeliveryList": _list("InboundDelivery"),
        "OutboundDeliveryList": _list("OutboundDelivery"),
    }


def _listing_schemas() -> dict[str, Any]:
    """Lists and pages of keys, subjects, people, assets and consents; a thumbnail."""
    return {
        "ApiKeyList": _list("ApiKeyInfo"),
        "SubjectPage": _page("Subject"),
        "PersonPage": _page("Person"),
        "Thumbnail": {
            "type": "object",
            "required": ["content_type", "image_base64", "width", "height"],
            "properties": {
                "content_type": {"const": "image/jpeg"},
                "image_base64": {"type": "string", "contentEncoding": "base64"},
                "width": {"type": "integer", "minimum": 1},
                "height": {"type": "integer", "minimum": 1},
            },
        },
        "AssetPage": _page("AssetRecord"),
        "ConsentList": {
            "type": "object",
            "required": ["items"],
            "properties": {"items": {"type": "array", "items": _ref("ConsentView")}},
        },
    }


def _import_schemas() -> dict[str, Any]:
    """A consent import's uploads and report (usecases/consent_import.py)."""
    return {
        "ImportUploads": {
            "type": "object",
            "required": ["import_id", "expires_in_s", "documents", "photos"],
            "properties": {
                "import_id": {"type": "string"},
                "expires_in_s": {"type": "integer"},
                "documents": {"type": "object", "additionalProperties": {"type": "string"}},
                "photos": {"type": "object"},
            },
        },
        "ConsentImportReport": {
            "type": "object",
            "required": ["tenant", "dry_run", "delimiter", "encoding", "counts", "rows"],
            "properties": {
                "tenant": {"type": "string"},
                "dry_run": {"type": "boolean"},
                "delimiter": {"type": "string"},
                "encoding": {"type": "string"},
                "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                "rows": {"type": "array", "items": {"type": "object"}},
            },
        },
    }


def _rights_schemas() -> dict[str, Any]:
    """A data subject's export, a person's own requests, a consent's document."""
    return {
        "AccessExport": {
            "type": "object",
            "required": [
                "request_id",
                "subject_id",
                "filename",
                "content_type",
                "export_base64",
                "sha256",
                "counts",
            ],
            "properties": {
                "request_id": {"type": "string"},
                "subject_id": {"type": "string"},
                "filename": {"type": "string"},
                "content_type": {"const": "application/zip"},
                "export_base64": {"type": "string", "contentEncoding": "base64"},
                "sha256": {"type": "string"},
                "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            },
        },
        "PersonRequestList": {
            "type": "object",
            "required": ["items"],
            "properties": {
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "request_id": {"type": "string"},
                            "kind": {"enum": ["access", "erasure"]},
                            "email": {"type": "string"},
                            "status": {"enum": ["open", "answered"]},
                            "received_at": {"type": "string", "format": "date-time"},
                            "verified_at": {"type": ["string", "null"]},
                            "deadline": {"type": ["string", "null"]},
                            "subject_ids": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                }
            },
        },
        "Document": {
            "type": "object",
            "required": ["content_type", "document_base64"],
            "properties": {
                "content_type": {"type": "string"},
                "document_base64": {"type": "string", "contentEncoding": "base64"},
                "sha256": {"type": ["string", "null"]},
            },
        },
    }


# What a bounded read of a chain adds: whether it got through, else what to run.
_INCOMPLETE = {
    "complete": {
        "type": "boolean",
        "description": "false: the chain was too large to read within the request's time",
    },
    "hint": {"type": ["string", "null"], "description": "What to run instead (the CLI)."},
}
# One audit event as the API lists it.
_AUDIT_EVENT = {
    "type": "object",
    "required": ["seq", "at", "action"],
    "properties": {
        "seq": {"type": "integer", "minimum": 1},
        "lane": {"type": "integer", "minimum": 1},
        "at": {"type": "string", "format": "date-time"},
        "action": {"type": "string"},
        "actor": {"type": "string", "description": "key id, or user:<sub>"},
        "actor_email_hash": {"type": "string", "description": "SHA-256 of the e-mail"},
    },
    "description": "Besides these: only ids, codes and counts (the chain's allow-list).",
}


def _audit_schemas() -> dict[str, Any]:
    """The audit trail's answers (usecases/audit_read.py)."""
    return {
        "AuditEvent": _AUDIT_EVENT,
        "AuditEventPage": {
            "type": "object",
            "required": ["items", "next_cursor", "complete"],
            "properties": {
                "items": {"type": "array", "items": _ref("AuditEvent")},
                "next_cursor": {
                    "type": ["string", "null"],
                    "description": "Pass back as ?cursor= for the next page; null: no more.",
                },
                **_INCOMPLETE,
            },
        },
        "AuditVerdict": {
            "type": "object",
            "required": ["tenant", "intact", "complete", "records", "events", "problems"],
            "properties": {
                "tenant": {"type": "string"},
                "intact": {"type": ["boolean", "null"], "description": "null: not decided"},
                "records": {"type": "integer", "minimum": 0},
                "events": {"type": "integer", "minimum": 0},
                "problems": {
                    "type": "object",
                    "additionalProperties": {"type": "integer"},
                    "description": "Breaks by code: hash_mismatch, missing, prev_mismatch...",
                },
                "first_break": {
                    "type": ["object", "null"],
                    "properties": {
                        "seq": {"type": "integer"},
                        "key": {"type": "string"},
                        "problem": {"type": "string"},
                        "detail": {"type": "string"},
                    },
                },
                **_INCOMPLETE,
            },
        },
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _list(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": _ref(item)}},
    }


def _page(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": _ref(item)},
            "next_cursor": {
                "type": ["string", "null"],
                "description": "Pass back as ?cursor= for the next page; null: no more.",
            },
        },
    }


_PATH_PATTERNS = {"file": s.UI_FILE_PATTERN}


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": _PATH_PATTERNS.get(name, s.ID_PATTERN).pattern},
        }
        for name in op.path_params
    ]
    if op.query is not None:
        schema = op.query.model_json_schema(ref_template=REF)
        required = set(schema.get("required", []))
        for name, prop in schema["properties"].items():
            prop = {k: v for k, v in prop.items() if k != "title"}
            params.append(
                {"name": name, "in": "query", "required": name in required, "schema": prop}
            )
    return params


def _responses(op: Operation) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    successes = {op.status: (op.summary, op.response), **EXTRA_SUCCESS.get(op.operation_id, {})}
    for status, (text, name) in sorted(successes.items()):
        entry: dict[str, Any] = {"description": text}
        if name is not None:
            entry["content"] = {"application/json": {"schema": _ref(name)}}
        elif op.produces != ("application/json",):
            entry["content"] = {media: {"schema": {"type": "string"}} for media in op.produces}
        responses[str(status)] = entry
    codes = set(op.errors) | {500}
    if op.role is not None:
        codes |= {401, 403, 429}
    if op.signed:
        codes |= {401}
    for status in sorted(codes):
        responses[str(status)] = {
            "description": _ERROR_TEXT.get(status, "Error"),
            "content": {"application/json": {"schema": _ref("Error")}},
        }
        if status == 429:
            responses[str(status)]["headers"] = {
                "Retry-After": {"schema": {"type": "integer", "minimum": 1}}
            }
    return responses


def _operation(op: Operation) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": _parameters(op),
        "responses": _responses(op),
    }
    if op.description:
        entry["description"] = op.description
    if op.signed:
        entry["security"] = []
        entry["x-quitclaim-auth"] = "standard-webhooks-signature"
    elif op.role is None:
        entry["security"] = []
    else:
        entry["x-quitclaim-role"] = op.role.value
        entry["x-quitclaim-roles"] = sorted(r.value for r in ROLES[capability_of(op)])
    if op.signed and op.method != "GET":
        signed_body: dict[str, Any] = {"application/json": {"schema": {}}}
        for media in op.raw_types:
            signed_body[media] = {"schema": {"type": "string", "contentMediaType": media}}
        entry["requestBody"] = {"required": True, "content": signed_body}
    if op.body is not None:
        content: dict[str, Any] = {"application/json": {"schema": _ref(op.body.__name__)}}
        for media in op.raw_types:
            content[media] = {"schema": {"type": "string", "contentMediaType": media}}
        # An empty body is allowed where the model has no required field.
        required = bool(op.body.model_json_schema().get("required"))
        entry["requestBody"] = {"required": required, "content": content}
    return entry


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (built once; treat it as read-only)."""
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": API_TITLE,
            "version": API_VERSION,
            "description": (
                "Consent registry, enrolment and review queue of a Quitclaim tenant. "
                "The tenant is the API key's; errors are "
                '`{"error": code, "message": text, "field": name-or-null}`.'
            ),
        },
        "security": [{"bearer": []}, {"apiKey": []}],
        "tags": [{"name": t} for t in dict.fromkeys(op.tag for op in OPERATIONS)],
        "paths": paths,
        "components": {
            "schemas": _component_schemas(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "API key"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
        },
    }


ACCURACY_SCHEMAS: dict[str, Any] = {
    "AccuracyUploads": {
        "type": "object",
        "required": ["job_id", "expires_in_s", "labels", "photos"],
        "properties": {
            "job_id": {"type": "string"},
            "expires_in_s": {"type": "integer"},
            "labels": {"type": "string", "description": "PUT URL of the labels CSV"},
            "photos": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "AccuracyJob": {
        "type": "object",
        "required": ["job_id", "status", "photos"],
        "properties": {
            "job_id": {"type": "string"},
            "status": {"enum": ["awaiting_upload", "queued", "running", "done", "failed"]},
            "photos": {"type": "integer"},
            "queued_at": {"type": "string"},
            "ended_at": {"type": "string"},
            "target_fmr": {"type": "number"},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "cleanup": {"type": "object"},
            "error": {"type": "object"},
            "report": {"type": "object", "description": "when done: the report's JSON"},
        },
    },
}
