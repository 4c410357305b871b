"""Documents and reference photos of a consents import, read from local folders.

``--documents DIR`` holds the signed forms the CSV names; ``--photos DIR``
holds one folder per person reference with their reference photos. A name
that would leave its folder (``..``, an absolute path) is treated as absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
