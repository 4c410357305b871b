"""Checkpoints of a verified audit chain: its prefix, read back in one request.

Why: verifying a chain reads every stored record, one request each (20,000
records: 20,000 GETs). The records are immutable versions, so once a chain is
verified, what was read need not be read again, as long as the store still
holds exactly those versions.

A checkpoint is one object holding, for every stored version of the chain at
the time it was verified, ``(key, version id, ETag, body)``. A later check
lists the chain's versions (1,000 per request, each with its version id and
ETag) and takes a listed version's body from the checkpoint only when all
three match; every other version (newer records, a rewrite, a re-created
key) is read from the store. The chain is then verified by the same rules
(``verify``) on the same bodies: a stored version cannot change without a new
version id, so the verdict is the one a full read would give.

Trust: a checkpoint is only used when the chain itself vouches for it. Its
SHA-256 is appended to the chain (an ``audit.checkpoint`` event) after it is
stored, and a check uses it only if a record read from the store in that same
check (never one taken from a checkpoint) carries that digest. A forged or
altered checkpoint is therefore ignored (its digest is in no record), unless
its forger could also append to the chain (then the chain proves nothing
anyway). A check that finds a break with a checkpoint verifies again without
it, so the break reported is the one a full read finds.

Pure: no I/O (``usecases/audit_trail.py`` reads and writes them).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

CHECKPOINT_ACTION = "audit.checkpoint"
CHECKPOINT_FORMAT = 1
# (key, version id, ETag): one stored version, as a listing names it.
Version = tuple[str, str, str]


def checkpoint_prefix(tenant: str) -> str:
    """Outside the chain's own prefix (``audit/<tenant>/`` holds only records)."""
    return f"checkpoints/audit/{tenant}/"


def checkpoint_name(tenant: str, records: int, digest: str) -> str:
    """Key order is age order: more records, later checkpoint."""
    return f"{checkpoint_prefix(tenant)}{records:012d}-{digest[:16]}.json.gz"


def checkpoint_data(tenant: str, versions: Iterable[tuple[Version, bytes]]) -> bytes:
    """The checkpoint's bytes (deterministic: gzip without a timestamp)."""
    body = {
        "v": CHECKPOINT_FORMAT,
        "tenant": tenant,
        "versions": [[k, v, e, b.decode("utf-8")] for (k, v, e), b in versions],
    }
    raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return gzip.compress(raw, mtime=0)


def checkpoint_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def checkpoint_versions(tenant: str, data: bytes) -> dict[Version, bytes]:
    """The versions a checkpoint holds; empty if it is unreadable or another tenant's."""
    try:
        body = json.loads(gzip.decompress(data))
        if body.get("v") != CHECKPOINT_FORMAT or body.get("tenant") != tenant:
            return {}
        return {(str(k), str(v), str(e)): str(b).encode("utf-8") for k, v, e, b in body["versions"]}
    except (OSError, EOFError, ValueError, TypeError, AttributeError, KeyError):
        return {}


def checkpoint_event(tenant: str, digest: str, records: int) -> dict[str, Any]:
    """The event that vouches for a checkpoint (appended to the chain after it is stored)."""
    return {"action": CHECKPOINT_ACTION, "tenant": tenant, "digest": digest, "records": records}


def vouches(body: bytes, digest: str) -> bool:
    """Whether a record (as stored) carries the checkpoint event for ``digest``."""
    try:
        record = json.loads(body)
    except ValueError:
        return False
    events = record.get("events") if isinstance(record, Mapping) else None
    return any(
        isinstance(e, Mapping)
        and e.get("action") == CHECKPOINT_ACTION
        and e.get("digest") == digest
        for e in events or []
    )
