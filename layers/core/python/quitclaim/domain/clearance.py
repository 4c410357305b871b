"""Clearance per channel: an asset decided for every purpose the tenant uses.

Each purpose (channel: web, social, print, ...) gets its own decision, by the
same gate (``decide_asset``): cleared, or held with its reasons. The asset is
published (library) only when it is cleared for every one of the tenant's
*publishing* purposes; by default that is the upload's own purpose, so a
tenant that sets nothing sees the one decision it saw before.

The record keeps the clearance as plain JSON (``as_record``)::

    {"publishing": ["web"],
     "channels": {"print": {"cleared": false, "reasons": ["out_of_scope"]},
                  "web": {"cleared": true, "reasons": []}},
     "until": "2027-12-31T00:00:00+00:00"}

``until`` is the earliest expiry of the consents that clear a cleared
channel (None when nothing cleared expires, or nothing is cleared).

The library copy carries it as S3 object tags (``clearance_tags``): S3 allows
10 tags per object and a restricted character set, so one tag per channel
(``quitclaim-channel-<purpose>`` = ``cleared`` / ``held``), the expiry
(``quitclaim-cleared-until``, ``YYYY-MM-DDTHH:MM:SSZ`` or ``never``) and the
asset id; no names, no lists in one value. At most ``MAX_CHANNEL_TAGS``
channels are tagged: publishing purposes first, then the others by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from quitclaim.domain.decision import decide_asset
from quitclaim.domain.models import AssetStatus, Consent, Decision, FaceMatch, Reason

TAG_ASSET_ID = "quitclaim-asset-id"
TAG_UNTIL = "quitclaim-cleared-until"
TAG_CHANNEL = "quitclaim-channel-"
CLEARED = "cleared"
HELD = "held"
NEVER = "never"
# 10 tags per object: the asset id, the expiry, and 8 channels.
MAX_CHANNEL_TAGS = 8


@dataclass(frozen=True, slots=True)
class Clearance:
    """One decision per channel, and which channels must be cleared to publish."""

    channels: Mapping[str, Decision]
    publishing: tuple[str, ...]
    until: datetime | None

    @property
    def gate(self) -> Decision:
        """The asset's decision: approved only when every publishing channel is cleared.

        Reasons are those of the publishing channels (unique, sorted); the
        faces are those of the first publishing channel that holds it (or of
        the first one when all clear), so a held face says why.
        """
        decisions = [self.channels[p] for p in self.publishing]
        reasons = tuple(sorted({r for d in decisions for r in d.reasons}))
        held = [d for d in decisions if not d.approved]
        faces = (held or decisions)[0].faces
        status = AssetStatus.QUARANTINED if reasons else AssetStatus.APPROVED
        return Decision(status, reasons, faces)

    def as_record(self) -> dict[str, Any]:
        return {
            "publishing": list(self.publishing),
            "channels": {
                p: {"cleared": d.approved, "reasons": [r.value for r in d.reasons]}
                for p, d in sorted(self.channels.items())
            },
            "until": self.until.isoformat() if self.until else None,
        }


def publishing_purposes(configured: Iterable[str], upload_purpose: str) -> tuple[str, ...]:
    """The purposes an asset must be cleared for: the tenant's, else the upload's own."""
    chosen = sorted(set(configured))
    return tuple(chosen) if chosen else (upload_purpose,)


def decide_channels(
    faces: Sequence[FaceMatch],
    consents_by_subject: Mapping[str, Sequence[Consent]],
    purposes: Iterable[str],
    publishing: Sequence[str],
    now: datetime,
    unknown_reason: Reason = Reason.UNKNOWN_FACE,
    waived: frozenset[Reason] = frozenset(),
) -> Clearance:
    """Decide the asset for every purpose (and every publishing one) at ``now``.

    ``waived``: reasons two reviewers released the asset despite; they are
    dropped from every channel, as ``redecide_recorded`` does for one.
    """
    channels: dict[str, Decision] = {}
    for purpose in sorted({*purposes, *publishing}):
        decision = decide_asset(faces, consents_by_subject, purpose, now, unknown_reason)
        if waived:
            remaining = tuple(r for r in decision.reasons if r not in waived)
            status = AssetStatus.QUARANTINED if remaining else AssetStatus.APPROVED
            decision = Decision(status, remaining, decision.faces)
        channels[purpose] = decision
    by_id = {c.consent_id: c for cs in consents_by_subject.values() for c in cs}
    expiries = [
        consent.expires_at
        for decision in channels.values()
        if decision.approved
        for face in decision.faces
        if face.consent_id is not None
        and (consent := by_id.get(face.consent_id)) is not None
        and consent.expires_at is not None
    ]
    return Clearance(channels, tuple(publishing), min(expiries) if expiries else None)


def clearance_tags(asset_id: str, clearance: Mapping[str, Any]) -> dict[str, str]:
    """The S3 object tags of a placed copy, from the record's clearance (JSON form)."""
    tags = {TAG_ASSET_ID: asset_id}
    channels: Mapping[str, Any] = clearance.get("channels") or {}
    if not channels:
        return tags  # decided before clearance per channel: the id only
    publishing = [p for p in clearance.get("publishing") or () if p in channels]
    order = [*publishing, *sorted(p for p in channels if p not in publishing)]
    for purpose in order[:MAX_CHANNEL_TAGS]:
        tags[f"{TAG_CHANNEL}{purpose}"] = CLEARED if channels[purpose].get("cleared") else HELD
    if any(c.get("cleared") for c in channels.values()):
        until = clearance.get("until")
        tags[TAG_UNTIL] = (
            datetime.fromisoformat(until).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            if until
            else NEVER
        )
    return tags


def channel_summary(clearance: Mapping[str, Any]) -> dict[str, Any]:
    """What an outbound ``asset.*`` event says of the clearance (ids and codes only)."""
    channels: Mapping[str, Any] = clearance.get("channels") or {}
    return {
        "channels": {
            p: {
                "status": CLEARED if c.get("cleared") else HELD,
                "reasons": list(c.get("reasons") or ()),
            }
            for p, c in sorted(channels.items())
        },
        "publishing_purposes": list(clearance.get("publishing") or ()),
        "cleared_until": clearance.get("until"),
    }
