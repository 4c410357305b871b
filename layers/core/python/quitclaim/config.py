"""Settings: the only module that reads the environment.

Validated once per container (``get_settings`` is cached); a bad value or a
region outside the EU list stops the container before it touches any data.
Plain dataclasses, no pydantic: every function imports this at its cold start,
and most need no pydantic at all (``make bench``: handler_init).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from quitclaim.domain.errors import ConfigurationError, RegionNotAllowed
from quitclaim.domain.tenancy import EU_REGIONS

# GDPR: personal data (and biometrics above all) stays in the EU/EEA (the list
# lives in the domain: tenant onboarding checks region pins against it too).

PREFIX = "QC_"


def setting(default: Any, *, env: str = "", **bounds: float) -> Any:
    """A field with its variable's name (default ``QC_<FIELD>``) and bounds (ge, gt, le)."""
    return dataclasses.field(default=default, metadata={"env": env, **bounds})


@dataclasses.dataclass(frozen=True, init=False)
class Settings:
    """Everything configurable, from environment variables (``QC_`` prefix).

    Keyword arguments win over the environment (tests build settings so).
    """

    region: str = setting("eu-central-1", env="AWS_REGION")
    # Comma-separated in the environment, e.g. QC_ALLOWED_REGIONS=eu-central-1,eu-west-1
    allowed_regions: frozenset[str] = EU_REGIONS
    # Local stack / tests only; unset in AWS.
    endpoint_url: str | None = setting(None, env="AWS_ENDPOINT_URL")

    uploads_bucket: str = "quitclaim-uploads"
    library_bucket: str = "quitclaim-library"
    quarantine_bucket: str = "quitclaim-quarantine"
    documents_bucket: str = "quitclaim-documents"
    # The tenants' audit hash chains: records in the audit bucket, heads here.
    audit_bucket: str = "quitclaim-audit"
    audit_heads_table: str = "quitclaim-audit-heads"

    tenants_table: str = "quitclaim-tenants"
    api_keys_table: str = "quitclaim-api-keys"
    subjects_table: str = "quitclaim-subjects"
    consents_table: str = "quitclaim-consents"
    assets_table: str = "quitclaim-assets"
    appearances_table: str = "quitclaim-appearances"
    webhooks_table: str = "quitclaim-webhooks"
    idempotency_table: str = "quitclaim-idempotency"
    # Data-subject requests (access, selfie search, erasure): ids and counts only.
    requests_table: str = "quitclaim-requests"
    # AWS Marketplace (docs/billing.md): the SaaS product's code; empty: every
    # tenant is billed through the usage.hourly event only.
    marketplace_product_code: str = ""

    # Fairness (docs/fairness.md): each tenant's first `admission_share` uploads
    # per `admission_window_s` are scanned on the main lane, the rest on the
    # bulk lane. Without a table or a bulk queue everything stays on the main lane.
    admission_table: str = ""
    # API Gateway usage plans (docs/access.md): "free=<id>,standard=<id>,..." from the
    # stack's outputs; empty (the local stack): no usage-plan keys are managed.
    usage_plan_ids: str = ""
    # Names the tenants' usage-plan keys of this stack (the stack's name in AWS).
    usage_key_namespace: str = "local"
    bulk_queue_url: str = ""
    admission_share: int = setting(100, ge=1)
    admission_window_s: int = setting(60, ge=1, le=3600)

    incoming_prefix: str = "incoming/"
    rejected_prefix: str = "rejected/"
    # Where, in the quarantine bucket, an upload's own bytes are kept once its
    # published form is placed (docs/every-pixel.md): ``originals/{tenant}/{asset_id}``.
    originals_prefix: str = "originals/"

    # Input limits: checked before any pixel is decoded.
    max_upload_bytes: int = 50 * 1024 * 1024
    max_document_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 60_000_000
    max_frames: int = 200
    # Detection runs on at most this many pixels; boxes are mapped back.
    detect_max_pixels: int = 2_500_000
    # Pixels the face detector may scan per image (its working copy after
    # dlib's upsampling, every distinct frame together): 100 MP is a 24 MP photo
    # searched for 40 px faces. A larger scan is not attempted: the upload is
    # rejected as detection_budget_exceeded (docs/budgets.md).
    detect_budget_pixels: int = setting(100_000_000, ge=1_000_000)

    # Time: exact expiry schedules, reminders and their signed links.
    expiry_target_arn: str = ""
    scheduler_role_arn: str = ""
    schedule_group: str = "default"
    mail_from: str = "quitclaim@example.org"
    # SES configuration set every mail goes through: it reports bounces and
    # complaints to the feedback topic (empty: none, as in unit tests).
    mail_configuration_set: str = ""
    public_base_url: str = "http://127.0.0.1:8000"
    link_secret_arn: str = ""
    # The outbound-event outbox (webhooks to the DAM and CRMs consume it).
    events_queue_url: str = ""
    # Uploads held over the monthly quota are re-enqueued here when released.
    ingest_queue_url: str = ""
    # Webhooks: verified inbound deliveries wait here for the worker.
    inbound_queue_url: str = ""
    # Accuracy audit jobs (tenant and job id) wait here for the audits worker.
    audits_queue_url: str = ""
    # Signing secrets: SSM SecureString parameters under this path, this key.
    webhook_secrets_prefix: str = "/quitclaim/webhooks"
    webhook_secrets_key_id: str = ""
    # Retries of outbound deliveries: one-time schedules on this function.
    webhook_target_arn: str = ""
    webhook_schedule_group: str = "default"
    # A receiver gets at least this long to come back before the dead-letter list.
    webhook_retry_window_hours: float = setting(24.0, ge=24.0, le=24 * 7)
    # How long a webhook-id is remembered (longer than any sender's retries).
    webhook_dedupe_days: int = setting(7, ge=1, le=30)
    # Budgets (docs/budgets.md): endpoints per tenant; one POST's timeout; the
    # time one outbound batch may spend on POSTs (sent side by side, at most
    # webhook_parallelism at once); a delivery cut short retries on schedule.
    max_webhook_endpoints: int = setting(10, ge=1, le=100)
    webhook_timeout_s: float = setting(10.0, gt=0, le=30)
    webhook_batch_budget_s: float = setting(30.0, gt=0, le=600)
    webhook_parallelism: int = setting(16, ge=1, le=64)
    # Production refuses http:// and private addresses (SSRF); the local stack allows them.
    webhook_allow_private_targets: bool = False
    # Dead-letter queues whose depth the dashboard's overview shows (empty: not shown).
    ingest_dlq_url: str = ""
    bulk_dlq_url: str = ""
    recheck_dlq_url: str = ""
    purge_dlq_url: str = ""
    async_dlq_url: str = ""
    inbound_dlq_url: str = ""
    events_dlq_url: str = ""
    reminder_days: tuple[int, ...] = (30, 7, 1)
    renewal_days: int = 365
    link_ttl_days: int = 45
    # How far back the reconciling sweep looks (days of the expiry index).
    sweep_lookback_days: int = 3
    # Retention the stack was deployed with (template parameters), for the
    # records of processing (GDPR Art. 30).
    log_retention_days: int = 90
    audit_retention_days: int = 2190

    # Tenant policy defaults (a tenant record may override them).
    default_threshold: float = 0.5
    default_margin: float = 0.05
    default_min_face_px: int = 40
    default_purpose: str = "web"
    # People's sign-in (docs/sign-in.md): the stack's Cognito user pool and its
    # app client; empty: the API takes API keys only. The hosted sign-in's base
    # URL (the pool's domain; locally the stand-in) is what the dashboard opens.
    user_pool_id: str = ""
    user_pool_client_id: str = ""
    user_pool_domain_url: str = ""

    def __init__(self, **values: Any) -> None:
        given = {**_environment_values(), **values}
        problems: list[str] = []
        for spec in dataclasses.fields(self):
            raw = given.get(spec.name, spec.default)
            try:
                value = _convert(spec.type, raw) if spec.name in given else raw
                _check_bounds(spec, value)
            except (TypeError, ValueError) as exc:
                problems.append(f"{spec.metadata.get('env') or spec.name}: {exc}")
                continue
            object.__setattr__(self, spec.name, value)
        if not problems:
            problems = _rules(self)
        if problems:
            raise InvalidSettings("; ".join(problems))


class InvalidSettings(ValueError):
    """A variable that does not convert, is out of bounds, or breaks a rule."""


def _rules(settings: Settings) -> list[str]:
    """What no single field can say: the EU list, the threshold's range."""
    if not settings.allowed_regions <= EU_REGIONS:
        extra = ", ".join(sorted(settings.allowed_regions - EU_REGIONS))
        return [f"settings: allowed_regions may only list EU regions; not: {extra}"]
    if not 0.0 < settings.default_threshold <= 0.6:
        return ["settings: default_threshold must be in (0, 0.6]"]
    return []


def _environment_values() -> dict[str, Any]:
    """Each field's variable, if set: ``QC_<FIELD>`` or its own name, any letter case."""
    environ = {k.lower(): v for k, v in os.environ.items()}
    values: dict[str, Any] = {}
    for spec in dataclasses.fields(Settings):
        variable = (spec.metadata.get("env") or PREFIX + spec.name).lower()
        if variable in environ:
            values[spec.name] = environ[variable]
    return values


_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise ValueError("Input should be a valid boolean")


def _integer(value: Any) -> int:
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("Input should be a valid integer, got a number with a fractional part")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(
            "Input should be a valid integer, unable to parse string as an integer"
        ) from None


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(
            "Input should be a valid number, unable to parse string as a number"
        ) from None


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("Input should be a valid string")
    return value


def _days(value: Any) -> tuple[int, ...]:
    # From the environment a JSON list (``QC_REMINDER_DAYS=[30, 7, 1]``).
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError("error parsing value from the environment (JSON)") from None
    if not isinstance(value, (list, tuple)):
        raise ValueError("Input should be a valid tuple")
    return tuple(_integer(v) for v in value)


def _regions(value: Any) -> frozenset[str]:
    # Comma-separated in the environment: QC_ALLOWED_REGIONS=eu-central-1,eu-west-1
    if isinstance(value, str):
        return frozenset(r.strip() for r in value.split(",") if r.strip())
    return frozenset(_text(v) for v in value)


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "str": _text,
    "str | None": lambda v: None if v is None else _text(v),
    "int": _integer,
    "float": _number,
    "bool": _flag,
    "tuple[int, ...]": _days,
    "frozenset[str]": _regions,
}


def _convert(annotation: Any, value: Any) -> Any:
    return _CONVERTERS[str(annotation)](value)


def _check_bounds(spec: dataclasses.Field[Any], value: Any) -> None:
    bounds = spec.metadata
    if "ge" in bounds and not value >= bounds["ge"]:
        raise ValueError(f"Input should be greater than or equal to {bounds['ge']}")
    if "gt" in bounds and not value > bounds["gt"]:
        raise ValueError(f"Input should be greater than {bounds['gt']}")
    if "le" in bounds and not value <= bounds["le"]:
        raise ValueError(f"Input should be less than or equal to {bounds['le']}")


def load_settings() -> Settings:
    """Build and validate settings now; raise a clear ``ConfigurationError``."""
    try:
        settings = Settings()
    except InvalidSettings as exc:
        raise ConfigurationError(f"invalid settings: {exc}") from None
    ensure_allowed_region(settings.region, settings.allowed_regions)
    return settings


def ensure_allowed_region(region: str, allowed: frozenset[str] = EU_REGIONS) -> None:
    """Refuse to run outside the allowed EU regions (GDPR data residency)."""
    if region not in allowed:
        raise RegionNotAllowed(
            f"Quitclaim refuses to start in region {region!r}: personal data must stay "
            f"in the EU. Allowed regions: {', '.join(sorted(allowed))}."
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The container's settings, validated once."""
    return load_settings()


def reset_settings() -> None:
    """Forget cached settings (the local stack starts a new 'container')."""
    get_settings.cache_clear()
