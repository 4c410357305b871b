"""The hosted quitclaim form: versioned texts, the answers, and their rules.

Pure. A form version is written once and never changed (the store refuses a
second write of a version), so what an earlier signer agreed to stays what
they read. The answers are checked here, on the server, field by field: the
page's ``required`` attributes are a convenience, never the rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from quitclaim.domain.errors import ValidationFailed

LANGUAGES = ("nl", "en")
# GDPR Art. 8(1): member states may lower 16 to no less than 13.
AGE_OF_CONSENT_RANGE = (13, 16)
DEFAULT_AGE_OF_CONSENT = 16
VERSION = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_TEXT = 20_000
MAX_NAME = 200


@dataclass(frozen=True, slots=True)
class FormText:
    """One language of a form version: a title and the text the signer agrees to."""

    title: str
    body: str


@dataclass(frozen=True, slots=True)
class FormVersion:
    """A tenant's form as published under ``version``; immutable once written."""

    tenant: str
    version: str
    texts: Mapping[str, FormText]
    purposes: tuple[str, ...]
    period_days: int | None  # None: until withdrawn
    created_at: datetime | None = None

    def text(self, language: str) -> FormText:
        return self.texts.get(language) or self.texts.get("en") or next(iter(self.texts.values()))


@dataclass(frozen=True, slots=True)
class FormSettings:
    """A tenant's form settings: the age of consent and the versions published."""

    tenant: str
    age_of_consent: int = DEFAULT_AGE_OF_CONSENT
    current: str | None = None
    versions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Answers:
    """What a signer submitted, checked (``check_answers``)."""

    name: str
    email: str | None
    date_of_birth: date
    purposes: tuple[str, ...]
    signature: str  # the typed name of whoever signs: the person, or the guardian
    guardian_name: str | None = None
    guardian_email: str | None = None
    biometric_consent: bool = False
    drawn_signature: bool = False
    minor: bool = False
    age: int = 0


@dataclass(frozen=True, slots=True)
class MajorityDue:
    """A guardian's consent whose person reaches the age of consent on ``day``."""

    tenant: str
    subject_id: str
    consent_id: str
    day: str
    extra: dict[str, str] = field(default_factory=dict)


def check_age_of_consent(age: int) -> int:
    low, high = AGE_OF_CONSENT_RANGE
    if not isinstance(age, int) or not low <= age <= high:
        raise ValidationFailed(f"age_of_consent must be {low} to {high}", field="age_of_consent")
    return age


def check_version(form: FormVersion, allowed_purposes: frozenset[str]) -> FormVersion:
    """A form version a tenant may publish (its purposes among the tenant's)."""
    if not VERSION.fullmatch(form.version):
        raise ValidationFailed("version must be 1-32 of a-z, 0-9, '-'", field="version")
    if not form.texts:
        raise ValidationFailed("at least one language is required", field="texts")
    for language, text in form.texts.items():
        if language not in LANGUAGES:
            raise ValidationFailed(f"languages are {list(LANGUAGES)}", field=f"texts.{language}")
        if not text.title.strip() or not text.body.strip():
            raise ValidationFailed("title and body must not be empty", field=f"texts.{language}")
        if len(text.title) > MAX_NAME or len(text.body) > MAX_TEXT:
            raise ValidationFailed("the text is too long", field=f"texts.{language}")
    if not form.purposes:
        raise ValidationFailed("at least one purpose is required", field="purposes")
    unknown = set(form.purposes) - allowed_purposes
    if unknown:
        raise ValidationFailed(f"unknown purposes {sorted(unknown)}", field="purposes")
    if form.period_days is not None and not 1 <= form.period_days <= 3650:
        raise ValidationFailed("period_days must be 1 to 3650", field="period_days")
    return form


def age_on(born: date, day: date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def majority_day(born: date, age_of_consent: int) -> date:
    """The day a person born on ``born`` reaches ``age_of_consent`` (29 Feb: 1 March)."""
    year = born.year + age_of_consent
    try:
        return born.replace(year=year)
    except ValueError:
        return date(year, 3, 1)


def _text(values: Mapping[str, str], name: str, *, required: bool = True) -> str | None:
    value = (values.get(name) or "").strip()
    if not value:
        if required:
            raise ValidationFailed(f"{name} is required", field=name)
        return None
    if len(value) > MAX_NAME:
        raise ValidationFailed(f"{name} is too long", field=name)
    return value


def _email(values: Mapping[str, str], name: str) -> str | None:
    value = _text(values, name, required=False)
    if value is not None and not EMAIL.fullmatch(value):
        raise ValidationFailed(f"{name} is not a valid address", field=name)
    return value


def _ticked(values: Mapping[str, str], name: str) -> bool:
    return (values.get(name) or "").strip().lower() in {"on", "yes", "true", "1"}


def check_answers(
    values: Mapping[str, str],
    purposes: list[str],
    form: FormVersion,
    today: date,
    age_of_consent: int,
    *,
    has_photo: bool = False,
) -> Answers:
    """The submitted answers, or ``ValidationFailed`` naming the first wrong field.

    Under the age of consent the guardian's name and typed signature are
    required, and it is the guardian who signs (GDPR Art. 8).
    """
    name = _text(values, "name")
    assert name is not None
    email = _email(values, "email")
    born = _date_of_birth(values, today)
    chosen = _chosen_purposes(purposes, form)
    age = age_on(born, today)
    minor = age < age_of_consent
    signature, guardian_name, guardian_email = _signed(values, name, minor)
    if not _ticked(values, "agree"):
        raise ValidationFailed("tick the box to agree", field="agree")
    biometric = _ticked(values, "biometric_consent")
    if has_photo and not biometric:
        # Art. 9(2)(a): a reference photo only with the separate, explicit consent.
        raise ValidationFailed(
            "a reference photo needs the consent to face matching", field="biometric_consent"
        )
    return Answers(
        name=name,
        email=email,
        date_of_birth=born,
        purposes=chosen,
        signature=signature,
        guardian_name=guardian_name,
        guardian_email=guardian_email,
        biometric_consent=biometric,
        drawn_signature=bool((values.get("signature_drawing") or "").startswith("data:image/png")),
        minor=minor,
        age=age,
    )


def _date_of_birth(values: Mapping[str, str], today: date) -> date:
    raw_born = (values.get("date_of_birth") or "").strip()
    if not raw_born:
        raise ValidationFailed("date_of_birth is required", field="date_of_birth")
    try:
        born = date.fromisoformat(raw_born)
    except ValueError:
        raise ValidationFailed("date_of_birth is not a date", field="date_of_birth") from None
    if born > today or born.year < 1900:
        raise ValidationFailed("date_of_birth is not possible", field="date_of_birth")
    return born


def _chosen_purposes(purposes: list[str], form: FormVersion) -> tuple[str, ...]:
    """At least one ticked, each one the form offers."""
    chosen = tuple(sorted({p.strip() for p in purposes if p.strip()}))
    if not chosen:
        raise ValidationFailed("tick at least one purpose", field="purposes")
    if set(chosen) - set(form.purposes):
        raise ValidationFailed("a purpose is not on this form", field="purposes")
    return chosen


def _signed(
    values: Mapping[str, str], name: str, minor: bool
) -> tuple[str, str | None, str | None]:
    """The typed signature, and the guardian's name and e-mail for a minor (who signs then)."""
    if not minor:
        signature = _text(values, "signature")
        assert signature is not None
        if signature.casefold() != name.casefold():
            raise ValidationFailed("sign with the name given above", field="signature")
        return signature, None, None
    guardian_name = _text(values, "guardian_name")
    guardian_email = _email(values, "guardian_email")
    signature = _text(values, "guardian_signature")
    assert guardian_name is not None and signature is not None
    if signature.casefold() != guardian_name.casefold():
        raise ValidationFailed("the guardian signs with their own name", field="guardian_signature")
    return signature, guardian_name, guardian_email
