"""Parse S3 event notifications (as delivered through SQS) into upload refs.

No boto3 here: this is pure parsing, shared by handlers and tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus


@dataclass(frozen=True, slots=True)
class UploadRef:
    """One uploaded object version, as the event names it (key decoded)."""

    bucket: str
    key: str
    version_id: str | None
    etag: str
    size: int
    event_time: str

    @property
    def version(self) -> str:
        """What identifies this object version (version id, else ETag)."""
        return self.version_id or self.etag


class MalformedEvent(ValueError):
    """The message is not an S3 notification we understand (poison message)."""


def uploads_from_message(body: str) -> list[UploadRef]:
    """Every ObjectCreated record in one SQS message body.

    ``s3:TestEvent`` (sent when a notification is configured) yields nothing.
    Keys arrive URL-encoded with ``+`` for spaces, as in AWS.
    """
    try:
        payload: Any = json.loads(body)
    except json.JSONDecodeError as exc:
        raise MalformedEvent("message body is not JSON") from exc
    if not isinstance(payload, dict):
        raise MalformedEvent("message body is not a JSON object")
    if payload.get("Event") == "s3:TestEvent":
        return []
    records = payload.get("Records")
    if not isinstance(records, list):
        raise MalformedEvent("message has no Records list")
    refs: list[UploadRef] = []
    for record in records:
        if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        try:
            s3 = record["s3"]
            obj = s3["object"]
            refs.append(
                UploadRef(
                    bucket=str(s3["bucket"]["name"]),
                    key=unquote_plus(str(obj["key"])),
                    version_id=str(obj["versionId"]) if obj.get("versionId") else None,
                    etag=str(obj.get("eTag") or obj.get("sequencer") or ""),
                    size=int(obj.get("size", 0)),
                    event_time=str(record.get("eventTime", "")),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedEvent(f"S3 record lacks {exc}") from exc
    return refs
