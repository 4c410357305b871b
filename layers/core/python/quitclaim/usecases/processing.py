"""Records of processing (GDPR Art. 30) and a DPIA starter (Art. 35), per tenant.

Pre-filled from what the system knows: the tenant's policy, the engine and
model versions in use and those its decision records name, the deployment's
region and retention settings, the tenant's webhook recipients, and monthly
volumes counted from the assets table and the requests log. What only the
controller knows (its name, contact, DPO, its own risk scores) is left as
``TODO``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from quitclaim.domain.errors import NotFound
from quitclaim.domain.models import TenantPolicy
from quitclaim.domain.ports import (
    AssetRepository,
    Clock,
    RequestLog,
    SubjectRepository,
    TenantProfiles,
    TenantRepository,
    WebhookRepository,
)
from quitclaim.domain.rights import (
    VOLUME_FIELDS,
    ProcessingRecords,
    monthly_volumes,
    versions_seen,
)
from quitclaim.domain.transfers import country_of_host
from quitclaim.usecases.ledger import every_asset

RECORD_FORMAT = "quitclaim-records-of-processing/1"
TODO = "TODO (controller)"

# Fixed by the template (infra/template.yaml); tests/unit/test_processing_records.py
# checks these numbers against it.
BUCKET_NONCURRENT_DAYS = {"uploads": 7, "library": 1, "quarantine": 30, "documents": 365}
PITR_DAYS = 35  # DynamoDB point-in-time recovery window (every table)


# What is recorded about whom, and where (GDPR Art. 30(1)(c)); the same for every tenant.
_PERSONAL_DATA: tuple[dict[str, Any], ...] = (
    {
        "category": "images with faces",
        "where": "uploads, library, quarantine buckets (SSE-KMS)",
        "special_category": False,
    },
    {
        "category": "face templates (128-d) of enrolled people only",
        "where": "subjects table (KMS); never logged or exported",
        "special_category": True,
    },
    {
        "category": "faces of people not enrolled",
        "where": "templates computed in memory, compared and discarded; boxes only are recorded",
        "special_category": True,
    },
    {
        "category": "identity and contact: name, reference, e-mail, date of birth, guardian",
        "where": "subjects table",
        "special_category": False,
    },
    {
        "category": "consent evidence: signer, form version, signed document; "
        "from the hosted form an evidence PDF (the text read, the answers, the "
        "time, a keyed hash of the signer's IP address, never the address)",
        "where": "consents table, documents bucket (versioned)",
        "special_category": False,
    },
    {
        "category": "decision records: face boxes, pseudonymous subject ids, "
        "distances, reasons, reviewer actions",
        "where": "assets and appearances tables; audit events (ids only)",
        "special_category": False,
    },
)

# Technical and organisational measures (Art. 30(1)(g)), as the deployment enforces them.
_SECURITY: tuple[str, ...] = (
    "EU region only (enforced by the code and the template)",
    "one customer-managed KMS key for buckets, tables, logs and secrets",
    "TLS 1.2+ only and no other encryption accepted (bucket policies)",
    "least-privilege IAM per function, proven against the code's calls",
    "audit trail of object access in an Object-Locked bucket",
    "no names, encodings or image bytes in logs; API keys stored hashed",
    "fail closed: nothing is published without a recorded decision",
)


@dataclass(frozen=True, slots=True)
class Deployment:
    """What the records need from the deployment's settings."""

    region: str
    log_retention_days: int
    audit_retention_days: int
    link_ttl_days: int
    reminder_days: tuple[int, ...]
    webhook_dedupe_days: int
    webhook_retry_window_hours: float


class RecordsOfProcessing:
    def __init__(
        self,
        *,
        tenants: TenantRepository,
        assets: AssetRepository,
        requests: RequestLog,
        engine_versions: Callable[[], dict[str, str]],
        deployment: Deployment,
        clock: Clock,
        webhooks: WebhookRepository | None = None,
        profiles: TenantProfiles | None = None,
        subjects: SubjectRepository | None = None,
        accuracy: Callable[[str], dict[str, Any] | None] | None = None,
    ) -> None:
        self._tenants = tenants
        self._assets = assets
        self._requests = requests
        self._engine_versions = engine_versions
        self._deployment = deployment
        self._clock = clock
        self._webhooks = webhooks
        self._profiles = profiles
        self._subjects = subjects
        # The last accuracy audit's summary (usecases/accuracy_audit.py), if any.
        self._accuracy = accuracy

    def _enrolment_consents(self, tenant: str) -> tuple[int, int]:
        """(people with templates, of whom with a recorded consent to matching)."""
        assert self._subjects is not None
        enrolled = recorded = 0
        cursor: str | None = None
        while True:
            page = self._subjects.page(tenant, 100, cursor)
            for subject in page.items:
                if subject.templates:
                    enrolled += 1
                    recorded += subject.biometric_consent_at is not None
            cursor = page.next_cursor
            if not cursor:
                return enrolled, recorded

    def build(self, tenant: str) -> ProcessingRecords:
        policy = self._tenants.policy(tenant)
        if policy is None:
            raise NotFound(f"tenant {tenant!r} not found")
        now = self._clock.now()
        records = list(every_asset(self._assets, tenant))
        volumes = monthly_volumes(records, self._requests.between(tenant, None, None, None))
        recipients = sorted(
            {urlsplit(e.url).hostname or e.url for e in self._webhooks.endpoints(tenant)}
            if self._webhooks is not None
            else set()
        )
        record = _record(
            tenant,
            now,
            policy,
            self._engine_versions(),
            versions_seen(records),
            volumes,
            recipients,
            self._deployment,
        )
        profile = self._profiles.profile(tenant) if self._profiles is not None else None
        if profile is not None:
            # The controller as the operator onboarded it; its DPO only it knows.
            record["controller"] = {
                "tenant": tenant,
                "name": profile.name or TODO,
                "contact": profile.contact_email or TODO,
                "dpo": TODO,
            }
        record["transfers"] = _transfers(recipients, self._deployment.region)
        if self._subjects is not None:
            enrolled, recorded = self._enrolment_consents(tenant)
            record["enrolment"] = {"enrolled": enrolled, "consent_recorded": recorded}
            record["purposes"][1]["legal_basis"] = _enrolment_basis(enrolled, recorded)
        record["retention"] = [*record["retention"], *_tenant_retention(policy)]
        markdown = dpia_markdown(record)
        if self._accuracy is not None:
            evidence = self._accuracy(tenant)
            record["accuracy_evidence"] = evidence
            markdown += accuracy_markdown(evidence)
        return ProcessingRecords(tenant, now, record, markdown)


def _record(
    tenant: str,
    now: datetime,
    policy: TenantPolicy,
    engine: dict[str, str],
    seen: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
    recipients: Sequence[str],
    deployment: Deployment,
) -> dict[str, Any]:
    totals = {name: sum(int(m[name]) for m in volumes) for name in VOLUME_FIELDS}
    return {
        "format": RECORD_FORMAT,
        "generated_at": now.isoformat(),
        "controller": {"tenant": tenant, "name": TODO, "contact": TODO, "dpo": TODO},
        "processor": {
            "software": "Quitclaim (open source), run by the operator",
            "infrastructure": f"Amazon Web Services, region {deployment.region}",
        },
        "activity": "Consent gate for faces in the photo library",
        "purposes": _purposes(policy),
        "data_subjects": [
            "people who signed a portrait consent (and their guardians, for minors)",
            "people shown in uploaded images, enrolled or not (children included)",
            "the tenant's staff using the API (key ids only)",
        ],
        # Fresh copies: a record is the caller's to change.
        "personal_data": [dict(p) for p in _PERSONAL_DATA],
        "recipients": [
            {"recipient": "the tenant's DAM (reads the library only)", "kind": "internal"},
            *({"recipient": host, "kind": "webhook endpoint (ids only)"} for host in recipients),
            {"recipient": "Amazon Web Services EMEA", "kind": "processor (hosting, e-mail)"},
        ],
        "transfers": {"third_countries": [], "region": deployment.region},
        "retention": _retention(deployment),
        "security": list(_SECURITY),
        "automated_decisions": _automated_decisions(policy, engine, seen),
        "volumes": {"by_month": volumes, "total": totals},
    }


def _purposes(policy: TenantPolicy) -> list[dict[str, Any]]:
    """What is processed for, and on which legal basis (GDPR Art. 30(1)(b))."""
    return [
        {
            "purpose": "Publish images only of people who consented, for the purpose "
            "the image is uploaded for",
            "publication_purposes": sorted(policy.purposes),
            "legal_basis": "Art. 6(1)(a) consent of the people shown (quitclaims); "
            "Art. 6(1)(c)/(f) for the records that prove it: " + TODO,
        },
        {
            "purpose": "Recognise enrolled people in uploaded images",
            "legal_basis": "Art. 9(2)(a) explicit consent to matching (enrolment); "
            "given on the hosted form, it is recorded with the consent "
            "(evidence.biometric_consent)",
        },
        {
            "purpose": "Honour data-subject rights: access, 'where do I appear?', "
            "erasure, redaction",
            "legal_basis": "Art. 6(1)(c), Art. 12-17",
        },
    ]


def _automated_decisions(
    policy: TenantPolicy, engine: dict[str, str], seen: list[dict[str, Any]]
) -> dict[str, Any]:
    """The automated decision: the engine in use, the tenant's thresholds, who reviews."""
    return {
        "engine_in_use": engine,
        "policy": {
            "match_threshold": policy.match_threshold,
            "match_margin": policy.match_margin,
            "min_face_px": policy.min_face_px,
            "scan_modes": {k: v.value for k, v in policy.scan_modes},
            "unknown_face_policy": policy.unknown_face_policy,
            "auto_redact": policy.auto_redact,
            "default_purpose": policy.default_purpose,
        },
        "versions_in_decision_records": seen,
        "human_review": "every held image can be reviewed; a release needs two reviewers",
    }


def _enrolment_basis(enrolled: int, recorded: int) -> str:
    """Art. 9(2)(a) only as far as enrolment recorded the explicit consent."""
    basis = "Art. 9(2)(a) explicit consent to matching, recorded at enrolment"
    if recorded == enrolled:
        return basis + (f" ({enrolled} enrolled)" if enrolled else " (nobody enrolled yet)")
    missing = enrolled - recorded
    return (
        f"{basis} for {recorded} of {enrolled} enrolled; {TODO}: {missing} enrolled "
        "without a recorded explicit consent: record it (enrol again with consent) "
        "or erase their templates"
    )


def _transfers(hosts: Sequence[str], region: str) -> dict[str, Any]:
    """Third countries from the outbound endpoints' hosts (domain/transfers.py: a rule)."""
    found = [country_of_host(h) for h in hosts]
    return {
        "region": region,
        "third_countries": sorted({f.country for f in found if f.third_country and f.country}),
        "endpoints": [
            {"host": f.host, "country": f.country or TODO, "rule": f.rule} for f in found
        ],
        "method": "host name rule (known providers, country-code domains); "
        "unresolved hosts need the controller's check",
    }


def _tenant_retention(policy: TenantPolicy) -> list[dict[str, Any]]:
    def days(n: int) -> str:
        return f"{n} days after the decision" if n > 0 else "until a reviewer acts"

    return [
        {
            "data": "quarantined images whose only blocker is unknown faces",
            "kept": days(policy.quarantine_retention_days) + " (unless a reviewer keeps one)",
        },
        {"data": "rejected uploads", "kept": days(policy.rejected_retention_days)},
    ]


def _retention(d: Deployment) -> list[dict[str, Any]]:
    n = BUCKET_NONCURRENT_DAYS
    return [
        {"data": "face templates", "kept": "until erasure, or the subject's end of retention"},
        {"data": "consents", "kept": "until erasure; then a tombstone (ids, dates, outcome)"},
        {"data": "signed documents", "kept": f"until erasure; old versions {n['documents']} days"},
        {"data": "library images", "kept": f"while consented; old versions {n['library']} day"},
        {
            "data": "held images (quarantine)",
            "kept": f"until deleted by review; old versions {n['quarantine']} days",
        },
        {"data": "uploads", "kept": f"until decided (moved); old versions {n['uploads']} days"},
        {"data": "table backups", "kept": f"point-in-time recovery, {PITR_DAYS} days"},
        {"data": "function logs (audit events)", "kept": f"{d.log_retention_days} days"},
        {"data": "object access trail", "kept": f"{d.audit_retention_days} days (Object Lock)"},
        {"data": "renewal and withdrawal links", "kept": f"valid {d.link_ttl_days} days"},
        {
            "data": "webhook deliveries",
            "kept": f"retried {d.webhook_retry_window_hours:g} h; ids deduplicated "
            f"{d.webhook_dedupe_days} days",
        },
        {
            "data": "renewal reminders",
            "kept": "sent " + ", ".join(str(x) for x in d.reminder_days) + " days before expiry",
        },
    ]


def dpia_markdown(record: dict[str, Any]) -> str:
    """A DPIA starter: the description pre-filled, the judgements left to the controller."""
    tenant = record["controller"]["tenant"]
    policy = record["automated_decisions"]["policy"]
    engine = record["automated_decisions"]["engine_in_use"]
    total = record["volumes"]["total"]
    rows = (
        "\n".join(
            f"| {m['month']} | {m['assets_scanned']} | {m['faces']} | {m['matches']} | "
            f"{m['quarantined']} | {m['withdrawn']} | {m['redactions']} | {m['erasures']} |"
            for m in record["volumes"]["by_month"]
        )
        or "| - | 0 | 0 | 0 | 0 | 0 | 0 | 0 |"
    )
    retention = "\n".join(f"- {r['data']}: {r['kept']}" for r in record["retention"])
    named = record["controller"]
    controller = TODO if named["name"] == TODO else f"{named['name']} ({named['contact']})"
    transfers = _dpia_transfers(record["transfers"])
    recipients = "\n".join(f"- {r['recipient']} ({r['kind']})" for r in record["recipients"])
    described = f"""# DPIA starter: face consent gate ({tenant})

Generated {record["generated_at"]} by Quitclaim from the tenant's configuration and its
decision records. Sections marked {TODO} need the controller's own assessment; the rest
describes the system as it is configured now. (GDPR Art. 35; EDPB WP248 criteria met:
biometric data, possibly of children, systematic processing of images.)

## 1. The processing

- **Activity:** {record["activity"]}.
- **Controller:** {controller}. **DPO:** {TODO}.
- **Where:** Amazon Web Services, region {record["transfers"]["region"]}; {transfers}.
- **How:** every uploaded image is scanned for faces (engine {engine.get("engine", "?")},
  encoder {engine.get("encoder", "?")}); each face is compared with the templates of the
  people who enrolled (explicit consent to matching); the image is published only when
  every identifiable face has a valid consent for the upload's purpose at decision time.
  Everything else is held for review.
- **Thresholds in use:** match distance ≤ {policy["match_threshold"]}, margin
  {policy["match_margin"]} to the runner-up, faces of at least {policy["min_face_px"]} px
  are treated as identifiable; unknown faces: {policy["unknown_face_policy"]}; redact
  instead of holding: {"on" if policy["auto_redact"] else "off"}.

### Volumes

| month | images scanned | faces | matches | held | withdrawn | redacted | erasures |
|---|---|---|---|---|---|---|---|
{rows}

In total {total["assets_scanned"]} images, {total["faces"]} faces, {total["access_requests"]}
access requests, {total["selfie_searches"]} selfie searches and {total["erasures"]} erasures.

### Recipients

{recipients}

### Retention

{retention}

"""
    return described + _dpia_assessment(policy)


def _dpia_transfers(transfers: dict[str, Any]) -> str:
    """Third countries as the outbound endpoints' hosts show them, and the hosts to check."""
    third = transfers["third_countries"]
    open_hosts = [e["host"] for e in transfers.get("endpoints", []) if e["country"] == TODO]
    line = (
        "third countries by the outbound endpoints' hosts: " + ", ".join(third)
        if third
        else "no third country found by the outbound endpoints' hosts"
    )
    if open_hosts:
        line += f" ({TODO}: check {', '.join(open_hosts)})"
    return line


def _dpia_assessment(policy: dict[str, Any]) -> str:
    """Sections 2 to 4: necessity, risks and sign-off, the judgements left to the controller."""
    risks = "\n".join(f"| {risk} | {measures} | {TODO} |" for risk, measures in _risks(policy))
    return f"""## 2. Necessity and proportionality

- Templates are stored only for people who enrolled; faces of everybody else are
  compared in memory and discarded, and only their boxes are recorded.
- A tenant can switch recognition off per collection (detect-only, or off).
- People can see what is held (access export), find where they appear with a selfie
  (nothing stored), withdraw consent from a link, and have their data erased; held
  images can be published with the unconsented faces pixelated instead.
- Is a less intrusive means available for the purpose? {TODO}

## 3. Risks and measures

| risk | measures in place | likelihood / severity |
|---|---|---|
{risks}

## 4. Sign-off

- Measures approved by: {TODO}
- DPO advice: {TODO}
- Review date: {TODO}
"""


def _risks(policy: dict[str, Any]) -> list[tuple[str, str]]:
    threshold = f"threshold {policy['match_threshold']}, margin {policy['match_margin']}"
    return [
        (
            "An image is published without consent (a face missed or mismatched)",
            "fail closed; detection recall guarded by tests; held images are reviewed",
        ),
        (
            "A stranger is matched to an enrolled person",
            f"{threshold}; several reference photos; review queue",
        ),
        (
            "Breach of biometric templates",
            "EU region, KMS encryption, least-privilege roles, no templates in logs or exports",
        ),
        ("Children in images", "guardian signature under 16; unknown faces held; redaction"),
        (
            "Function creep (surveillance)",
            "matching only against the enrolled; selfie searches logged, never stored",
        ),
        (
            "Data kept too long",
            "consent expiry on time; erasure with verification; lifecycle rules",
        ),
    ]


def accuracy_markdown(evidence: dict[str, Any] | None) -> str:
    """The DPIA's accuracy evidence: the last accuracy and bias audit (docs/accuracy-audit.md)."""
    if evidence is None:
        return (
            "\n## 5. Accuracy evidence\n\n- No accuracy and bias audit yet: run "
            "`quitclaim audit accuracy` on the organisation's own labelled photos.\n"
        )
    stale = (
        f"- **Stale**: {'; '.join(evidence['stale_reasons'])}. Run the audit again.\n"
        if evidence.get("stale")
        else ""
    )
    return (
        f"\n## 5. Accuracy evidence\n\n- Last audit: {evidence['created_at']}, engine "
        f"{evidence['engine']}, encoder {evidence['encoder']}, {evidence['people']} people.\n"
        f"- False match rate {evidence['fmr']}, false non-match rate {evidence['fnmr']}, "
        f"wrong identifications {evidence['wrong']}; threshold advice: {evidence['advice']}.\n"
        + stale
    )
