"""A backlog scan's source (an S3 prefix or a local folder) and its uploads and checkpoint.

Sources list keys in one fixed order (S3's: ascending UTF-8 binary, which
``sorted`` of the relative POSIX paths matches for a folder), so "after the
last key fed" means the same thing on resume. The checkpoint is a JSON object
beside the uploads (``backlogs/<tenant>/<name>.json`` in the uploads bucket,
outside ``incoming/``: writing it starts no scan).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from quitclaim.domain.backlog import Checkpoint
from quitclaim.domain.errors import DependencyFailed, ValidationFailed

CHECKPOINT_PREFIX = "backlogs/"


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "unknown"))


class FolderSource:
    """Every file below a local folder, by relative POSIX path."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise ValidationFailed(f"{root} is not a folder", field="source")
        self._root = root

    def describe(self) -> str:
        return str(self._root.resolve())

    def keys_after(self, after: str) -> Iterator[str]:
        paths = (p.relative_to(self._root).as_posix() for p in self._root.rglob("*") if p.is_file())
        for key in sorted(paths, key=lambda k: k.encode()):
            if key.encode() > after.encode():
                yield key

    def read(self, key: str) -> bytes:
        return (self._root / key).read_bytes()


class S3Source:
    """Every object below ``s3://bucket/prefix``, by key relative to the prefix."""

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self._s3 = client
        self._bucket = bucket
        self._prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"

    @classmethod
    def from_url(cls, client: Any, url: str) -> S3Source:
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise ValidationFailed("an S3 source is s3://bucket/prefix", field="source")
        return cls(client, bucket, prefix)

    def describe(self) -> str:
        return f"s3://{self._bucket}/{self._prefix}"

    def keys_after(self, after: str) -> Iterator[str]:
        kwargs: dict[str, Any] = {"Bucket": self._bucket, "Prefix": self._prefix}
        if after:
            kwargs["StartAfter"] = self._prefix + after
        try:
            while True:
                page = self._s3.list_objects_v2(**kwargs)
                for entry in page.get("Contents", []):
                    key = entry["Key"][len(self._prefix) :]
                    if key and not key.endswith("/"):
                        yield key
                if not page.get("IsTruncated"):
                    return
                kwargs["ContinuationToken"] = page["NextContinuationToken"]
        except ClientError as exc:
            raise DependencyFailed(f"S3 list of the backlog failed: {_code(exc)}") from exc

    def read(self, key: str) -> bytes:
        try:
            body = self._s3.get_object(Bucket=self._bucket, Key=self._prefix + key)["Body"]
            data: bytes = body.read()
        except ClientError as exc:
            raise DependencyFailed(f"S3 read of a backlog image failed: {_code(exc)}") from exc
        return data


class S3BacklogStore:
    """The uploads a backlog feeds, the ones still waiting, and its checkpoint."""

    def __init__(
        self, client: Any, uploads_bucket: str, incoming_prefix: str = "incoming/"
    ) -> None:
        self._s3 = client
        self.uploads_bucket = uploads_bucket
        self._incoming = incoming_prefix

    def incoming_key(self, tenant: str, path: str) -> str:
        return f"{self._incoming}{tenant}/{path}"

    def put(self, tenant: str, path: str, data: bytes) -> str:
        """Upload one image; the version that identifies it (version id, else ETag)."""
        try:
            got = self._s3.put_object(
                Bucket=self.uploads_bucket, Key=self.incoming_key(tenant, path), Body=data
            )
        except ClientError as exc:
            raise DependencyFailed(f"S3 put of a backlog image failed: {_code(exc)}") from exc
        return str(got.get("VersionId") or str(got.get("ETag", "")).strip('"'))

    def waiting(self, tenant: str, prefix: str) -> list[str]:
        """Upload paths under ``prefix`` not yet decided (still in ``incoming/``)."""
        start = self.incoming_key(tenant, "")
        kwargs: dict[str, Any] = {"Bucket": self.uploads_bucket, "Prefix": start + prefix}
        found: list[str] = []
        try:
            while True:
                page = self._s3.list_objects_v2(**kwargs)
                found.extend(e["Key"][len(start) :] for e in page.get("Contents", []))
                if not page.get("IsTruncated"):
                    return found
                kwargs["ContinuationToken"] = page["NextContinuationToken"]
        except ClientError as exc:
            raise DependencyFailed(f"S3 list of waiting uploads failed: {_code(exc)}") from exc

    def _checkpoint_key(self, tenant: str, name: str) -> str:
        return f"{CHECKPOINT_PREFIX}{tenant}/{name}.json"

    def load(self, tenant: str, name: str) -> Checkpoint | None:
        try:
            got = self._s3.get_object(
                Bucket=self.uploads_bucket, Key=self._checkpoint_key(tenant, name)
            )
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise DependencyFailed(f"backlog checkpoint read failed: {_code(exc)}") from exc
        return Checkpoint.from_dict(json.loads(got["Body"].read()))

    def save(self, checkpoint: Checkpoint) -> None:
        try:
            self._s3.put_object(
                Bucket=self.uploads_bucket,
                Key=self._checkpoint_key(checkpoint.tenant, checkpoint.name),
                Body=json.dumps(checkpoint.as_dict()).encode(),
                ContentType="application/json",
            )
        except ClientError as exc:
            raise DependencyFailed(f"backlog checkpoint write failed: {_code(exc)}") from exc
