"""The compliance officer's console: every operation the API and CLI offer.

Each method takes the calling ``Principal`` first; the tenant always comes
from it (resolved from the API key), never from the request. Another
tenant's ids therefore simply do not exist for the caller (``NotFound``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from quitclaim.domain.access import Capability, require
from quitclaim.domain.errors import (
    ConfigurationError,
    DependencyFailed,
    Forbidden,
    Unauthorized,
    ValidationFailed,
)
from quitclaim.domain.four_eyes import PolicyUpdate, person_name, person_of
from quitclaim.domain.models import TenantPolicy
from quitclaim.domain.ports import AssetRepository, UsagePlanKeys
from quitclaim.domain.records import AssetRecord
from quitclaim.domain.registry import (
    ApiKeyInfo,
    ConsentView,
    Guardian,
    IssuedKey,
    Page,
    Principal,
    Role,
    Subject,
)
from quitclaim.domain.tenancy import DEFAULT_PLAN, new_profile
from quitclaim.domain.webhooks import (
    InboundDelivery,
    IssuedSecret,
    OutboundDelivery,
    WebhookEndpoint,
    WebhookSource,
)
from quitclaim.faces.thumbnails import Thumbnail
from quitclaim.observability import audit
from quitclaim.usecases.billing import with_bill
from quitclaim.usecases.dashboard import Dashboard, OverviewReport
from quitclaim.usecases.keys import ApiKeys
from quitclaim.usecases.compliance_registry import Registry
from quitclaim.usecases.review import Review
from quitclaim.usecases.webhooks import Receipt, WebhookAdmin, WebhookInbox

if TYPE_CHECKING:
    from quitclaim.domain.rights import (
        AccessExport,
        ErasureReport,
        ErasureStatus,
        ProcessingRecords,
        SelfieSearch,
    )
    from quitclaim.domain.usage import UsageReport
    from quitclaim.usecases.limits import RateLimits
    from quitclaim.usecases.processing import RecordsOfProcessing
    from quitclaim.usecases.redaction import Redaction
    from quitclaim.usecases.rights import SubjectRights
    from quitclaim.usecases.usage import Usage

MAX_PAGE = 200


class Console:
    """Facade over the registry, review and policy use-cases (built in bootstrap)."""

    def __init__(
        self,
        *,
        registry: Registry,
        review: Review,
        keys: ApiKeys,
        assets: AssetRepository,
        webhooks: WebhookAdmin | None = None,
        inbox: WebhookInbox | None = None,
        dashboard: Dashboard | None = None,
        rights: SubjectRights | None = None,
        redaction: Redaction | None = None,
        processing: RecordsOfProcessing | None = None,
        limits: RateLimits | None = None,
        deployment_region: str = "eu-central-1",
        usage: Usage | None = None,
        usage_plans: UsagePlanKeys | None = None,
        user_tokens: Callable[[str], Principal] | None = None,
    ) -> None:
        self._usage_plans = usage_plans
        self._usage = usage
        self._user_tokens = user_tokens
        self._limits = limits
        self._deployment_region = deployment_region
        self._rights = rights
        self._redaction = redaction
        self._processing = processing
        self._registry = registry
        self._review = review
        self._keys = keys
        self._assets = assets
        self._webhooks = webhooks
        self._inbox = inbox
        self._dashboard = dashboard

    # -- keys and tenants ---------------------------------------------------
    def resolve_key(self, secret: str) -> Principal:
        """The principal an API key stands for; ``Unauthorized`` otherwise."""
        return self._keys.resolve(secret)

    def resolve_token(self, token: str) -> Principal:
        """The person a user-pool sign-in token stands for (docs/sign-in.md)."""
        if self._user_tokens is None:
            raise Unauthorized("sign-in is not configured on this stack: use an API key")
        return self._user_tokens(token)

    def create_tenant(
        self,
        tenant: str,
        *,
        label: str = "admin",
        name: str | None = None,
        region: str | None = None,
        plan: str | None = None,
        contact_email: str | None = None,
        policy: TenantPolicy | None = None,
    ) -> IssuedKey:
        """Operator: onboard a tenant: profile, default policy, first admin key.

        With no profile fields it creates a bare tenant (no plan: the app does
        not throttle it), as tests and tenants from before onboarding have.
        Each ``ValidationFailed`` names its field (``region``, ``plan``, ...).
        """
        profile = None
        if any(v is not None for v in (name, region, plan, contact_email)):
            profile = new_profile(
                tenant,
                name=name if name is not None else tenant,
                region=region if region is not None else self._deployment_region,
                plan=plan if plan is not None else DEFAULT_PLAN,
                contact_email=contact_email or "",
                deployment_region=self._deployment_region,
            )
        self._registry.create_tenant(policy or TenantPolicy(tenant=tenant), profile)
        if profile is not None and self._usage_plans is not None:
            # API Gateway throttles the tenant by this key from its first request.
            self._usage_plans.attach(tenant, profile.plan)
        return self._keys.issue(tenant, Role.ADMIN, label)

    def admit(self, principal: Principal) -> None:
        """``RateLimited`` when the tenant is over its plan's request rate."""
        if self._limits is not None:
            self._limits.admit(principal.tenant)

    def who_am_i(self, principal: Principal) -> Principal:
        """The caller as the API sees them (the dashboard shows it, and hides admin forms)."""
        return principal

    def create_key(
        self,
        principal: Principal,
        role: Role,
        label: str,
        person: str,
        valid_days: int | None = None,
    ) -> IssuedKey:
        """Admin: issue another key to a named person (four eyes count people, not keys)."""
        _admin(principal)
        issued = self._keys.issue(
            principal.tenant,
            Role(role),
            label.strip()[:100],
            person_name(person),
            valid_days=valid_days,
        )
        audit(
            "key.created",
            tenant=principal.tenant,
            key_id=issued.key_id,
            role=issued.role.value,
            source=principal.key_id,
            people=[person_of(principal)],
        )
        return issued

    def list_keys(self, principal: Principal) -> list[ApiKeyInfo]:
        """Admin or DPO: every key of the tenant, with status (never a secret)."""
        require(principal, Capability.ADMIN_READ)
        return self._keys.list_keys(principal.tenant)

    def revoke_key(self, principal: Principal, key_id: str) -> ApiKeyInfo:
        """Admin: revoke a key; it is refused from its next request on."""
        _admin(principal)
        return self._keys.revoke(principal, key_id)

    def rotate_key(
        self, principal: Principal, key_id: str, valid_days: int | None = None
    ) -> IssuedKey:
        """Admin: a new secret for the key's name and person; the old one is revoked."""
        _admin(principal)
        return self._keys.rotate(principal, key_id, valid_days=valid_days)

    def get_policy(self, principal: Principal) -> TenantPolicy:
        return self._registry.policy(principal.tenant)

    def pending_policy(self, principal: Principal) -> dict[str, Any] | None:
        """The policy change waiting for a second administrator, if any."""
        return self._registry.pending_policy(principal.tenant)

    def update_policy(self, principal: Principal, changes: Mapping[str, Any]) -> PolicyUpdate:
        """Admin: change policy fields (audited; applies to new uploads only).

        A change that loosens the gate is only requested until a second,
        different administrator sends the same change (``PolicyUpdate.pending``).
        """
        _admin(principal)
        return self._registry.update_policy(principal.tenant, changes, who=principal)

    def adopt_accuracy_advice(
        self, principal: Principal, advice: Mapping[str, Any]
    ) -> PolicyUpdate:
        """Admin: adopt an accuracy audit's threshold advice (two people, audited)."""
        _admin(principal)
        return self._registry.adopt_accuracy_advice(principal.tenant, advice, who=principal)

    # -- subjects -----------------------------------------------------------
    def create_subject(
        self,
        principal: Principal,
        display_name: str,
        *,
        external_ref: str | None = None,
        email: str | None = None,
        date_of_birth: date | None = None,
        guardian: Guardian | None = None,
    ) -> Subject:
        _admin(principal)
        return self._registry.create_subject(
            principal.tenant,
            display_name,
            external_ref=external_ref,
            email=email,
            date_of_birth=date_of_birth,
            guardian=guardian,
        )

    def get_subject(self, principal: Principal, subject_id: str) -> Subject:
        return self._registry.subject(principal.tenant, subject_id)

    def update_subject(
        self, principal: Principal, subject_id: str, changes: Mapping[str, Any]
    ) -> Subject:
        """Change display_name, external_ref, email, date_of_birth or guardian."""
        _admin(principal)
        return self._registry.update_subject(principal.tenant, subject_id, changes)

    def list_subjects(
        self, principal: Principal, *, limit: int = 50, cursor: str | None = None
    ) -> Page:
        return self._registry.subjects.page(principal.tenant, _limit(limit), cursor)

    def delete_subject(self, principal: Principal, subject_id: str) -> None:
        """Remove the subject and their templates; consents become tombstones."""
        self.erase_subject(principal, subject_id)

    def enrol(
        self,
        principal: Principal,
        subject_id: str,
        photos: Sequence[bytes],
        *,
        biometric_consent: bool = False,
        source: str = "api",
    ) -> Subject:
        """Add reference photos (exactly one face each, else ``EnrolmentRejected``).

        Refused (400, ``biometric_consent``) unless the caller states the
        person's explicit consent to matching; it is recorded on the subject.
        """
        _admin(principal)
        subject = self._registry.subject(principal.tenant, subject_id)
        self._registry.enrol_subject(
            principal.tenant,
            subject.display_name,
            photos,
            subject_id=subject_id,
            biometric_consent=biometric_consent,
            consent_source=source,
        )
        return self._registry.subject(principal.tenant, subject_id)

    # -- consents -----------------------------------------------------------
    def grant_consent(
        self,
        principal: Principal,
        subject_id: str,
        *,
        purposes: Sequence[str],
        valid_from: datetime,
        expires_at: datetime | None,
        signer: str,
        form_version: str,
        document: bytes | None = None,
        document_type: str | None = None,
        source: str = "api",
    ) -> ConsentView:
        """Record a signed quitclaim; re-decides the subject's held assets."""
        _admin(principal)
        consent = self._registry.grant_consent(
            principal.tenant,
            subject_id,
            purposes,
            valid_from,
            expires_at,
            source=source,
            signer=signer,
            form_version=form_version,
            document=document,
            document_type=document_type,
            actor=principal.key_id,
        )
        return self._registry.consent_view(principal.tenant, subject_id, consent.consent_id)

    def renew_consent(
        self,
        principal: Principal,
        subject_id: str,
        consent_id: str,
        *,
        expires_at: datetime | None,
        valid_from: datetime | None = None,
        source: str = "api",
    ) -> ConsentView:
        _admin(principal)
        self._registry.renew_consent(
            principal.tenant,
            subject_id,
            consent_id,
            expires_at,
            valid_from=valid_from,
            source=source,
            actor=principal.key_id,
        )
        return self._registry.consent_view(principal.tenant, subject_id, consent_id)

    def revoke_consent(
        self, principal: Principal, subject_id: str, consent_id: str, *, source: str = "api"
    ) -> ConsentView:
        """Withdraw now; approved assets with the subject leave the library."""
        _admin(principal)
        self._registry.revoke_consent(
            principal.tenant, subject_id, consent_id, source=source, actor=principal.key_id
        )
        return self._registry.consent_view(principal.tenant, subject_id, consent_id)

    def list_consents(self, principal: Principal, subject_id: str) -> list[ConsentView]:
        return self._registry.consent_views(principal.tenant, subject_id)

    def get_consent(self, principal: Principal, subject_id: str, consent_id: str) -> ConsentView:
        self._registry.subject(principal.tenant, subject_id)
        return self._registry.consent_view(principal.tenant, subject_id, consent_id)

    def consent_document(
        self, principal: Principal, subject_id: str, consent_id: str
    ) -> tuple[bytes, str]:
        """The signed document's bytes and content type."""
        self._registry.subject(principal.tenant, subject_id)
        return self._registry.consent_document(principal.tenant, subject_id, consent_id)

    # -- assets and review ----------------------------------------------------
    def list_assets(
        self,
        principal: Principal,
        *,
        status: str | None = "quarantined",
        reason: str | None = None,
        subject_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        if status is not None and status not in _STATUSES:
            raise ValidationFailed(f"status must be one of {sorted(_STATUSES)}", field="status")
        return self._assets.page(
            principal.tenant,
            status=status,
            reason=reason,
            subject_id=subject_id,
            since=since,
            until=until,
            limit=_limit(limit),
            cursor=cursor,
        )

    def get_asset(self, principal: Principal, asset_id: str) -> AssetRecord:
        return self._review.asset(principal.tenant, asset_id)

    def release(self, principal: Principal, asset_id: str, justification: str) -> AssetRecord:
        """First call asks for release; a second, different reviewer confirms and publishes."""
        return self._review.release(principal, asset_id, justification)

    def keep(self, principal: Principal, asset_id: str, justification: str) -> AssetRecord:
        return self._review.keep(principal, asset_id, justification)

    def reassign(
        self,
        principal: Principal,
        asset_id: str,
        face_index: int,
        subject_id: str | None,
        justification: str,
    ) -> AssetRecord:
        """Say a face is someone else (or nobody known) and re-decide the asset."""
        return self._review.reassign(principal, asset_id, face_index, subject_id, justification)

    def delete_asset(self, principal: Principal, asset_id: str, justification: str) -> None:
        self._review.delete(principal, asset_id, justification)

    # -- data-subject rights --------------------------------------------------
    def export_subject(self, principal: Principal, subject_id: str) -> AccessExport:
        """Admin: everything held about the person, as a ZIP (GDPR Art. 15)."""
        require(principal, Capability.EXPORT)
        return self._rights_or_fail().export(principal.tenant, subject_id, actor=principal.key_id)

    def search_appearances(self, principal: Principal, photo: bytes) -> SelfieSearch:
        """Admin: where does the person in this photo appear? Nothing of it is stored."""
        require(principal, Capability.EXPORT)
        return self._rights_or_fail().search(principal.tenant, photo, actor=principal.key_id)

    def erase_subject(self, principal: Principal, subject_id: str) -> ErasureReport:
        """Admin: erase the person (GDPR Art. 17); the report says what went where."""
        _admin(principal)
        if self._rights is None:
            return self._registry.delete_subject(
                principal.tenant, subject_id, actor=principal.key_id
            )
        return self._rights.erase(principal.tenant, subject_id, actor=principal.key_id)

    def retain_subject(self, principal: Principal, subject_id: str, until: datetime) -> None:
        """Admin: the person's record ends at ``until`` (docs/retention.md)."""
        _admin(principal)
        self._registry.retain_subject_until(principal.tenant, subject_id, until)

    def erasure(self, principal: Principal, subject_id: str) -> ErasureStatus:
        """Admin: a past erasure's report, with every store verified again now."""
        require(principal, Capability.ADMIN_READ)
        return self._rights_or_fail().erasure(principal.tenant, subject_id)

    def redact_asset(self, principal: Principal, asset_id: str, justification: str) -> AssetRecord:
        """Ask for, or (as a second person) confirm and publish, a pixelated variant.

        Answers the held original while the request waits, the variant once published.
        """
        if self._redaction is None:
            raise DependencyFailed("redaction is not configured")
        return self._redaction.request(principal, asset_id, justification)

    def records_of_processing(self, principal: Principal) -> ProcessingRecords:
        """Admin: the tenant's records of processing (Art. 30) and a DPIA starter."""
        require(principal, Capability.RECORDS)
        if self._processing is None:
            raise DependencyFailed("records of processing are not configured")
        return self._processing.build(principal.tenant)

    # -- metering -------------------------------------------------------------
    def count_api_call(self, principal: Principal) -> None:
        """Meter one authenticated request (nothing to meter on a stack without it)."""
        if self._usage is not None:
            self._usage.count_api_call(principal.tenant)

    def usage(self, principal: Principal, month: str | None) -> UsageReport:
        """The tenant's billable units in one UTC month (any role may read its bill)."""
        if self._usage is None:
            raise DependencyFailed("usage metering is not configured")
        report = self._usage.report(principal.tenant, month)
        # The plan sets the price list; a store without profiles (unit fakes) has none.
        read = getattr(self._registry.tenants, "profile", None)
        profile = read(principal.tenant) if read is not None else None
        return with_bill(report, profile.plan if profile else None, self._usage.clock.now())

    def _rights_or_fail(self) -> SubjectRights:
        if self._rights is None:
            raise DependencyFailed("data-subject rights are not configured")
        return self._rights

    # -- webhooks -------------------------------------------------------------
    def receive_webhook(
        self,
        tenant: str,
        source: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        method: str = "POST",
        query: Mapping[str, str] | None = None,
    ) -> Receipt:
        """A marketing tool's signed delivery (no API key: the signature is the auth)."""
        return self._inbox_or_fail().receive(
            tenant, source, headers, body, method=method, query=query
        )

    def check_webhook(self, tenant: str, source: str, query: Mapping[str, str]) -> None:
        """Mailchimp's GET check of a webhook URL (the URL token is the auth)."""
        self._inbox_or_fail().handshake(tenant, source, query)

    def create_webhook_source(
        self,
        principal: Principal,
        name: str,
        *,
        mapping: Mapping[str, Any] | None,
        preset: str | None,
        default_validity_days: int,
        dialect: str = "standard",
        secret: str | None = None,
    ) -> dict[str, Any]:
        _admin(principal)
        source, issued = self._admin_webhooks().register_source(
            principal.tenant,
            name,
            mapping=mapping,
            preset=preset,
            default_validity_days=default_validity_days,
            dialect=dialect,
            secret=secret,
        )
        path = f"/webhooks/{source.tenant}/{source.name}"
        if issued is not None and source.dialect == "mailchimp":
            path += f"?token={issued.secret}"  # the URL is the secret: shown once
        return {
            "source": source,
            # None where the tool owns the secret: it was given, and is never shown.
            "secret": issued.secret if issued is not None else None,
            "url_path": path,
        }

    def list_webhook_sources(self, principal: Principal) -> list[WebhookSource]:
        require(principal, Capability.ADMIN_READ)
        return self._admin_webhooks().sources(principal.tenant)

    def delete_webhook_source(self, principal: Principal, name: str) -> None:
        _admin(principal)
        self._admin_webhooks().delete_source(principal.tenant, name)

    def rotate_webhook_source(
        self, principal: Principal, name: str, overlap_hours: float
    ) -> IssuedSecret:
        _admin(principal)
        return self._admin_webhooks().rotate_source_secret(
            principal.tenant, name, timedelta(hours=overlap_hours)
        )

    def list_inbound_deliveries(
        self, principal: Principal, name: str, status: str | None
    ) -> list[InboundDelivery]:
        require(principal, Capability.ADMIN_READ)
        admin = self._admin_webhooks()
        admin.source(principal.tenant, name)
        return admin.inbound_deliveries(principal.tenant, name, status)

    def retry_inbound_delivery(
        self, principal: Principal, name: str, delivery_id: str
    ) -> InboundDelivery:
        _admin(principal)
        return self._admin_webhooks().retry_inbound(principal.tenant, name, delivery_id)

    def dismiss_inbound_delivery(
        self, principal: Principal, name: str, delivery_id: str
    ) -> InboundDelivery:
        _admin(principal)
        return self._admin_webhooks().dismiss_inbound(principal.tenant, name, delivery_id)

    def create_webhook_endpoint(
        self, principal: Principal, url: str, event_types: Sequence[str], description: str
    ) -> dict[str, Any]:
        _admin(principal)
        endpoint, secret = self._admin_webhooks().register_endpoint(
            principal.tenant, url, list(event_types), description
        )
        return {"endpoint": endpoint, "secret": secret.secret}

    def list_webhook_endpoints(self, principal: Principal) -> list[WebhookEndpoint]:
        require(principal, Capability.ADMIN_READ)
        return self._admin_webhooks().endpoints(principal.tenant)

    def delete_webhook_endpoint(self, principal: Principal, endpoint_id: str) -> None:
        _admin(principal)
        self._admin_webhooks().delete_endpoint(principal.tenant, endpoint_id)

    def rotate_webhook_endpoint(
        self, principal: Principal, endpoint_id: str, overlap_hours: float
    ) -> IssuedSecret:
        _admin(principal)
        return self._admin_webhooks().rotate_endpoint_secret(
            principal.tenant, endpoint_id, timedelta(hours=overlap_hours)
        )

    def list_outbound_deliveries(
        self, principal: Principal, status: str | None, endpoint_id: str | None
    ) -> list[OutboundDelivery]:
        require(principal, Capability.ADMIN_READ)
        return self._admin_webhooks().outbound_deliveries(principal.tenant, status, endpoint_id)

    def replay_delivery(self, principal: Principal, delivery_id: str) -> OutboundDelivery:
        _admin(principal)
        return self._admin_webhooks().replay(principal.tenant, delivery_id)

    def _admin_webhooks(self) -> WebhookAdmin:
        if self._webhooks is None:
            raise DependencyFailed("webhooks are not configured")
        return self._webhooks

    def _inbox_or_fail(self) -> WebhookInbox:
        if self._inbox is None:
            raise DependencyFailed("webhooks are not configured")
        return self._inbox

    # -- the review dashboard (read models) -----------------------------------
    def overview(self, principal: Principal, *, months: int = 12) -> OverviewReport:
        """Monthly volumes, consents expiring soon, dead-letter counts."""
        return self._dashboard_service().overview(principal.tenant, months)

    def people(self, principal: Principal, *, limit: int = 50, cursor: str | None = None) -> Page:
        """Subjects with their consents and a summary status (valid, expiring, ...)."""
        return self._dashboard_service().people(principal.tenant, _limit(limit), cursor)

    def thumbnail(self, principal: Principal, asset_id: str) -> Thumbnail:
        """A small JPEG of a quarantined or approved image (boxes are drawn by the page)."""
        return self._dashboard_service().thumbnail(principal.tenant, asset_id)

    def _dashboard_service(self) -> Dashboard:
        if self._dashboard is None:
            raise ConfigurationError("the dashboard read models are not configured")
        return self._dashboard


_STATUSES = {"approved", "quarantined", "rejected", "deleted"}


def _admin(principal: Principal) -> None:
    if principal.role is not Role.ADMIN:
        raise Forbidden("this needs an admin key", code="admin_only")


def _limit(limit: int) -> int:
    if not 1 <= int(limit) <= MAX_PAGE:
        raise ValidationFailed(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    return int(limit)
