"""Accuracy audits: the labelled photos an audit reads, and where its uploads go."""

from __future__ import annotations

from typing import Protocol


class PhotoSource(Protocol):
    """The audit's photos by the name the labels use; ``drop`` deletes them when it ends."""

    # What "deleted" means for this source, stated in the report.
    kind: str

    def read(self, name: str) -> bytes: ...

    def drop(self) -> tuple[int, list[str]]:
        """Delete the photos; (deleted, names still present) — the second must be empty."""
        ...


class UploadUrls(Protocol):
    """Presigned PUT URLs into the documents bucket."""

    def upload_url(self, key: str, expires_s: int) -> str: ...
