"""Presigned PUT URLs for an accuracy audit job's staged files (the documents bucket)."""

from __future__ import annotations

from typing import Any


class S3UploadUrls:
    def __init__(self, client: Any, bucket: str) -> None:
        self._s3 = client
        self._bucket = bucket

    def upload_url(self, key: str, expires_s: int) -> str:
        url: str = self._s3.generate_presigned_url(
            "put_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=expires_s
        )
        return url
