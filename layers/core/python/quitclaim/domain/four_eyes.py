"""Invariant I2, four eyes: nobody moves an image into the library alone.

The ingest decision is the only one-person (in fact no-person) way into the
library. Every other way in (release, reassign, redact) and every policy
change that lets the gate see less is a *request* by one person that a
second, different person must confirm. "Person" is the one an API key was
issued to (``Principal.person``), so one person's many keys count once; a
key issued without a person is its own person.

Pure rules: who counts as the same person, and which policy changes loosen
the gate. The use-cases keep the pending requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quitclaim.domain.errors import Forbidden, ValidationFailed
from quitclaim.domain.models import ScanMode, TenantPolicy
from quitclaim.domain.registry import Principal

MAX_PERSON = 100
SAME_PERSON = "same_reviewer"  # the error code clients already branch on

# How much of a face a scan mode lets through to the library, least first:
# detect-only holds every identifiable face, off looks at none.
_SCAN_OPENNESS = {ScanMode.DETECT_ONLY: 0, ScanMode.RECOGNIZE: 1, ScanMode.OFF: 2}


def person_name(text: str | None) -> str:
    """A key's person as stored: trimmed, inner whitespace collapsed (``ValidationFailed``)."""
    clean = " ".join((text or "").split())
    if not clean or len(clean) > MAX_PERSON or not clean.isprintable():
        raise ValidationFailed(
            f"person must be 1-{MAX_PERSON} printable characters (who holds the key)",
            field="person",
        )
    return clean


def person_of(principal: Principal) -> str:
    """The person a key stands for; a key issued without one is its own person."""
    return principal.person or principal.key_id


def same_person(a: str, b: str) -> bool:
    """Case and spacing do not make two people out of one."""
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def requested_by(who: Principal, at: str, **details: Any) -> dict[str, Any]:
    """A pending request as kept in the record: key id, person, when, and ``details``."""
    return {"by": who.key_id, "person": person_of(who), "at": at, **details}


def confirm(pending: dict[str, Any], who: Principal, what: str) -> list[str]:
    """The two people of a confirmed request; ``Forbidden`` when it is the requester again.

    A request from before keys had people names only its key: that key is its person.
    """
    asker = str(pending.get("person") or pending["by"])
    if same_person(asker, person_of(who)):
        raise Forbidden(f"a second, different person must confirm this {what}", code=SAME_PERSON)
    return [asker, person_of(who)]


# ------------------------------------------------------------------ policy


def _mode(modes: dict[str, ScanMode], collection: str) -> ScanMode:
    return modes.get(collection, modes.get("*", ScanMode.RECOGNIZE))


def loosened(current: TenantPolicy, updated: TenantPolicy) -> list[str]:
    """The fields of a policy change that let the gate see less (so publish more).

    - ``min_face_px`` up: larger faces count as not identifiable;
    - ``match_threshold`` up, ``match_margin`` down: looser matches to someone
      with a consent (a stranger taken for them);
    - ``scan_modes``: any collection (``*`` included) moving towards ``off``;
    - ``unknown_face_policy`` away from ``quarantine``; ``auto_redact`` on;
    - ``publishing_purposes``: any upload needing fewer channels cleared.

    Purposes, the default purpose and the language are not gate strength.
    """
    out: list[str] = []
    if updated.min_face_px > current.min_face_px:
        out.append("min_face_px")
    if updated.match_threshold > current.match_threshold:
        out.append("match_threshold")
    if updated.match_margin < current.match_margin:
        out.append("match_margin")
    before, after = dict(current.scan_modes), dict(updated.scan_modes)
    if any(
        _SCAN_OPENNESS[_mode(after, c)] > _SCAN_OPENNESS[_mode(before, c)]
        for c in {"*", *before, *after}
    ):
        out.append("scan_modes")
    if current.unknown_face_policy == "quarantine" and updated.unknown_face_policy != "quarantine":
        out.append("unknown_face_policy")
    if updated.auto_redact and not current.auto_redact:
        out.append("auto_redact")
    if _publishes_more(current, updated):
        out.append("publishing_purposes")
    return out


def _publishes_more(current: TenantPolicy, updated: TenantPolicy) -> bool:
    """Whether some upload needs fewer channels cleared to be published than before.

    None set means the upload's own purpose (any one of ``purposes``); a set
    asks for every purpose in it. Only adding to a set, or going from none to
    every purpose, never lets more through.
    """
    before, after = current.publishing_purposes, updated.publishing_purposes
    if before == after:
        return False
    if not after:
        return True  # an upload for a purpose of its own no longer needs the set
    if before:
        return not after >= before
    return not after >= updated.purposes


def policy_target(policy: TenantPolicy) -> dict[str, Any]:
    """A policy as plain JSON values: what a confirmation must match exactly."""
    return {
        "match_threshold": policy.match_threshold,
        "match_margin": policy.match_margin,
        "min_face_px": policy.min_face_px,
        "default_purpose": policy.default_purpose,
        "purposes": sorted(policy.purposes),
        "scan_modes": {k: ScanMode(v).value for k, v in sorted(policy.scan_modes)},
        "unknown_face_policy": policy.unknown_face_policy,
        "language": policy.language,
        "auto_redact": policy.auto_redact,
        "publishing_purposes": sorted(policy.publishing_purposes),
        "quarantine_retention_days": policy.quarantine_retention_days,
        "rejected_retention_days": policy.rejected_retention_days,
        "digest": policy.digest,
    }


@dataclass(frozen=True, slots=True)
class PolicyUpdate:
    """A policy change's outcome: applied, or ``pending`` a second administrator."""

    policy: TenantPolicy
    pending: dict[str, Any] | None = None
