"""HTTP API (Chalice): routes only. Each view calls the use-case it needs.

Auth, validation, error mapping and JSON shaping live in ``quitclaim.api``
(``routing.Router``); the route table and the OpenAPI document in
``quitclaim.api.openapi``. The tenant is always the API key's; the router has already checked the
operation's role (``quitclaim.api.route_access``) before a view runs.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict
from typing import Any
from urllib.parse import parse_qs

from chalice import Chalice

from quitclaim import bootstrap
from quitclaim.api import form_views, http_errors, person_pages, policy_views, static, webhook_views
from quitclaim.api.openapi import document
from quitclaim.api.routing import Call, Posted, Reply, Router, reshape_chalice_errors
from quitclaim.config import get_settings
from quitclaim.domain.errors import NotFound, QuitclaimError, ValidationFailed
from quitclaim.domain.models import AssetStatus, is_tenant_id
from quitclaim.observability import logger

# Validated at cold start: a container outside the EU refuses to run at all.
get_settings()

app = Chalice(app_name="quitclaim-api")
app.register_middleware(reshape_chalice_errors, "http")
# The form's post carries a photo: API Gateway passes it base64-encoded, Chalice decodes it.
app.api.binary_types.append("multipart/form-data")


route = Router(app, lambda: bootstrap.request_gate())


# ---------------------------------------------------------------- meta


@route("health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@route("openapi")
def openapi() -> dict[str, Any]:
    return document()


# ---------------------------------------------------------------- the review dashboard


@route("dashboard")
def dashboard() -> Any:
    settings = get_settings()  # the user pool's sign-in, when the stack has one
    return static.page(settings.user_pool_client_id, settings.user_pool_domain_url)


@route("dashboardFile")
def dashboard_file(file: str) -> Any:
    return static.ui_file(file)


@route("getOverview")
def get_overview(call: Call) -> Any:
    return bootstrap.dashboard_service().overview(call.principal.tenant, call.query.months)


@route("listPeople")
def list_people(call: Call) -> Any:
    q = call.query
    return bootstrap.dashboard_service().people(call.principal.tenant, q.limit, q.cursor)


# ---------------------------------------------------------------- keys and policy


@route("createKey")
def create_key(call: Call) -> Any:
    b = call.body
    keys = bootstrap.api_keys_service()
    return keys.create_key(call.principal, b.role, b.label, b.person, b.valid_days)


@route("listKeys")
def list_keys(call: Call) -> Any:
    return {"items": bootstrap.api_keys_service().list_keys(call.principal.tenant)}


@route("revokeKey")
def revoke_key(call: Call, key_id: str) -> Any:
    return bootstrap.api_keys_service().revoke(call.principal, key_id)


@route("rotateKey")
def rotate_key(call: Call, key_id: str) -> Any:
    keys = bootstrap.api_keys_service()
    return keys.rotate(call.principal, key_id, valid_days=call.body.valid_days)


@route("whoAmI")
def who_am_i(call: Call) -> Any:
    return call.principal  # as the API sees them (the dashboard hides admin forms by it)


# ---------------------------------------------------------------- subjects


@route("createSubject")
def create_subject(call: Call) -> Any:
    return bootstrap.subject_admin_service().create(call.principal.tenant, call.body.request())


@route("listSubjects")
def list_subjects(call: Call) -> Any:
    q = call.query
    return bootstrap.subject_admin_service().page(call.principal.tenant, q.limit, q.cursor)


@route("getSubject")
def get_subject(call: Call, subject_id: str) -> Any:
    return bootstrap.subject_admin_service().subject(call.principal.tenant, subject_id)


@route("updateSubject")
def update_subject(call: Call, subject_id: str) -> Any:
    subjects = bootstrap.subject_admin_service()
    return subjects.update_subject(call.principal.tenant, subject_id, call.body.changes())


@route("deleteSubject")
def delete_subject(call: Call, subject_id: str) -> None:
    erase_subject(call, subject_id)  # the same erasure; 204 without its report


@route("enrolSubject")
def enrol_subject(call: Call, subject_id: str) -> Any:
    photos = [call.raw] if call.raw is not None else call.body.decoded()
    consent = call.query.biometric_consent or (
        call.body is not None and call.body.biometric_consent
    )
    subjects = bootstrap.subject_admin_service()
    return subjects.enrol(call.principal.tenant, subject_id, photos, biometric_consent=consent)


# ---------------------------------------------------------------- consents


@route("grantConsent")
def grant_consent(call: Call, subject_id: str) -> Any:
    consents, tenant = bootstrap.consent_admin_service(), call.principal.tenant
    granted = consents.grant(
        tenant, subject_id, call.body.request(), source="api", actor=call.principal.key_id
    )
    return consents.consent_view(tenant, subject_id, granted.consent_id)


@route("listConsents")
def list_consents(call: Call, subject_id: str) -> Any:
    consents = bootstrap.consent_admin_service().consent_views(call.principal.tenant, subject_id)
    return {"items": consents}


@route("getConsent")
def get_consent(call: Call, subject_id: str, consent_id: str) -> Any:
    consents = bootstrap.consent_admin_service()
    return consents.subject_consent(call.principal.tenant, subject_id, consent_id)


@route("renewConsent")
def renew_consent(call: Call, subject_id: str, consent_id: str) -> Any:
    consents, tenant = bootstrap.consent_admin_service(), call.principal.tenant
    renewal = call.body.request()
    consents.renew(
        tenant, subject_id, consent_id, renewal, source="api", actor=call.principal.key_id
    )
    return consents.consent_view(tenant, subject_id, consent_id)


@route("revokeConsent")
def revoke_consent(call: Call, subject_id: str, consent_id: str) -> Any:
    consents, tenant = bootstrap.consent_admin_service(), call.principal.tenant
    consents.revoke_consent(
        tenant, subject_id, consent_id, source="api", actor=call.principal.key_id
    )
    return consents.consent_view(tenant, subject_id, consent_id)


@route("getConsentDocument")
def get_consent_document(call: Call, subject_id: str, consent_id: str) -> Any:
    consents = bootstrap.consent_admin_service()
    data, content_type = consents.subject_document(call.principal.tenant, subject_id, consent_id)
    return {"content_type": content_type, "document_base64": base64.b64encode(data).decode()}


# ---------------------------------------------------------------- assets and review


@route("listAssets")
def list_assets(call: Call) -> Any:
    return bootstrap.asset_listing_service().page(call.principal.tenant, call.query.filter())


@route("getAsset")
def get_asset(call: Call, asset_id: str) -> Any:
    return bootstrap.review_service().asset(call.principal.tenant, asset_id)


@route("getAssetThumbnail")
def get_asset_thumbnail(call: Call, asset_id: str) -> Any:
    preview = bootstrap.dashboard_service().thumbnail(call.principal.tenant, asset_id)
    return {
        "content_type": preview.content_type,
        "image_base64": base64.b64encode(preview.data).decode(),
        "width": preview.width,
        "height": preview.height,
    }


@route("releaseAsset")
def release_asset(call: Call, asset_id: str) -> Any:
    record = bootstrap.review_service().release(call.principal, asset_id, call.body.justification)
    # Published only once a second reviewer confirmed; until then it is a request.
    return Reply(200 if record.status == AssetStatus.APPROVED else 202, record)


@route("keepAsset")
def keep_asset(call: Call, asset_id: str) -> Any:
    return bootstrap.review_service().keep(call.principal, asset_id, call.body.justification)


@route("reassignFace")
def reassign_face(call: Call, asset_id: str) -> Any:
    b = call.body
    record = bootstrap.review_service().reassign(
        call.principal, asset_id, b.face_index, b.subject_id, b.justification
    )
    # Would publish: only a request until a second person confirms it (applied: none waits).
    return Reply(202, record) if "pending_reassign" in record.review else record


@route("deleteAsset")
def delete_asset(call: Call, asset_id: str) -> None:
    bootstrap.review_service().delete(call.principal, asset_id, call.body.justification)


# ---------------------------------------------------------------- data-subject rights


@route("exportSubject")
def export_subject(call: Call, subject_id: str) -> Any:
    rights = bootstrap.rights_service()
    export = rights.export(call.principal.tenant, subject_id, actor=call.principal.key_id)
    return {
        "request_id": export.request_id,
        "subject_id": export.subject_id,
        "filename": export.filename,
        "content_type": "application/zip",
        "export_base64": base64.b64encode(export.data).decode(),
        "sha256": export.sha256,
        "counts": export.counts,
    }


@route("searchAppearances")
def search_appearances(call: Call) -> Any:
    photo = call.raw if call.raw is not None else call.body.decoded()
    rights = bootstrap.rights_service()
    return rights.search(call.principal.tenant, photo, actor=call.principal.key_id)


@route("eraseSubject")
def erase_subject(call: Call, subject_id: str) -> Any:
    rights = bootstrap.rights_service()
    return rights.erase(call.principal.tenant, subject_id, actor=call.principal.key_id)


@route("getErasure")
def get_erasure(call: Call, subject_id: str) -> Any:
    return bootstrap.rights_service().erasure(call.principal.tenant, subject_id)


@route("redactAsset")
def redact_asset(call: Call, asset_id: str) -> Any:
    redaction = bootstrap.redaction_service()
    record = redaction.request(call.principal, asset_id, call.body.justification)
    # The held original answers a request; the variant (201) a confirmation.
    return Reply(202, record) if record.asset_id == asset_id else record


@route("getRecordsOfProcessing")
def get_records_of_processing(call: Call) -> Any:
    return bootstrap.processing_records_service().build(call.principal.tenant)


@route("listAuditEvents")
def list_audit_events(call: Call) -> Any:
    q = call.query
    return bootstrap.audit_reader_service().events(
        call.principal,
        limit=q.limit,
        cursor=q.cursor,
        since=q.since,
        until=q.until,
        action=q.action,
    )


@route("verifyAuditTrail")
def verify_audit_trail(call: Call) -> Any:
    return bootstrap.audit_reader_service().verify(call.principal)


@route("getUsage")
def get_usage(call: Call) -> Any:
    return bootstrap.monthly_bill_service().report(call.principal.tenant, call.query.month)


# ---------------------------------------------------------------- e-mailed links


def _check_link(action: str, query: Any) -> Any:
    if _wants_page():
        return _link_page(action, query.token, confirm=False)
    claims = bootstrap.reminders_service().check_link(action, query.token)
    return {
        "action": action,
        "consent_id": claims.consent_id,
        "confirm": f"POST /links/{action}?token=... to confirm",
    }


def _follow_link(action: str, query: Any) -> Any:
    if _wants_page():
        return _link_page(action, query.token, confirm=True)
    consent = bootstrap.reminders_service().follow_link(action, query.token)
    status = "revoked" if consent.revoked_at is not None else "renewed"
    return {
        "action": action,
        "consent_id": consent.consent_id,
        "status": status,
        "expires_at": consent.expires_at,
    }


def _wants_page() -> bool:
    # A browser opening the link gets a page; a client asking for JSON keeps JSON.
    request = app.current_request
    return request is not None and person_pages.wants_html(request.headers.get("accept"))


def _accept_language() -> str | None:
    request = app.current_request
    return request.headers.get("accept-language") if request is not None else None


def _link_page(action: str, token: str, *, confirm: bool) -> Any:
    service = bootstrap.link_pages_service()
    try:
        view = service.confirm(action, token) if confirm else service.describe(action, token)
    except QuitclaimError as exc:
        status, _ = http_errors.for_exception(exc)
        if status >= 500:
            # A dependency failed: the person gets the generic page ("nothing changed").
            logger.exception("link page error", extra={"action": action})
            lang = person_pages.pick_language(None, _accept_language())
            return Reply(status, person_pages.link_problem(lang, "error", None))
        problem = service.problem(token, exc, status)
        lang = person_pages.pick_language(problem.language, _accept_language())
        return Reply(status, person_pages.link_problem(lang, problem.code, problem.contact))
    lang = person_pages.pick_language(view.language, _accept_language())
    if confirm:
        return person_pages.link_done(
            lang,
            action,
            tenant=view.tenant,
            purposes=view.purposes,
            expires_at=view.expires_at,
            contact=view.contact,
        )
    return person_pages.link_confirm(
        lang,
        action,
        token,
        tenant=view.tenant,
        purposes=view.purposes,
        expires_at=view.expires_at,
        renews_until=view.renews_until,
        contact=view.contact,
    )


@route("checkRenewLink")
def check_renew_link(query: Any) -> Any:
    return _check_link("renew", query)


@route("followRenewLink")
def follow_renew_link(query: Any, _posted: Posted) -> Any:
    return _follow_link("renew", query)


@route("checkWithdrawLink")
def check_withdraw_link(query: Any) -> Any:
    return _check_link("withdraw", query)


@route("followWithdrawLink")
def follow_withdraw_link(query: Any, _posted: Posted) -> Any:
    return _follow_link("withdraw", query)


# ---------------------------------------------------------------- a person's own requests


def _page_language() -> str:
    return person_pages.pick_language(None, _accept_language())


def _tenant_page(tenant: str) -> None:
    # Public routes check their own path: an id that cannot exist is the same 404.
    if not is_tenant_id(tenant) or not bootstrap.person_requests_service().tenant_exists(tenant):
        raise NotFound("no such organisation")


@route("personRequestPage")
def person_request_page(tenant: str) -> Any:
    _tenant_page(tenant)
    return person_pages.request_form(_page_language(), tenant)


@route("submitPersonRequest")
def submit_person_request(posted: Posted, tenant: str) -> Any:
    if not is_tenant_id(tenant):
        raise NotFound("no such organisation")
    # Bounded before anything is read or mailed: 429 with Retry-After (docs/person-pages.md).
    bootstrap.public_limits().admit(tenant, posted.source_ip)
    fields = _form_fields(posted)
    email, kind = fields.get("email", ""), fields.get("kind", "")
    lang = _page_language()
    try:
        bootstrap.person_requests_service().submit(tenant, email, kind, lang)
    except ValidationFailed as exc:
        if not _wants_page():
            raise
        form = person_pages.request_form(lang, tenant, email=email, kind=kind, error=exc.field)
        return Reply(400, form)
    if _wants_page():
        return Reply(202, person_pages.request_sent(lang))
    return Reply(202, {"status": "verification_sent"})


def _form_fields(posted: Posted) -> dict[str, str]:
    """``email`` and ``kind`` from a form post or a JSON body (public: read here)."""
    text = posted.body.decode("utf-8", "replace")
    kind = posted.content_type
    if kind.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        parsed = parse_qs(text, max_num_fields=10)
        return {k: v[0] for k, v in parsed.items() if v}
    try:
        data = json.loads(text) if text.strip() else {}
    except (ValueError, RecursionError):
        raise ValidationFailed("the body is not valid JSON", field="body") from None
    if not isinstance(data, dict):
        raise ValidationFailed("the body must be an object", field="body")
    return {k: v for k, v in data.items() if isinstance(v, str)}


@route("checkPersonRequestLink")
def check_person_request_link(query: Any, tenant: str) -> Any:
    service = bootstrap.person_requests_service()
    lang = _page_language()
    try:
        request = service.pending(tenant, query.token)
    except QuitclaimError as exc:
        return _request_problem(exc, lang, tenant)
    if not _wants_page():
        return {"request_id": request.request_id, "kind": request.kind, "status": request.status}
    return person_pages.request_verify(lang, tenant, request.kind, query.token)


@route("verifyPersonRequest")
def verify_person_request(query: Any, _posted: Posted, tenant: str) -> Any:
    service = bootstrap.person_requests_service()
    lang = _page_language()
    try:
        done = service.verify(tenant, query.token)
    except QuitclaimError as exc:
        return _request_problem(exc, lang, tenant)
    request = done.request
    if not _wants_page():
        return {
            "request_id": request.request_id,
            "kind": request.kind,
            "status": request.status,
            "deadline": request.deadline,
            "downloads": list(done.downloads),
            "already": done.already,
        }
    return person_pages.request_done(
        lang,
        tenant,
        kind=request.kind,
        deadline=request.deadline,
        downloads=done.downloads,
        found=bool(request.subject_ids),
        already=done.already,
        days=service.download_days,
        contact=done.contact,
    )


def _request_problem(exc: QuitclaimError, lang: str, tenant: str) -> Any:
    status, _ = http_errors.for_exception(exc)
    if not _wants_page():
        raise exc
    if status >= 500:
        logger.exception("request page error")
        return Reply(status, person_pages.link_problem(lang, "error", None))
    contact = None
    if is_tenant_id(tenant) and exc.code != "bad_link":
        contact = bootstrap.person_requests_service().contact(tenant)
    return Reply(status, person_pages.link_problem(lang, exc.code, contact))


@route("listPersonRequests")
def list_person_requests(call: Call) -> Any:
    items = bootstrap.person_requests_service().list(call.principal.tenant)
    return {"items": [asdict(r) | {"subject_ids": list(r.subject_ids)} for r in items]}


# ---------------------------------------------------------------- retention


@route("setSubjectRetention")
def set_subject_retention(call: Call, subject_id: str) -> None:
    subjects = bootstrap.subject_admin_service()
    subjects.retain_subject_until(call.principal.tenant, subject_id, call.body.until)


# ---------------------------------------------------------------- the rest, by area

route.bind(form_views.VIEWS)
route.bind(webhook_views.VIEWS)
route.bind(policy_views.VIEWS)
route.check_complete()
