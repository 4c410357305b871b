"""From the engine's faces to the audit report's sections (issue #25).

``domain/accuracy.py`` holds the statistics; this module attributes labelled
faces to detected ones, enrols and probes, and lays out the report's
verification, identification, detection and curve sections per group. Pure:
the use-case (``usecases/accuracy_audit.py``) reads the photos and runs the
engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from quitclaim.domain import accuracy as acc
from quitclaim.domain.models import Box
from quitclaim.domain.ports import FaceObservation


@dataclass
class Attributed:
    """Labelled faces the engine found, one row per attributed face."""

    persons: list[str] = field(default_factory=list)
    encodings: list[Any] = field(default_factory=list)
    enrol_rows: list[bool] = field(default_factory=list)
    enrollable_rows: list[bool] = field(default_factory=list)
    # every boxed label, and whether a detected face overlapped it enough
    found: list[tuple[acc.LabelledFace, bool]] = field(default_factory=list)
    unattributed: int = 0

    def add_photo(
        self, rows: Sequence[acc.LabelledFace], faces: Sequence[FaceObservation], enrollable: bool
    ) -> None:
        """Attribute one photo's labels to its faces (by box; a lone label to a lone face)."""
        taken: set[int] = set()
        for row in rows:
            face: FaceObservation | None = None
            if row.box is not None:
                best = _best_overlap(row.box, faces, taken)
                self.found.append((row, best is not None))
                if best is not None:
                    taken.add(best)
                    face = faces[best]
            elif len(rows) == 1 and len(faces) == 1:
                face = faces[0]
            if face is None or not face.matchable:
                self.unattributed += 1
                continue
            self.persons.append(row.person)
            self.encodings.append(face.encoding)
            self.enrol_rows.append(row.pose == acc.ENROL_POSE)
            self.enrollable_rows.append(enrollable and len(rows) == 1)

    def distances(self) -> Any:
        """Every two attributed templates' distance (an empty matrix when none)."""
        return acc.distances(np.stack(self.encodings) if self.encodings else np.zeros((0, 128)))


def _best_overlap(box: Box, faces: Sequence[FaceObservation], taken: set[int]) -> int | None:
    """The untaken face overlapping ``box`` most, when it overlaps enough to count as found."""
    best, best_iou = None, 0.0
    for k, candidate in enumerate(faces):
        overlap = acc.iou(box, candidate.box)
        if k not in taken and overlap > best_iou:
            best, best_iou = k, overlap
    return best if best is not None and best_iou >= acc.IOU_FOUND else None


class Grouping:
    """The organisation's group labels: attributes, their values, and who is in each."""

    def __init__(self, labels: acc.Labels) -> None:
        self.groups = {p: dict(g) for p, g in labels.groups.items()}
        self.attrs = labels.attributes
        self.values = {
            a: sorted({g[a] for g in self.groups.values() if a in g}) for a in self.attrs
        }

    def members(self, attr: str, value: str) -> set[str]:
        return {p for p, g in self.groups.items() if g.get(attr) == value}

    def across(self, attr: str) -> dict[str, str]:
        """Each labelled person's value of ``attr`` (impostor pairs across its values)."""
        return {p: g[attr] for p, g in self.groups.items() if attr in g}

    def each(self) -> list[tuple[str, str]]:
        return [(a, v) for a in self.attrs for v in self.values[a]]

    def sizes(self) -> dict[str, dict[str, int]]:
        return {a: {v: len(self.members(a, v)) for v in self.values[a]} for a in self.attrs}


def probes(
    persons: list[str], matrix: Any, enrol_rows: list[bool], enrollable: list[bool]
) -> tuple[acc.Probes, list[str], int]:
    """Enrol each named person (their 'enrol' rows, else their first); probe the rest."""
    chosen: dict[str, list[int]] = {}
    for i, person in enumerate(persons):
        if person.startswith(acc.UNKNOWN + ":"):
            continue
        if enrol_rows[i]:
            chosen.setdefault(person, []).append(i)
    for i, person in enumerate(persons):
        if not person.startswith(acc.UNKNOWN + ":") and person not in chosen:
            chosen[person] = [i]
    gallery = {p: [i for i in rows if enrollable[i]] for p, rows in chosen.items()}
    not_enrolled = sum(1 for rows in gallery.values() if not rows)
    gallery = {p: rows for p, rows in sorted(gallery.items()) if rows}
    enrolled = list(gallery)
    used = {i for rows in chosen.values() for i in rows}
    probe_rows = [i for i in range(len(persons)) if i not in used]
    nearest = np.zeros((len(probe_rows), len(enrolled)))
    for c, p in enumerate(enrolled):
        if probe_rows:
            nearest[:, c] = matrix[np.ix_(probe_rows, gallery[p])].min(axis=1)
    result = acc.Probes(
        tuple(enrolled),
        tuple(persons[i] for i in probe_rows),
        tuple(persons[i] if persons[i] in gallery else None for i in probe_rows),
        nearest,
    )
    return result, enrolled, not_enrolled


def verification(pairs: acc.Pairs, grouping: Grouping, t: float, seed: int) -> dict[str, Any]:
    """FMR and FNMR overall, per group, and FMR across each attribute's groups."""
    g = grouping
    return {
        "overall": {
            "fmr": acc.fmr(pairs, t, seed=seed).as_dict(),
            "fnmr": acc.fnmr(pairs, t, seed=seed).as_dict(),
        },
        "by_group": {
            a: {
                v: {
                    "fmr": acc.fmr(pairs, t, g.members(a, v), seed=seed).as_dict(),
                    "fnmr": acc.fnmr(pairs, t, g.members(a, v), seed=seed).as_dict(),
                }
                for v in g.values[a]
            }
            for a in g.attrs
        },
        "across": {
            a: {"fmr": acc.fmr(pairs, t, across=g.across(a), seed=seed).as_dict()} for a in g.attrs
        },
    }


def identification(
    found: acc.Probes, grouping: Grouping, t: float, m: float, seed: int
) -> dict[str, Any]:
    """The gate's outcomes for the probes, overall and per group."""
    g = grouping
    return {
        "overall": acc.identification(found, t, m, seed=seed),
        "by_group": {
            a: {v: acc.identification(found, t, m, g.members(a, v), seed=seed) for v in g.values[a]}
            for a in g.attrs
        },
    }


def per_person(pairs: acc.Pairs, persons: list[str], t: float, seed: int) -> dict[str, Any]:
    """Each named person's faces and FNMR (only when the organisation asks for it)."""
    return {
        p: {"faces": persons.count(p), "fnmr": acc.fnmr(pairs, t, {p}, seed=seed).as_dict()}
        for p in pairs.people
        if not p.startswith(acc.UNKNOWN + ":")
    }


def scopes(grouping: Grouping) -> list[acc.Scope]:
    """Where the advice must hold: everyone, each group, and across each attribute."""
    result = [acc.Scope("everyone")]
    result += [acc.Scope(f"{a}={v}", grouping.members(a, v)) for a, v in grouping.each()]
    result += [acc.Scope(f"across {a}", None, grouping.across(a)) for a in grouping.attrs]
    return result


def curves(pairs: acc.Pairs, grouping: Grouping) -> dict[str, Any]:
    """DET curves (everyone, each group) and the genuine/impostor distance histograms."""
    return {
        "det": {"everyone": acc.det_curve(pairs)}
        | {f"{a}={v}": acc.det_curve(pairs, grouping.members(a, v)) for a, v in grouping.each()},
        "bins": list(acc.HIST_BINS),
        "genuine": acc.histogram(pairs.genuine),
        "impostor": acc.histogram(pairs.impostor),
    }


def detection(
    found: list[tuple[acc.LabelledFace, bool]],
    groups: Mapping[str, Mapping[str, str]],
    attrs: list[str],
    values: Mapping[str, list[str]],
    seed: int,
) -> dict[str, Any]:
    """Missed labelled faces per person → miss rates overall, per group and per pose."""

    def rate(rows: list[tuple[acc.LabelledFace, bool]]) -> dict[str, Any]:
        per: dict[str, list[int]] = {}
        for row, hit in rows:
            c = per.setdefault(row.person, [0, 0])
            c[0] += not hit
            c[1] += 1
        result = acc.person_rate(
            [c[0] for c in per.values()], [c[1] for c in per.values()], seed=seed
        ).as_dict()
        result["found"] = sum(hit for _, hit in rows)
        return result

    poses = sorted({row.pose for row, _ in found if row.pose})
    return {
        "boxed_faces": len(found),
        "miss": rate(found),
        "by_group": {
            a: {
                v: rate([(r, h) for r, h in found if groups.get(r.person, {}).get(a) == v])
                for v in values[a]
            }
            for a in attrs
        },
        "by_pose": {p: rate([(r, h) for r, h in found if r.pose == p]) for p in poses},
    }
