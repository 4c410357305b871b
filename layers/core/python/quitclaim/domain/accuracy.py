"""Accuracy and bias audit statistics (issue #25): pure, no engine, no storage.

Input is what the engine made of the organisation's labelled photos: one
template per attributed face, who it is, and per person the group attributes
recorded for the audit. Output is counts and rates with 95 % intervals
bootstrapped over people (comparisons that share a person are not
independent), and threshold advice. docs/accuracy-audit.md states the rules.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from quitclaim.domain.accuracy_stamp import AuditStamp as AuditStamp
from quitclaim.domain.accuracy_stamp import stale_reasons as stale_reasons
from quitclaim.domain.errors import ValidationFailed
from quitclaim.domain.models import Box

REPORT_FORMAT = "quitclaim-accuracy-audit/1"
UNKNOWN = "unknown"  # a person never enrolled (a stranger); each such face is its own person
ENROL_POSE = "enrol"  # rows with this pose are the person's enrolment photos
DEFAULT_TARGET_FMR = 1e-4
DEFAULT_SEED = 25
BOOTSTRAP_ROUNDS = 1000
# "Not enough data": a rate needs this many people contributing and this
# many comparisons (pairs, probes or labelled faces) behind it.
MIN_PEOPLE = 3
MIN_COMPARISONS = 10
# A rate of 1 in N needs about 3N comparisons to show (the "rule of three").
COMPARISONS_PER_INVERSE_TARGET = 3
IOU_FOUND = 0.5
# What a tenant may set (usecases/tenant_admin.py _policy_changes): advice stays inside.
THRESHOLD_GRID = tuple(round(0.20 + 0.01 * i, 2) for i in range(41))
MARGIN_GRID = tuple(round(0.01 * i, 2) for i in range(31))
CURVE_GRID = tuple(round(0.02 * i, 2) for i in range(61))  # 0 … 1.2
HIST_BINS = tuple(round(0.05 * i, 2) for i in range(25))  # 0 … 1.2


@dataclass(frozen=True, slots=True)
class LabelledFace:
    """One row of the labels file: a face of ``person`` in ``photo``."""

    photo: str
    person: str
    box: Box | None = None
    pose: str | None = None


@dataclass(frozen=True)
class Labels:
    faces: tuple[LabelledFace, ...]
    groups: Mapping[str, Mapping[str, str]]  # person → attribute → value

    @property
    def attributes(self) -> list[str]:
        return sorted({a for g in self.groups.values() for a in g})


def parse_labels(text: str) -> Labels:
    """``photo, person, box, pose, group:<name>=<value>…`` rows (a header row is optional).

    ``box`` is ``left top right bottom`` in pixels or empty; ``person``
    ``unknown`` is someone never enrolled (each such row its own person).
    A person's group attributes are the same on every row that names them.
    """
    faces: list[LabelledFace] = []
    groups: dict[str, dict[str, str]] = {}
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if number == 1 and cells[0].lower() == "photo":
            continue
        if len(cells) < 2 or not cells[0] or not cells[1]:
            raise ValidationFailed(
                f"labels line {number}: photo and person are required", field="labels"
            )
        cells += [""] * (4 - len(cells))
        photo, person, box_text, pose = cells[:4]
        box = _box(box_text, number)
        if person.lower() == UNKNOWN:
            person = f"{UNKNOWN}:{len(faces)}"
        known = groups.setdefault(person, {})
        for name, value in _groups(cells[4:], number).items():
            if known.get(name, value) != value:
                raise ValidationFailed(
                    f"labels line {number}: group {name!r} differs from an earlier row "
                    "of this person",
                    field="labels",
                )
            known[name] = value
        faces.append(LabelledFace(photo, person, box, pose or None))
    if not faces:
        raise ValidationFailed("the labels file has no rows", field="labels")
    return Labels(tuple(faces), groups)


def _groups(cells: list[str], number: int) -> dict[str, str]:
    """A row's ``group:<name>=<value>`` cells (empty cells skipped)."""
    attrs: dict[str, str] = {}
    for cell in cells:
        if not cell:
            continue
        if not cell.startswith("group:") or "=" not in cell:
            raise ValidationFailed(
                f"labels line {number}: expected group:<name>=<value>, got a malformed cell",
                field="labels",
            )
        name, value = cell[len("group:") :].split("=", 1)
        if not name.strip() or not value.strip():
            raise ValidationFailed(
                f"labels line {number}: empty group name or value", field="labels"
            )
        attrs[name.strip()] = value.strip()
    return attrs


def _box(text: str, number: int) -> Box | None:
    if not text:
        return None
    parts = text.replace(";", " ").split()
    try:
        left, top, right, bottom = (int(float(p)) for p in parts)
    except ValueError:
        raise ValidationFailed(
            f"labels line {number}: box must be 'left top right bottom'", field="labels"
        ) from None
    if right <= left or bottom <= top:
        raise ValidationFailed(f"labels line {number}: box is empty", field="labels")
    return Box(left, top, right, bottom)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    w = min(a.right, b.right) - max(a.left, b.left)
    h = min(a.bottom, b.bottom) - max(a.top, b.top)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


# -- rates -------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    """``errors`` of ``comparisons`` over ``people``; None values when not enough data."""

    errors: int
    comparisons: int
    people: int
    rate: float | None
    low: float | None
    high: float | None

    @property
    def enough(self) -> bool:
        return self.rate is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "errors": self.errors,
            "comparisons": self.comparisons,
            "people": self.people,
            "rate": self.rate,
            "ci95": [self.low, self.high] if self.enough else None,
            "status": "ok" if self.enough else "not enough data",
        }


def enough_data(people: int, comparisons: int) -> bool:
    """The not-enough-data rule (docs/accuracy-audit.md)."""
    return people >= MIN_PEOPLE and comparisons >= MIN_COMPARISONS


def _weights(people: int, seed: int, rounds: int) -> npt.NDArray[np.float64]:
    """Bootstrap multiplicities: ``rounds`` resamples of ``people`` drawn with replacement."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, people, size=(rounds, people))
    counts = np.zeros((rounds, people))
    np.add.at(counts, (np.arange(rounds)[:, None], draws), 1.0)
    return counts


def _interval(values: npt.NDArray[np.float64]) -> tuple[float, float]:
    # A round that drew only people without comparisons has no rate: left out.
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return (0.0, 1.0)
    low, high = np.percentile(finite, [2.5, 97.5])
    return (round(float(low), 6), round(float(high), 6))


def person_rate(
    errors: Sequence[int],
    totals: Sequence[int],
    *,
    seed: int = DEFAULT_SEED,
    rounds: int = BOOTSTRAP_ROUNDS,
) -> Rate:
    """A rate whose comparisons each belong to one person (genuine pairs, probes, faces)."""
    e = np.asarray(errors, dtype=np.float64)
    n = np.asarray(totals, dtype=np.float64)
    keep = n > 0
    e, n = e[keep], n[keep]
    people, total, wrong = int(keep.sum()), int(n.sum()), int(e.sum())
    if not enough_data(people, total):
        return Rate(wrong, total, people, None, None, None)
    w = _weights(people, seed, rounds)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = (w @ e) / (w @ n)
    low, high = _interval(boot)
    return Rate(wrong, total, people, round(wrong / total, 6), low, high)


def pair_rate(
    errors: npt.NDArray[np.float64],
    totals: npt.NDArray[np.float64],
    *,
    seed: int = DEFAULT_SEED,
    rounds: int = BOOTSTRAP_ROUNDS,
) -> Rate:
    """A rate over pairs of two people: ``errors[p, q]`` of ``totals[p, q]`` (upper triangle)."""
    people_in = (totals.sum(axis=0) + totals.sum(axis=1)) > 0
    e = errors[np.ix_(people_in, people_in)]
    n = totals[np.ix_(people_in, people_in)]
    people, total, wrong = int(people_in.sum()), int(n.sum()), int(e.sum())
    if not enough_data(people, total):
        return Rate(wrong, total, people, None, None, None)
    w = _weights(people, seed, rounds)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = np.einsum("bp,pq,bq->b", w, e, w) / np.einsum("bp,pq,bq->b", w, n, w)
    low, high = _interval(boot)
    return Rate(wrong, total, people, round(wrong / total, 6), low, high)


# -- the comparisons -----------------------------------------------------------


def distances(encodings: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Euclidean distance between every two templates, in float64 as the gallery measures."""
    x = np.asarray(encodings, dtype=np.float32).astype(np.float64)
    if x.size == 0:
        return np.zeros((0, 0))
    diff = x[:, None, :] - x[None, :, :]
    return np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))


@dataclass(frozen=True)
class Pairs:
    """Every pair of attributed faces: genuine (one person) and impostor (two)."""

    people: tuple[str, ...]
    genuine_person: npt.NDArray[np.intp]
    genuine: npt.NDArray[np.float64]
    impostor_a: npt.NDArray[np.intp]  # person index, a < b
    impostor_b: npt.NDArray[np.intp]
    impostor: npt.NDArray[np.float64]

    @classmethod
    def build(cls, persons: Sequence[str], matrix: npt.NDArray[np.float64]) -> Pairs:
        people = tuple(sorted(set(persons)))
        index = {p: i for i, p in enumerate(people)}
        ids = np.asarray([index[p] for p in persons], dtype=np.intp)
        i, j = np.triu_indices(len(persons), k=1)
        same = ids[i] == ids[j]
        a, b = ids[i][~same], ids[j][~same]
        return cls(
            people,
            ids[i][same],
            matrix[i, j][same],
            np.minimum(a, b),
            np.maximum(a, b),
            matrix[i, j][~same],
        )


def _mask(people: Sequence[str], chosen: set[str] | None) -> npt.NDArray[np.bool_]:
    return np.asarray([chosen is None or p in chosen for p in people], dtype=bool)


def fnmr(
    pairs: Pairs, threshold: float, chosen: set[str] | None = None, seed: int = DEFAULT_SEED
) -> Rate:
    """Genuine pairs farther apart than ``threshold`` (a miss), people in ``chosen``."""
    n = len(pairs.people)
    errors = np.bincount(pairs.genuine_person, weights=pairs.genuine > threshold, minlength=n)
    totals = np.bincount(pairs.genuine_person, minlength=n).astype(np.float64)
    keep = _mask(pairs.people, chosen)
    return person_rate(
        errors[keep].astype(int).tolist(), totals[keep].astype(int).tolist(), seed=seed
    )


def _impostor_matrices(
    pairs: Pairs, threshold: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    n = len(pairs.people)
    errors = np.zeros((n, n))
    totals = np.zeros((n, n))
    np.add.at(errors, (pairs.impostor_a, pairs.impostor_b), pairs.impostor <= threshold)
    np.add.at(totals, (pairs.impostor_a, pairs.impostor_b), 1.0)
    return errors, totals


def fmr(
    pairs: Pairs,
    threshold: float,
    chosen: set[str] | None = None,
    *,
    across: Mapping[str, str] | None = None,
    seed: int = DEFAULT_SEED,
) -> Rate:
    """Impostor pairs within ``threshold`` (a false match).

    ``chosen``: both people in it. ``across``: person → group value; only
    pairs of two people with different values (people without one are left out).
    """
    errors, totals = _impostor_matrices(pairs, threshold)
    keep = _mask(pairs.people, chosen)
    if across is not None:
        keep &= np.asarray([p in across for p in pairs.people], dtype=bool)
        values = [across.get(p) for p in pairs.people]
        differ = np.asarray([[x != y for y in values] for x in values], dtype=bool)
        errors, totals = errors * differ, totals * differ
    idx = np.flatnonzero(keep)
    return pair_rate(errors[np.ix_(idx, idx)], totals[np.ix_(idx, idx)], seed=seed)


# -- identification as the gate decides ---------------------------------------------


@dataclass(frozen=True)
class Probes:
    """Probe faces against the enrolled: least distance to each enrolled person.

    ``expected`` is the enrolled person a probe shows, or None for someone
    never enrolled (then the only right answer is "unknown").
    """

    enrolled: tuple[str, ...]
    person: tuple[str, ...]  # who each probe is
    expected: tuple[str | None, ...]
    nearest: npt.NDArray[np.float64]  # (probes, enrolled)


def identify(
    nearest: npt.NDArray[np.float64], enrolled: Sequence[str], threshold: float, margin: float
) -> list[str | None]:
    """The gallery's rule (faces/gallery.py ``Gallery.match``) on precomputed distances.

    A probe is named when its best distance is within ``threshold`` and the
    best other person is more than ``margin`` farther; otherwise unknown.
    """
    out: list[str | None] = []
    for row in nearest:
        if row.size == 0:
            out.append(None)
            continue
        order = np.argsort(row, kind="stable")
        best = float(row[order[0]])
        runner = float(row[order[1]]) if row.size > 1 else None
        ambiguous = runner is not None and runner - best <= margin
        out.append(None if best > threshold or ambiguous else enrolled[int(order[0])])
    return out


def outcomes(probes: Probes, threshold: float, margin: float) -> list[str]:
    """``right`` / ``unknown`` (a miss of an enrolled person) / ``wrong`` per probe."""
    named = identify(probes.nearest, probes.enrolled, threshold, margin)
    result = []
    for got, want in zip(named, probes.expected, strict=True):
        if got is None:
            result.append("right" if want is None else "unknown")
        else:
            result.append("right" if got == want else "wrong")
    return result


def identification(
    probes: Probes,
    threshold: float,
    margin: float,
    chosen: set[str] | None = None,
    seed: int = DEFAULT_SEED,
) -> dict[str, Any]:
    """Counts of right / unknown / wrong, and the wrong and miss rates with intervals."""
    results = outcomes(probes, threshold, margin)
    counts = {"right": 0, "unknown": 0, "wrong": 0}
    wrong: dict[str, list[int]] = {}
    missed: dict[str, list[int]] = {}
    for person, want, outcome in zip(probes.person, probes.expected, results, strict=True):
        if chosen is not None and person not in chosen:
            continue
        counts[outcome] += 1
        w = wrong.setdefault(person, [0, 0])
        w[0] += outcome == "wrong"
        w[1] += 1
        if want is not None:
            m = missed.setdefault(person, [0, 0])
            m[0] += outcome == "unknown"
            m[1] += 1
    return {
        **counts,
        "probes": sum(counts.values()),
        "wrong_rate": person_rate(
            [v[0] for v in wrong.values()], [v[1] for v in wrong.values()], seed=seed
        ).as_dict(),
        "miss_rate": person_rate(
            [v[0] for v in missed.values()], [v[1] for v in missed.values()], seed=seed
        ).as_dict(),
    }


# -- curves, advice -------------------------------------------------------------


def det_curve(pairs: Pairs, chosen: set[str] | None = None) -> list[tuple[float, float, float]]:
    """(threshold, FMR, FNMR) over ``CURVE_GRID`` (point rates, no intervals); [] without data."""
    g = (
        pairs.genuine[_mask(pairs.people, chosen)[pairs.genuine_person]]
        if pairs.genuine.size
        else pairs.genuine
    )
    keep = _mask(pairs.people, chosen)
    i = (
        pairs.impostor[keep[pairs.impostor_a] & keep[pairs.impostor_b]]
        if pairs.impostor.size
        else pairs.impostor
    )
    if not i.size or not g.size:
        return []  # no curve without both kinds of pair (and no NaN in the JSON)
    return [
        (t, round(float((i <= t).mean()), 6), round(float((g > t).mean()), 6)) for t in CURVE_GRID
    ]


def histogram(values: npt.NDArray[np.float64]) -> list[int]:
    """Counts per ``HIST_BINS`` bin (the last bin takes everything beyond)."""
    edges = np.asarray([*HIST_BINS, math.inf])
    counts, _ = np.histogram(np.clip(values, 0, None), bins=edges)
    return [int(c) for c in counts]


def measurable(comparisons: int, target: float) -> bool:
    """Whether a rate of ``target`` can show in ``comparisons`` (about 3 / target needed)."""
    return comparisons >= COMPARISONS_PER_INVERSE_TARGET / target


def scope_impostors(pairs: Pairs, scope: Scope) -> npt.NDArray[np.float64]:
    """The impostor distances a scope's FMR is measured on."""
    keep = _mask(pairs.people, scope.chosen)
    if scope.across is not None:
        within = np.asarray([p in scope.across for p in pairs.people], dtype=bool)
        keep &= within
    take = keep[pairs.impostor_a] & keep[pairs.impostor_b]
    if scope.across is not None:
        values = np.asarray([scope.across.get(p, "") for p in pairs.people], dtype=object)
        take &= values[pairs.impostor_a] != values[pairs.impostor_b]
    return pairs.impostor[take]


@dataclass(frozen=True)
class Scope:
    """A set of people the advice must hold for: a group, everyone, or across a group."""

    name: str
    chosen: set[str] | None = None
    across: Mapping[str, str] | None = None


def _measurable_scopes(
    pairs: Pairs, scopes: Sequence[Scope], target: float
) -> tuple[list[Scope], list[npt.NDArray[np.float64]], list[Scope]]:
    """The scopes with enough impostor comparisons (and their distances), and the rest."""
    unmeasurable: list[Scope] = []
    judged: list[Scope] = []
    scoped: list[npt.NDArray[np.float64]] = []
    for scope in scopes:
        d = scope_impostors(pairs, scope)
        if measurable(d.size, target):
            judged.append(scope)
            scoped.append(d)
        else:
            unmeasurable.append(scope)
    return judged, scoped, unmeasurable


def _least_margin(probes: Probes, threshold: float, margin: float, target: float) -> float:
    """The tenant's margin, or the least above it keeping the probes' wrong rate at ``target``."""
    probe_count = len(probes.person)
    for m in (x for x in MARGIN_GRID if x >= margin - 1e-9):
        wrong = outcomes(probes, threshold, m).count("wrong")
        if probe_count == 0 or wrong / probe_count <= target:
            return m
    return MARGIN_GRID[-1]


def advise(
    pairs: Pairs,
    probes: Probes,
    scopes: Sequence[Scope],
    *,
    threshold: float,
    margin: float,
    target: float = DEFAULT_TARGET_FMR,
    seed: int = DEFAULT_SEED,
) -> dict[str, Any]:
    """The loosest threshold (and margin) keeping FMR at or below ``target`` everywhere measurable.

    A scope with fewer than 3/target impostor comparisons is "unmeasurable
    with this data" and does not constrain the advice; when no scope is
    measurable there is no advice. The margin is the tenant's unless the
    gate's own rule names a wrong person too often at the advised threshold:
    then the least margin that keeps the wrong rate of the probes at or below
    ``target``.
    """
    if not 0 < target < 1:
        raise ValidationFailed("target FMR must be between 0 and 1", field="target_fmr")
    judged, scoped, unmeasurable = _measurable_scopes(pairs, scopes, target)
    base: dict[str, Any] = {
        "target_fmr": target,
        "needs_comparisons": math.ceil(COMPARISONS_PER_INVERSE_TARGET / target),
        "unmeasurable": [s.name for s in unmeasurable],
    }
    if not judged:
        return {**base, "status": "unmeasurable with this data"}
    chosen_t: float | None = None
    for t in THRESHOLD_GRID:
        # point rates decide; the intervals at the advice are reported below
        if all(float((d <= t).mean()) <= target for d in scoped):
            chosen_t = t
    if chosen_t is None:
        return {**base, "status": "no threshold in the allowed range meets the target"}
    chosen_m = _least_margin(probes, chosen_t, margin, target)
    cost = {
        s.name: fnmr(pairs, chosen_t, s.chosen, seed=seed).as_dict()
        for s in judged
        if s.across is None
    }
    return {
        **base,
        "status": "ok",
        "match_threshold": chosen_t,
        "match_margin": chosen_m,
        "loosens": chosen_t > threshold or chosen_m < margin,
        "policy_change": {"match_threshold": chosen_t, "match_margin": chosen_m},
        "fmr_at_advice": {
            s.name: fmr(pairs, chosen_t, s.chosen, across=s.across, seed=seed).as_dict()
            for s in judged
        },
        "fnmr_cost": cost,
        "identification_at_advice": {
            k: v
            for k, v in identification(probes, chosen_t, chosen_m, seed=seed).items()
            if k in ("right", "unknown", "wrong")
        },
    }


# -- staleness ---------------------------------------------------------------------


# AuditStamp and stale_reasons live in domain/accuracy_stamp.py (no numpy: the
# digest's function has no face layer); re-exported here for the audit.
