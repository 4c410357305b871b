"""Subjects and consents and what a person sees: registry, mail, links, forms, requests, rights."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from quitclaim.adapters.aws import aws_client
from quitclaim.adapters.dynamo import (
    DynamoApiKeys,
    DynamoAssets,
    DynamoConsents,
    DynamoRequests,
    DynamoSubjects,
    DynamoTenants,
)
from quitclaim.adapters.dynamo.form_store import DynamoFormStore
from quitclaim.adapters.person_request_store import DynamoPersonRequests, S3ExportLinks
from quitclaim.adapters.person_request_store import bind as bind_person_requests
from quitclaim.adapters.queues import SqsQueueDepths
from quitclaim.adapters.s3_store import S3ObjectStore
from quitclaim.bootstrap import current_clock
from quitclaim.bootstrap.wire_common import (
    bound_settings,
    dead_letter_queues,
    event_publisher,
    expiry_schedules,
    face_engine,
    galleries,
    link_key,
    ses_mailer,
    tenant_contact,
)
from quitclaim.bootstrap.wire_decisions import (
    recheck_service,
)
from quitclaim.config import Settings, get_settings
from quitclaim.usecases.compliance_registry import Registry
from quitclaim.usecases.digest import Digest
from quitclaim.usecases.form_submissions import Forms
from quitclaim.usecases.handle_person_requests import PersonRequests
from quitclaim.usecases.limits import PublicLimits
from quitclaim.usecases.link_pages import LinkPages
from quitclaim.usecases.mail_feedback import MailFeedback
from quitclaim.usecases.notices import ConsentMail
from quitclaim.usecases.reminders import LinkSigner, Reminders
from quitclaim.usecases.subject_rights import SubjectRights

if TYPE_CHECKING:
    from quitclaim.usecases.import_consents import ConsentImport
    from quitclaim.usecases.stamp_accuracy import AccuracyStamps


@lru_cache(maxsize=1)
def registry_service() -> Registry:
    """Tenant-level registry (operators, the demo, webhooks)."""
    settings = bound_settings(get_settings())
    store = S3ObjectStore(aws_client("s3", settings))
    return Registry(
        tenants=DynamoTenants(),
        subjects=DynamoSubjects(),
        consents=DynamoConsents(),
        clock=current_clock(),
        engine_factory=face_engine,
        recheck=recheck_service(),
        documents=store,
        documents_bucket=settings.documents_bucket,
        max_document_bytes=settings.max_document_bytes,
        schedules=expiry_schedules(settings),
        events=event_publisher(settings),
        assets=DynamoAssets(),
        document_versions=store,
        library_bucket=settings.library_bucket,
        notices=consent_mail(),
    )


@lru_cache(maxsize=1)
def consent_mail() -> ConsentMail | None:
    """The person's confirmation and receipt e-mails (None: no mail configured)."""
    settings = get_settings()
    if not settings.link_secret_arn or not settings.mail_from:
        return None
    return ConsentMail(
        subjects=DynamoSubjects(),
        tenants=DynamoTenants(),
        mailer=ses_mailer(settings),
        signer=LinkSigner(link_key),
        clock=current_clock(),
        base_url=settings.public_base_url,
        contact=tenant_contact,
    )


@lru_cache(maxsize=1)
def link_pages_service() -> LinkPages:
    """What the pages of an e-mailed link show (the public API routes)."""
    settings = bound_settings(get_settings())
    return LinkPages(
        reminders=reminders_service(),
        signer=LinkSigner(link_key),
        consents=DynamoConsents(),
        subjects=DynamoSubjects(),
        clock=current_clock(),
        contact=tenant_contact,
        renewal_days=settings.renewal_days,
    )


@lru_cache(maxsize=1)
def person_requests_service() -> PersonRequests:
    """Access and erasure requests a person makes on a page (the public API routes)."""
    settings = bound_settings(get_settings())
    bind_person_requests(settings)
    registry = registry_service()
    return PersonRequests(
        store=DynamoPersonRequests(),
        tenants=DynamoTenants(),
        find_subjects=lambda tenant, email: registry.find_subjects(tenant, email=email),
        export=lambda tenant, sid: rights_service().export(tenant, sid, actor="person-request"),
        links=S3ExportLinks(aws_client("s3", settings), bucket=settings.documents_bucket),
        mailer=ses_mailer(settings),
        signer=LinkSigner(link_key),
        clock=current_clock(),
        base_url=settings.public_base_url,
        contact=tenant_contact,
    )


@lru_cache(maxsize=1)
def rights_service() -> SubjectRights:
    """Access exports, selfie searches and erasures (the API)."""
    bound_settings(get_settings())
    return SubjectRights(
        registry=registry_service(),
        assets=DynamoAssets(),
        tenants=DynamoTenants(),
        requests=DynamoRequests(),
        engine_factory=face_engine,
        clock=current_clock(),
        galleries=galleries(),
    )


@lru_cache(maxsize=1)
def reminders_service() -> Reminders:
    settings = bound_settings(get_settings())
    return Reminders(
        consents=DynamoConsents(),
        subjects=DynamoSubjects(),
        tenants=DynamoTenants(),
        registry=registry_service(),
        mailer=ses_mailer(settings),
        signer=LinkSigner(link_key),
        clock=current_clock(),
        base_url=settings.public_base_url,
        offsets=settings.reminder_days,
        renewal_days=settings.renewal_days,
        link_ttl_days=settings.link_ttl_days,
        events=event_publisher(settings),
        age_of_consent=lambda tenant: DynamoFormStore().settings(tenant).age_of_consent,
        also_daily=lambda: forms_service().ask_majority(),
    )


@lru_cache(maxsize=1)
def forms_service() -> Forms:
    """The hosted quitclaim form (public pages and the officer's links)."""
    settings = bound_settings(get_settings())
    return Forms(
        registry=registry_service(),
        store=DynamoFormStore(),
        signer=LinkSigner(link_key),
        mailer=ses_mailer(settings),
        clock=current_clock(),
        base_url=settings.public_base_url,
        hash_key=link_key,
    )


@lru_cache(maxsize=1)
def mail_feedback_service() -> MailFeedback:
    """SES bounces and complaints, recorded on subjects (docs/retention.md)."""
    bound_settings(get_settings())
    registry = registry_service()
    return MailFeedback(subjects=registry.subjects, update=registry.update_subject)


@lru_cache(maxsize=1)
def digest_service() -> Digest:
    """The officer's digest e-mails (the daily schedule; docs/retention.md)."""
    settings = bound_settings(get_settings())
    from quitclaim.adapters.dynamo.tenant_directory import DynamoTenantDirectory

    queues = dead_letter_queues(settings)
    return Digest(
        directory=DynamoTenantDirectory(),
        assets=DynamoAssets(),
        subjects=DynamoSubjects(),
        expiries=DynamoConsents(),
        mailer=ses_mailer(settings),
        clock=current_clock(),
        queues=SqsQueueDepths(aws_client("sqs", settings), queues)
        if any(queues.values())
        else None,
        base_url=settings.public_base_url,
        requests=person_requests_service(),
        keys=DynamoApiKeys(),
        accuracy=_accuracy_stamps(settings).evidence,
    )


def _accuracy_stamps(settings: Settings) -> AccuracyStamps:
    """The last accuracy audit's stamp (no face layer needed: the digest's function)."""
    from quitclaim.usecases.stamp_accuracy import AccuracyStamps

    store = S3ObjectStore(aws_client("s3", settings))
    return AccuracyStamps(store, settings.documents_bucket, DynamoTenants())


def consent_import_service() -> ConsentImport:
    """Import of existing consents from a spreadsheet (CLI and API); built per call."""
    from quitclaim.adapters.import_files import S3ImportStaging
    from quitclaim.usecases.import_consents import ConsentImport

    settings = bound_settings(get_settings())
    staging = S3ImportStaging(aws_client("s3", settings), settings.documents_bucket)
    return ConsentImport(registry_service(), current_clock(), staging)


@lru_cache(maxsize=1)
def public_limits() -> PublicLimits:
    """The public pages' bound (a person's request, the hosted form), per container."""
    return PublicLimits()
