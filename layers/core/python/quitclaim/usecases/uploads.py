"""An upload as ingest sees it: the object version, its key's rules, its scan's answer.

What an S3 event names, where the key says the upload belongs, where its
bytes may go, and what its scan answers.

Shared by the scan (``scan_asset``), the placement of its bytes
(``place_upload``) and the admission of uploads to a lane (``admit_uploads``).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from quitclaim.config import Settings
from quitclaim.domain.models import AssetStatus, is_tenant_id
from quitclaim.domain.records import AssetRecord
from quitclaim.usecases.asset_decisions import history_entry

UNATTRIBUTED = "_unattributed"
# Where a rejected upload goes when its own path cannot be used as a key (see
# ``safe_path``): ``rejected/{tenant}/_unsafe-keys/{asset_id}``. Paths that
# start with this segment are themselves refused, so no upload can land on
# (and overwrite) one of these.
UNSAFE_KEYS = "_unsafe-keys"
# S3's limit on a key's UTF-8 length.
MAX_KEY_BYTES = 1024
_DOT_SEGMENTS = frozenset({"", ".", ".."})
# The uploader's Content-Type is kept only when it names one of the image
# types we decode. Anything else (text/html, image/svg+xml, ...) would let a
# polyglot (a JPEG with a page appended) be served as a page from the
# library's origin; it is stored as opaque bytes instead.
_SERVABLE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_OPAQUE_TYPE = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class ScanRequest:
    """One object version named by an S3 event (key already URL-decoded)."""

    bucket: str
    key: str
    version_id: str | None
    etag: str

    @property
    def version(self) -> str:
        return self.version_id or self.etag


@dataclass(frozen=True, slots=True)
class ScanResult:
    asset_id: str
    status: AssetStatus | None
    reasons: tuple[str, ...] = ()
    duplicate: bool = False
    dest_bucket: str | None = None
    dest_key: str | None = None
    # The record's clearance per channel (domain/clearance.py), as placed.
    clearance: dict[str, Any] = field(default_factory=dict)


def split_upload_key(key: str, prefix: str) -> tuple[str, str] | None:
    """``incoming/{tenant}/{path}`` → (tenant, path); None when not attributable."""
    if not key.startswith(prefix):
        return None
    tenant, _, path = key[len(prefix) :].partition("/")
    if not is_tenant_id(tenant) or not path:
        return None
    return tenant, path


def safe_path(path: str) -> bool:
    """Whether ``path`` can name an object below a tenant's prefix as it stands.

    S3 keys are flat strings, but whatever later reads the library as paths
    (a browser or CDN resolving ``..``, a sync to disk, a tool that
    percent-decodes first, a Windows client splitting on ``\\``) must not be
    led out of the tenant's prefix or onto another object. So dot segments,
    empty segments (``//``, a trailing ``/``), control characters and
    backslashes are refused, in the key as written, percent-decoded and
    NFKC-folded (full-width dots become dots).
    """
    if path.split("/", 1)[0] == UNSAFE_KEYS:
        return False
    for form in {path, unquote(path)}:
        for variant in {form, unicodedata.normalize("NFKC", form)}:
            if any(ord(ch) < 0x20 or ord(ch) == 0x7F or ch == "\\" for ch in variant):
                return False
            if any(segment in _DOT_SEGMENTS for segment in variant.split("/")):
                return False
    return True


def served_type(content_type: str | None) -> str:
    """The Content-Type a placed copy carries (see ``_SERVABLE_TYPES``)."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    return base if base in _SERVABLE_TYPES else _OPAQUE_TYPE


def original_key(settings: Settings, tenant: str, asset_id: str) -> str:
    """Where a scanned upload's own bytes are kept (quarantine bucket, never read by the DAM)."""
    return f"{settings.originals_prefix}{tenant}/{asset_id}"


def unscanned_record(
    request: ScanRequest,
    tenant: str,
    path: str,
    asset_id: str,
    now: datetime,
    *,
    status: AssetStatus,
    reason: str,
    dest: tuple[str, str],
    purpose: str = "",
) -> AssetRecord:
    """The record of an upload decided without a scan: rejected, or held over quota."""
    record = AssetRecord(
        tenant=tenant,
        asset_id=asset_id,
        source_bucket=request.bucket,
        source_key=request.key,
        source_version=request.version,
        path=path,
        purpose=purpose,
        status=status,
        reasons=(reason,),
        dest_bucket=dest[0],
        dest_key=dest[1],
        decided_at=now,
    )
    return replace(record, history=(history_entry(now, status.value, "ingest", record),))


def as_placed(result: ScanResult, record: AssetRecord) -> ScanResult:
    """The result as the record (perhaps re-decided meanwhile) places the image."""
    return replace(
        result,
        status=record.status,
        reasons=record.reasons,
        dest_bucket=record.dest_bucket,
        dest_key=record.dest_key,
        clearance=record.clearance,
    )
