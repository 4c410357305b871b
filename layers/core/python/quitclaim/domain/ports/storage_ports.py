"""Object storage: buckets, objects, their versions and listings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    bucket: str
    key: str
    size: int
    etag: str
    version_id: str | None = None
    content_type: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


class ObjectStore(Protocol):
    def head(self, bucket: str, key: str, version_id: str | None = None) -> ObjectInfo | None:
        """The object's metadata, or None when it does not exist."""
        ...

    def read(self, bucket: str, key: str, version_id: str | None = None) -> bytes: ...

    def copy(
        self,
        source: ObjectInfo,
        dest_bucket: str,
        dest_key: str,
        extra_metadata: Mapping[str, str],
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Copy bytes unchanged; merge ``extra_metadata`` into the object's metadata.

        ``tags``: the copy's object tags (replacing the source's), when given.
        """
        ...

    def delete(self, bucket: str, key: str, version_id: str | None = None) -> None: ...

    def write(
        self,
        bucket: str,
        key: str,
        data: bytes,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None: ...

    def put_tags(self, bucket: str, key: str, tags: Mapping[str, str]) -> None:
        """Replace the object tags of the current version (clearance per channel)."""
        ...

    def tags(self, bucket: str, key: str) -> dict[str, str]:
        """The object tags of the current version ({} when it has none)."""
        ...


@dataclass(frozen=True, slots=True)
class ObjectVersion:
    """One stored version of an object (or a delete marker) in a versioned bucket."""

    key: str
    version_id: str
    delete_marker: bool = False


class ObjectVersions(Protocol):
    """Every version under a prefix: what erasure removes and verification re-reads."""

    def versions(self, bucket: str, prefix: str) -> list[ObjectVersion]: ...


class ObjectKeys(Protocol):
    def keys(self, bucket: str, prefix: str) -> list[str]:
        """Current object keys under ``prefix``."""
        ...


class ListableObjectStore(ObjectStore, ObjectKeys, Protocol):
    """Objects and their listings (what the conservation check reads)."""
