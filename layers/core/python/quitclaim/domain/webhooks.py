"""Webhooks, pure: payload mappings, delivery records and the retry rule.

Inbound, a marketing tool's payload becomes an ``InboundEvent`` through a
declarative ``ConsentMapping`` (JSON, one per source; presets ship in
``quitclaim/webhook_mappings``). Outbound, each event becomes one
``OutboundDelivery`` per subscribed endpoint, retried by ``next_attempt_at``.

Paths in mappings are dotted with list indexes: ``data.merges.EMAIL``,
``answers[0].value``. Errors name the payload path, so the sending tool's
operator can see which of their fields is wrong.
"""

from __future__ import annotations

import base64
import enum
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from quitclaim.domain.errors import ValidationFailed

# What Quitclaim tells the DAM and CRMs. Payloads carry ids, never names or bytes.
EVENT_TYPES: tuple[str, ...] = (
    "asset.approved",
    "asset.quarantined",
    "asset.released",
    "asset.withdrawn",
    # Same place, another clearance per channel (docs/channels.md)
    "asset.clearance_changed",
    "consent.expiring",
    "consent.expired",
    "subject.erased",
    # A tenant's usage of one hour (docs/billing.md); opt-in: see OPT_IN_EVENT_TYPES.
    "usage.hourly",
)
# Sent only to endpoints that name them: an "all events" receiver from before
# billing events existed must not start receiving (and being billed for) them.
OPT_IN_EVENT_TYPES: frozenset[str] = frozenset({"usage.hourly"})

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
_PATH_PART = re.compile(r"^([A-Za-z0-9_$@:-]+)((?:\[\d+\])*)$")
_VALUE_TYPES = ("string", "list", "datetime", "date", "epoch_s", "epoch_ms")


class ConsentAction(enum.StrEnum):
    GRANTED = "granted"
    RENEWED = "renewed"
    WITHDRAWN = "withdrawn"
    # Not consents: the address used to find the person changed, or bounces for good.
    EMAIL_CHANGED = "email_changed"
    UNREACHABLE = "unreachable"


class MappingInvalid(ValidationFailed):
    """A mapping document (not a payload) is malformed."""

    code = "mapping_invalid"


class PayloadUnmappable(ValidationFailed):
    """A verified payload does not fit the source's mapping; ``field`` is its path."""

    code = "payload_unmappable"
    http_status = 422


@dataclass(frozen=True, slots=True)
class InboundEvent:
    """A consent event as a marketing tool reported it, before subject lookup."""

    action: ConsentAction
    external_ref: str | None = None
    email: str | None = None
    purposes: tuple[str, ...] = ()
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    evidence_url: str | None = None
    signer: str | None = None
    new_email: str | None = None  # ``email_changed``: the address to find the person by


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """Where one value comes from: a payload ``path`` or a constant ``value``."""

    path: str | None = None
    value: Any = None
    map: Mapping[str, Any] | None = None
    type: str = "string"
    split: str | None = None
    fallback: tuple[str, ...] = ()  # paths read in turn when ``path`` is absent

    def read(self, payload: Any, *, name: str) -> Any:
        """The converted value, or None when the path is absent or null."""
        where = self.path or name
        raw = self.value if self.path is None else lookup(payload, self.path)
        for other in self.fallback:
            if raw is not None:
                break
            raw, where = lookup(payload, other), other
        if raw is None:
            return None
        if self.map is not None:
            key = str(raw) if isinstance(raw, (str, int, bool)) else None
            if key is None or key not in self.map:
                allowed = ", ".join(sorted(self.map))
                raise PayloadUnmappable(f"{where}: {raw!r} is not one of {allowed}", field=where)
            raw = self.map[key]
            if raw is None:
                return None
        return _convert(raw, self.type, self.split, where)


@dataclass(frozen=True, slots=True)
class Condition:
    path: str
    equals: Any

    def holds(self, payload: Any) -> bool:
        return lookup(payload, self.path) == self.equals


@dataclass(frozen=True, slots=True)
class ConsentMapping:
    """A source's payload → consent event rule (parsed from JSON by ``parse``)."""

    event: FieldSpec
    external_ref: FieldSpec | None = None
    email: FieldSpec | None = None
    purposes: FieldSpec | None = None
    valid_from: FieldSpec | None = None
    valid_until: FieldSpec | None = None
    evidence_url: FieldSpec | None = None
    signer: FieldSpec | None = None
    new_email: FieldSpec | None = None
    when: tuple[Condition, ...] = ()
    description: str = ""
    document: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, document: Any) -> ConsentMapping:
        """Validate a mapping document; ``MappingInvalid`` names the bad key."""
        if not isinstance(document, Mapping):
            raise MappingInvalid("a mapping is a JSON object", field="mapping")
        known = {
            "description",
            "when",
            "event",
            "subject",
            "purposes",
            "valid_from",
            "valid_until",
            "evidence_url",
            "signer",
            "new_email",
        }
        unknown = sorted(set(document) - known)
        if unknown:
            raise MappingInvalid(f"unknown mapping keys {unknown}", field=f"mapping.{unknown[0]}")
        if "event" not in document:
            raise MappingInvalid("mapping.event is required", field="mapping.event")
        subject = document.get("subject") or {}
        if not isinstance(subject, Mapping) or not set(subject) <= {"external_ref", "email"}:
            raise MappingInvalid(
                "mapping.subject takes external_ref and/or email", field="mapping.subject"
            )
        if not subject:
            raise MappingInvalid(
                "mapping.subject needs external_ref or email", field="mapping.subject"
            )
        when = document.get("when") or []
        if not isinstance(when, list) or not all(
            isinstance(c, Mapping) and set(c) == {"path", "equals"} for c in when
        ):
            raise MappingInvalid("mapping.when is a list of {path, equals}", field="mapping.when")
        for condition in when:
            _check_path(condition["path"], "mapping.when")

        def spec(key: str, value: Any) -> FieldSpec | None:
            return None if value is None else _field_spec(value, f"mapping.{key}")

        return cls(
            event=_field_spec(document["event"], "mapping.event"),
            external_ref=spec("subject.external_ref", subject.get("external_ref")),
            email=spec("subject.email", subject.get("email")),
            purposes=spec("purposes", document.get("purposes")),
            valid_from=spec("valid_from", document.get("valid_from")),
            valid_until=spec("valid_until", document.get("valid_until")),
            evidence_url=spec("evidence_url", document.get("evidence_url")),
            signer=spec("signer", document.get("signer")),
            new_email=spec("new_email", document.get("new_email")),
            when=tuple(Condition(c["path"], c["equals"]) for c in when),
            description=str(document.get("description") or ""),
            document=dict(document),
        )

    def apply(self, payload: Any) -> InboundEvent | None:
        """The event this payload reports, None when ``when`` says it is not for us."""
        if not all(c.holds(payload) for c in self.when):
            return None
        if self.event.path is not None and self.event.map is not None:
            # A value the map sends to null is known and not for us (Mailchimp's profile).
            raw = lookup(payload, self.event.path)
            if isinstance(raw, (str, int)) and self.event.map.get(str(raw), "") is None:
                return None
        action = self.event.read(payload, name="event")
        try:
            kind = ConsentAction(action)
        except ValueError:
            where = self.event.path or "event"
            known = ", ".join(a.value for a in ConsentAction)
            raise PayloadUnmappable(
                f"{where}: {action!r} is not one of {known}", field=where
            ) from None

        def read(spec: FieldSpec | None, name: str) -> Any:
            return None if spec is None else spec.read(payload, name=name)

        external_ref = read(self.external_ref, "external_ref")
        email = read(self.email, "email")
        if external_ref is None and email is None:
            paths = [s.path for s in (self.external_ref, self.email) if s and s.path]
            where = paths[0] if paths else "subject"
            raise PayloadUnmappable(
                f"{' or '.join(paths) or 'subject'}: the payload names no person", field=where
            )
        purposes = read(self.purposes, "purposes")
        return InboundEvent(
            action=kind,
            external_ref=_text(external_ref, self.external_ref),
            email=_text(email, self.email, lower=True),
            purposes=tuple(purposes) if isinstance(purposes, list) else (),
            valid_from=read(self.valid_from, "valid_from"),
            valid_until=read(self.valid_until, "valid_until"),
            evidence_url=_text(read(self.evidence_url, "evidence_url"), self.evidence_url),
            signer=_text(read(self.signer, "signer"), self.signer),
            new_email=_text(read(self.new_email, "new_email"), self.new_email, lower=True),
        )


def lookup(payload: Any, path: str) -> Any:
    """The value at a dotted path (``a.b[0].c``), None when any step is absent."""
    node = payload
    for part in path.split("."):
        match = _PATH_PART.fullmatch(part)
        if match is None:
            return None
        name, indexes = match.groups()
        if not isinstance(node, Mapping):
            return None
        node = node.get(name)
        for index in re.findall(r"\[(\d+)\]", indexes):
            if not isinstance(node, list) or int(index) >= len(node):
                return None
            node = node[int(index)]
    return node


def _check_path(path: Any, where: str) -> None:
    if (
        not isinstance(path, str)
        or not path
        or not all(_PATH_PART.fullmatch(p) for p in path.split("."))
    ):
        raise MappingInvalid(f"{where}: {path!r} is not a dotted path", field=where)


def _field_spec(value: Any, where: str) -> FieldSpec:
    if isinstance(value, str):
        _check_path(value, where)
        return FieldSpec(path=value)
    if not isinstance(value, Mapping):
        raise MappingInvalid(f"{where} is a path or an object", field=where)
    unknown = sorted(set(value) - {"path", "value", "map", "type", "split", "fallback"})
    if unknown:
        raise MappingInvalid(f"{where}: unknown keys {unknown}", field=where)
    if ("path" in value) == ("value" in value):
        raise MappingInvalid(f"{where} needs exactly one of path or value", field=where)
    if "path" in value:
        _check_path(value["path"], where)
    kind = value.get("type", "string")
    if kind not in _VALUE_TYPES:
        raise MappingInvalid(f"{where}.type must be one of {list(_VALUE_TYPES)}", field=where)
    mapped = value.get("map")
    if mapped is not None and not isinstance(mapped, Mapping):
        raise MappingInvalid(f"{where}.map is an object", field=where)
    split = value.get("split")
    if split is not None and (not isinstance(split, str) or not split):
        raise MappingInvalid(f"{where}.split is a separator", field=where)
    fallback = value.get("fallback") or []
    if not isinstance(fallback, list) or (fallback and "path" not in value):
        raise MappingInvalid(f"{where}.fallback is a list of paths after path", field=where)
    for other in fallback:
        _check_path(other, f"{where}.fallback")
    return FieldSpec(
        path=value.get("path"),
        value=value.get("value"),
        map=dict(mapped) if mapped is not None else None,
        type=kind,
        split=split,
        fallback=tuple(fallback),
    )


def _text(value: Any, spec: FieldSpec | None, *, lower: bool = False) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    if len(text) > 320:
        where = spec.path if spec and spec.path else "value"
        raise PayloadUnmappable(f"{where}: longer than 320 characters", field=where)
    return text.lower() if lower else text


def _convert(raw: Any, kind: str, split: str | None, where: str) -> Any:
    """A payload value as the mapping's type says; ``where`` names it in the refusal."""
    if kind == "string":
        if isinstance(raw, bool) or not isinstance(raw, (str, int)):
            raise PayloadUnmappable(f"{where}: expected a string", field=where)
        return str(raw)
    if kind == "list":
        return _as_list(raw, split, where)
    if kind in ("epoch_s", "epoch_ms"):
        return _from_epoch(raw, 1000 if kind == "epoch_ms" else 1, where)
    return _from_iso(raw, kind, where)


def _as_list(raw: Any, split: str | None, where: str) -> list[str]:
    """A list of strings, or one string split (or taken whole), trimmed and lower-cased."""
    if isinstance(raw, str):
        raw = raw.split(split) if split else [raw]
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise PayloadUnmappable(f"{where}: expected a list of strings", field=where)
    return [v.strip().lower() for v in raw if v.strip()]


def _from_epoch(raw: Any, per_second: int, where: str) -> datetime:
    """Seconds (or milliseconds: ``per_second`` 1000) since 1970, as a number or its text."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise PayloadUnmappable(f"{where}: expected a number of seconds", field=where)
    try:
        return datetime.fromtimestamp(float(raw) / per_second, tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise PayloadUnmappable(f"{where}: not a timestamp", field=where) from None


def _from_iso(raw: Any, kind: str, where: str) -> datetime:
    """An ISO 8601 ``date`` (midnight UTC) or ``datetime`` (which must carry its zone)."""
    if not isinstance(raw, str):
        raise PayloadUnmappable(f"{where}: expected an ISO 8601 {kind}", field=where)
    try:
        if kind == "date":
            day = date.fromisoformat(raw[:10])
            return datetime.combine(day, time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise PayloadUnmappable(f"{where}: expected an ISO 8601 {kind}", field=where) from None
    if parsed.tzinfo is None:
        raise PayloadUnmappable(f"{where}: the time carries no time zone", field=where)
    return parsed.astimezone(UTC)


# ---------------------------------------------------------------- sources and endpoints


@dataclass(frozen=True, slots=True)
class WebhookSource:
    """A tool that tells us about consents: ``POST /webhooks/{tenant}/{name}``."""

    tenant: str
    name: str
    mapping: Mapping[str, Any]
    default_validity_days: int = 365
    created_at: datetime | None = None
    rotated_at: datetime | None = None
    # How the tool signs and frames its requests (quitclaim.domain.dialects.Dialect).
    dialect: str = "standard"


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    """A receiver of our events (the DAM, a CRM)."""

    tenant: str
    endpoint_id: str
    url: str
    event_types: tuple[str, ...]
    description: str = ""
    created_at: datetime | None = None
    rotated_at: datetime | None = None

    def wants(self, event_type: str) -> bool:
        if event_type in OPT_IN_EVENT_TYPES:
            return event_type in self.event_types
        return not self.event_types or event_type in self.event_types


@dataclass(frozen=True, slots=True)
class IssuedSecret:
    """A signing secret, shown once (``whsec_`` + base64)."""

    secret: str
    previous_valid_until: datetime | None = None


class InboundStatus(enum.StrEnum):
    QUEUED = "queued"  # acknowledged, durably stored, not applied yet
    APPLIED = "applied"
    IGNORED = "ignored"  # verified, but the mapping's ``when`` says not ours
    PARKED = "parked"  # verified, but needs a person (unknown subject, bad field)
    DISMISSED = "dismissed"


@dataclass(frozen=True, slots=True)
class InboundDelivery:
    tenant: str
    source: str
    delivery_id: str  # the sender's webhook-id
    status: InboundStatus
    received_at: datetime
    reason: str | None = None  # a code: unknown_subject, payload_unmappable, ...
    field: str | None = None
    detail: str | None = None
    subject_id: str | None = None
    consent_ids: tuple[str, ...] = ()
    applied_at: datetime | None = None
    action: str | None = None


class OutboundStatus(enum.StrEnum):
    PENDING = "pending"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    DEAD = "dead"  # the retry window passed: the dead-letter list, replayable


@dataclass(frozen=True, slots=True)
class OutboundDelivery:
    tenant: str
    delivery_id: str  # also the webhook-id the receiver sees (stable across retries)
    endpoint_id: str
    event_id: str
    event_type: str
    status: OutboundStatus
    created_at: datetime
    attempts: int = 0
    first_attempt_at: datetime | None = None
    last_attempt_at: datetime | None = None
    next_attempt_at: datetime | None = None
    last_status: int | None = None  # the receiver's HTTP status, None: no answer
    last_error: str | None = None  # a code: timeout, refused, http_500...
    delivered_at: datetime | None = None
    replays: int = 0


# ---------------------------------------------------------------- retries

FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY_GAP = timedelta(hours=6)


def retry_delay(failures: int, jitter: float) -> timedelta:
    """Exponential (30 s doubling, capped at 6 h) with jitter in [0.8, 1.0] of it.

    ``jitter`` is a number in [0, 1) (random in production), so that many
    receivers failing at once do not all come back at the same second.
    """
    # The exponent is capped too: 2**n of a timedelta overflows long before n = 60.
    base = min(FIRST_RETRY * (2 ** min(max(failures - 1, 0), 20)), MAX_RETRY_GAP)
    return base * (0.8 + 0.2 * min(max(jitter, 0.0), 1.0))


def next_attempt_at(
    first_attempt_at: datetime,
    failed_at: datetime,
    failures: int,
    window: timedelta,
    jitter: float,
) -> datetime | None:
    """When to try again after ``failures`` failed attempts, None: give up (dead letter).

    Retries go on until an attempt fails at least ``window`` after the
    first one: a receiver gets at least ``window`` (24 h) to come back.
    """
    if failed_at - first_attempt_at >= window:
        return None
    due = failed_at + retry_delay(failures, jitter)
    # Whole seconds: a schedule's at() has no fractions, and must not fire early.
    return due.replace(microsecond=0) + (timedelta(seconds=1) if due.microsecond else timedelta())


# ---------------------------------------------------------------- secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 (the Standard Webhooks prefix, not a secret)


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


# The secret store's two kinds: an inbound source's secrets, an outbound endpoint's.
SOURCES = "sources"
ENDPOINTS = "endpoints"


@dataclass(frozen=True, slots=True)
class SecretSet:
    current: str
    previous: str | None = None
    previous_until: datetime | None = None

    def valid(self, now: datetime) -> list[str]:
        """The secrets to sign or verify with at ``now`` (current first)."""
        keep_previous = (
            self.previous is not None
            and self.previous_until is not None
            and now < self.previous_until
        )
        return [self.current, *([self.previous] if keep_previous and self.previous else [])]
