"""One image file through the ingest function's engine: ``quitclaim scan``.

The same decode (allow-listed formats, orientation, every frame), detection,
encoding and gallery match as ``scan_asset``, with no stack: an operator can
see what the gate would find in a photo, and against whom it would match.
Boxes are printed as top, right, bottom, left in original pixels (the
face_recognition order operators know); everywhere else in the package a box
is ``Box(left, top, right, bottom)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quitclaim.domain.errors import RejectedInput
from quitclaim.domain.models import Box, TenantPolicy
from quitclaim.domain.ports import FaceEngine, FaceGallery, GalleryBuilder

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp"})


@dataclass(frozen=True)
class FolderGallery:
    """A gallery built from ``name/photo`` folders, and the photos it could not use."""

    gallery: FaceGallery
    people: int
    skipped: tuple[dict[str, str], ...] = field(default_factory=tuple)


def trbl(box: Box) -> dict[str, int]:
    """A box as top, right, bottom, left (the CLI's output order)."""
    return {"top": box.top, "right": box.right, "bottom": box.bottom, "left": box.left}


def gallery_from_folders(engine: FaceEngine, root: Path, *, build: GalleryBuilder) -> FolderGallery:
    """One template per photo with exactly one face; each folder name is a person.

    A photo with no face, several faces or bytes the decoder refuses is
    skipped with its reason (enrolment asks for exactly one face too).
    ``build`` packs the templates (faces/gallery.py's ``Gallery.build``).
    """
    templates: list[tuple[str, Any]] = []
    skipped: list[dict[str, str]] = []
    people = 0
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        photos = sorted(
            p for p in person.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES
        )
        found = 0
        for photo in photos:
            try:
                faces = engine.analyze(engine.decode(photo.read_bytes()))
            except RejectedInput as exc:
                skipped.append({"photo": str(photo), "reason": exc.code})
                continue
            if len(faces) != 1:
                skipped.append({"photo": str(photo), "reason": f"{len(faces)} faces, not one"})
                continue
            templates.append((person.name, faces[0].encoding))
            found += 1
        people += found > 0
    return FolderGallery(build("scan", 0, templates), people, tuple(skipped))


def scan_file(
    engine: FaceEngine,
    data: bytes,
    *,
    gallery: FaceGallery | None = None,
    policy: TenantPolicy | None = None,
) -> dict[str, Any]:
    """Faces in ``data`` (boxes in original pixels) and, with a gallery, each best match.

    Raises ``RejectedInput`` (with its reason code) for bytes the gate would reject.
    """
    policy = policy or TenantPolicy(tenant="scan")
    image = engine.decode(data)
    observations = engine.analyze(image)
    identifiable = [min(o.box.width, o.box.height) >= policy.min_face_px for o in observations]
    faces: list[dict[str, Any]] = [
        {"box": trbl(o.box), "frame": o.frame, "identifiable": ok}
        for o, ok in zip(observations, identifiable, strict=True)
    ]
    if gallery is not None and observations:
        hits = gallery.match(
            [o.encoding for o in observations],
            threshold=policy.match_threshold,
            margin=policy.match_margin,
        )
        for face, hit in zip(faces, hits, strict=True):
            # An unidentifiable (too small) face is never named by the gate.
            face["match"] = hit.subject_id if face["identifiable"] else None
            face["distance"] = None if hit.distance is None else round(hit.distance, 4)
            face["runner_up_distance"] = (
                None if hit.runner_up_distance is None else round(hit.runner_up_distance, 4)
            )
    return {
        "format": image.source_format,
        "width": image.width,
        "height": image.height,
        "frames": len(image.frames),
        "faces": faces,
        "threshold": policy.match_threshold,
        "margin": policy.match_margin,
        "min_face_px": policy.min_face_px,
    }
