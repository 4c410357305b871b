"""S3 implementation of the ObjectStore port."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from botocore.exceptions import ClientError

from quitclaim.domain.errors import DependencyFailed
from quitclaim.domain.ports import ObjectInfo, ObjectVersion

_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchVersion"}
# A conditional write refused: the key holds an object (412), or one is being written (409).
_TAKEN = {"PreconditionFailed", "ConditionalRequestConflict"}


class S3ObjectStore:
    """Objects in S3; every failure but 'not found' becomes ``DependencyFailed``."""

    def __init__(self, client: Any) -> None:
        self._s3 = client

    def head(self, bucket: str, key: str, version_id: str | None = None) -> ObjectInfo | None:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        try:
            resp = self._s3.head_object(**kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return None
            # A version that became a delete marker answers 405 on HEAD.
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in (404, 405):
                return None
            raise DependencyFailed(f"S3 head failed: {_code(exc)}") from exc
        return ObjectInfo(
            bucket=bucket,
            key=key,
            size=int(resp.get("ContentLength", 0)),
            etag=str(resp.get("ETag", "")).strip('"'),
            version_id=resp.get("VersionId"),
            content_type=resp.get("ContentType"),
            metadata=dict(resp.get("Metadata", {})),
        )

    def read(self, bucket: str, key: str, version_id: str | None = None) -> bytes:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        try:
            body = self._s3.get_object(**kwargs)["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()
        except ClientError as exc:
            raise DependencyFailed(f"S3 get failed: {_code(exc)}") from exc

    def copy(
        self,
        source: ObjectInfo,
        dest_bucket: str,
        dest_key: str,
        extra_metadata: Mapping[str, str],
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Copy one object version, once: a retried copy that already landed is skipped.

        Why skip: a function that dies after its copy and before its record
        or delete copies again when retried. In a versioned bucket that
        second copy is a second version; the move that later takes the image
        out deletes only the version it read, and the older duplicate
        becomes current again: an image back in the library after its
        withdrawal. The callers' metadata names the asset and its status, and
        one asset's bytes never change, so the same metadata and size at the
        destination means this copy was done.

        The first try is conditional (``If-None-Match: *``): into an empty
        destination, the usual case, it copies in one request; S3 refuses it
        (412) when the key holds an object, and only then is the destination
        read to tell a landed copy from another object (overwritten).
        """
        copy_source: dict[str, str] = {"Bucket": source.bucket, "Key": source.key}
        if source.version_id:
            copy_source["VersionId"] = source.version_id
        metadata = {**source.metadata, **extra_metadata}
        kwargs = self._copy_request(copy_source, dest_bucket, dest_key, metadata, source, tags)
        try:
            self._s3.copy_object(**kwargs, IfNoneMatch="*")
            return
        except ClientError as exc:
            if _code(exc) not in _TAKEN:
                raise DependencyFailed(f"S3 copy failed: {_code(exc)}") from exc
        there = self.head(dest_bucket, dest_key)
        if there is not None and there.size == source.size and dict(there.metadata) == metadata:
            if tags is not None:
                # The bytes landed; the tags (the clearance now) may be newer.
                self.put_tags(dest_bucket, dest_key, tags)
            return
        try:
            self._s3.copy_object(**kwargs)
        except ClientError as exc:
            raise DependencyFailed(f"S3 copy failed: {_code(exc)}") from exc

    @staticmethod
    def _copy_request(
        copy_source: Mapping[str, str],
        dest_bucket: str,
        dest_key: str,
        metadata: Mapping[str, str],
        source: ObjectInfo,
        tags: Mapping[str, str] | None,
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "Bucket": dest_bucket,
            "Key": dest_key,
            "CopySource": copy_source,
            "MetadataDirective": "REPLACE",
            "Metadata": metadata,
        }
        if source.content_type:
            kwargs["ContentType"] = source.content_type
        if tags is not None:
            kwargs["TaggingDirective"] = "REPLACE"
            kwargs["Tagging"] = urlencode(dict(tags))
        return kwargs

    def delete(self, bucket: str, key: str, version_id: str | None = None) -> None:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        try:
            self._s3.delete_object(**kwargs)
        except ClientError as exc:
            raise DependencyFailed(f"S3 delete failed: {_code(exc)}") from exc

    def write(
        self,
        bucket: str,
        key: str,
        data: bytes,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        extra: dict[str, Any] = {"ContentType": content_type} if content_type else {}
        if tags:
            # Set in the same request: the object never exists without them.
            extra["Tagging"] = urlencode(dict(tags))
        try:
            self._s3.put_object(
                Bucket=bucket, Key=key, Body=data, Metadata=dict(metadata or {}), **extra
            )
        except ClientError as exc:
            raise DependencyFailed(f"S3 put failed: {_code(exc)}") from exc

    def put_tags(self, bucket: str, key: str, tags: Mapping[str, str]) -> None:
        """Replace the current version's tags (s3:PutObjectTagging)."""
        tag_set = [{"Key": k, "Value": v} for k, v in tags.items()]
        try:
            self._s3.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": tag_set})
        except ClientError as exc:
            raise DependencyFailed(f"S3 put tagging failed: {_code(exc)}") from exc

    def tags(self, bucket: str, key: str) -> dict[str, str]:
        """The current version's tags (s3:GetObjectTagging)."""
        try:
            resp = self._s3.get_object_tagging(Bucket=bucket, Key=key)
        except ClientError as exc:
            raise DependencyFailed(f"S3 get tagging failed: {_code(exc)}") from exc
        return {str(t["Key"]): str(t["Value"]) for t in resp.get("TagSet", [])}

    def keys(self, bucket: str, prefix: str) -> list[str]:
        """Current object keys under ``prefix`` (ListObjectsV2, paged)."""
        found: list[str] = []
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        try:
            while True:
                page = self._s3.list_objects_v2(**kwargs)
                found.extend(entry["Key"] for entry in page.get("Contents", []))
                if not page.get("IsTruncated"):
                    return found
                kwargs["ContinuationToken"] = page["NextContinuationToken"]
        except ClientError as exc:
            raise DependencyFailed(f"S3 list failed: {_code(exc)}") from exc

    def versions(self, bucket: str, prefix: str) -> list[ObjectVersion]:
        """Every version and delete marker under ``prefix`` (ListObjectVersions, paged)."""
        found: list[ObjectVersion] = []
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        try:
            while True:
                page = self._s3.list_object_versions(**kwargs)
                for entry in page.get("Versions", []):
                    found.append(ObjectVersion(entry["Key"], str(entry["VersionId"])))
                for entry in page.get("DeleteMarkers", []):
                    found.append(ObjectVersion(entry["Key"], str(entry["VersionId"]), True))
                if not page.get("IsTruncated"):
                    return found
                kwargs["KeyMarker"] = page.get("NextKeyMarker")
                kwargs["VersionIdMarker"] = page.get("NextVersionIdMarker")
        except ClientError as exc:
            raise DependencyFailed(f"S3 list versions failed: {_code(exc)}") from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "unknown"))
