"""Documents and reference photos of a consents import, read from local folders.

``--documents DIR`` holds the signed forms the CSV names; ``--photos DIR``
holds one folder per person reference with their reference photos. A name
that would leave its folder (``..``, an absolute path) is treated as absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from quitclaim.domain.errors import DependencyFailed

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif"})


def _inside(root: Path, name: str) -> Path | None:
    candidate = (root / name).resolve()
    base = root.resolve()
    if base not in candidate.parents:
        return None
    return candidate


@dataclass(frozen=True)
class FolderFiles:
    documents_dir: Path | None = None
    photos_dir: Path | None = None

    def document(self, name: str) -> bytes | None:
        if self.documents_dir is None:
            return None
        path = _inside(self.documents_dir, name)
        return path.read_bytes() if path is not None and path.is_file() else None

    def photos(self, person_ref: str) -> list[bytes]:
        if self.photos_dir is None:
            return []
        folder = _inside(self.photos_dir, person_ref)
        if folder is None or not folder.is_dir():
            return []
        return [
            p.read_bytes()
            for p in sorted(folder.iterdir())
            if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES
        ]


STAGING_PREFIX = "imports/"
UPLOAD_URL_SECONDS = 900


class S3ImportFiles:
    """An API import's files, uploaded beforehand under ``imports/<tenant>/<import_id>/``."""

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self._s3 = client
        self._bucket = bucket
        self._prefix = prefix

    def _get(self, key: str) -> bytes | None:
        try:
            data: bytes = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise DependencyFailed("import file read failed") from exc
        return data

    def document(self, name: str) -> bytes | None:
        if not _safe_name(name):
            return None
        return self._get(f"{self._prefix}documents/{name}")

    def photos(self, person_ref: str) -> list[bytes]:
        if not _safe_name(person_ref):
            return []
        folder = f"{self._prefix}photos/{person_ref}/"
        try:
            listed = self._s3.list_objects_v2(Bucket=self._bucket, Prefix=folder)
        except ClientError as exc:
            raise DependencyFailed("import photos listing failed") from exc
        keys = sorted(
            e["Key"]
            for e in listed.get("Contents", [])
            if "." + e["Key"].rsplit(".", 1)[-1].lower() in PHOTO_SUFFIXES
        )
        return [data for data in (self._get(k) for k in keys) if data is not None]


class S3ImportStaging:
    """Presigned uploads of an API import's documents and photos (the documents bucket)."""

    def __init__(self, client: Any, bucket: str) -> None:
        self._s3 = client
        self._bucket = bucket

    def _prefix(self, tenant: str, import_id: str) -> str:
        return f"{STAGING_PREFIX}{tenant}/{import_id}/"

    def upload_url(self, tenant: str, import_id: str, kind: str, name: str) -> str:
        key = f"{self._prefix(tenant, import_id)}{kind}/{name}"
        url: str = self._s3.generate_presigned_url(
            "put_object",
            Params={"Bucket": self._bucket, "Key": key},
            ExpiresIn=UPLOAD_URL_SECONDS,
        )
        return url

    def files(self, tenant: str, import_id: str) -> S3ImportFiles:
        return S3ImportFiles(self._s3, self._bucket, self._prefix(tenant, import_id))


def _safe_name(name: str) -> bool:
    return bool(name) and ".." not in name.split("/") and not name.startswith("/")
