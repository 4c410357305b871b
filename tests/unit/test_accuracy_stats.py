"""The accuracy audit's statistics (domain/accuracy.py): counts, intervals, rules, advice."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quitclaim.domain import accuracy as acc
from quitclaim.domain.accuracy_report import render_html
from quitclaim.domain.errors import ValidationFailed
from quitclaim.domain.models import Box
from quitclaim.faces.gallery import Gallery


def test_labels_parse_rows_groups_boxes_and_strangers() -> None:
    # Given a labels file with a header, a box, a stranger and group cells
    text = (
        "photo,person,box,pose,groups\n"
        "a.jpg,ann,,enrol,group:tone=V,group:age=30-50\n"
        "b.jpg,ann,10 20 110 140,frontal\n"
        "b.jpg,unknown,200 20 300 140,profile,group:age=0-18\n"
    )
    # When parsed
    labels = acc.parse_labels(text)
    # Then rows, boxes, per-person groups and a distinct stranger come out
    assert [f.person for f in labels.faces] == ["ann", "ann", "unknown:2"]
    assert labels.faces[1].box == Box(10, 20, 110, 140)
    assert labels.groups["ann"] == {"tone": "V", "age": "30-50"}
    assert labels.groups["unknown:2"] == {"age": "0-18"}
    assert labels.attributes == ["age", "tone"]


@pytest.mark.parametrize(
    "text",
    [
        "a.jpg,ann,1 2 3,frontal\n",  # three numbers
        "a.jpg,ann,,frontal,tone=V\n",  # no group: prefix
        "a.jpg,ann,,,group:tone=V\nb.jpg,ann,,,group:tone=W\n",  # a person in two groups
        "a.jpg\n",
        "",
    ],
)
def test_bad_labels_are_refused_naming_the_field(text: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        acc.parse_labels(text)
    assert caught.value.field == "labels"


def _pairs() -> acc.Pairs:
    # Faces: a1 a2 a3 (ann), b1 b2 (bob), c1 (cat), on a line: distance = |x - y|.
    persons = ["ann", "ann", "ann", "bob", "bob", "cat"]
    x = np.asarray([0.0, 0.3, 0.7, 1.0, 1.2, 2.0])
    return acc.Pairs.build(persons, np.abs(x[:, None] - x[None, :]))


def test_counts_match_a_hand_computation() -> None:
    # Given six faces of three people on a line, and threshold 0.5
    pairs = _pairs()
    # When the rates are counted
    fnmr = acc.fnmr(pairs, 0.5)
    fmr = acc.fmr(pairs, 0.5)
    # Then genuine pairs: ann 3 (0.3, 0.7, 0.4: one miss), bob 1 (0.2): 4 pairs, 1 miss
    assert (fnmr.errors, fnmr.comparisons, fnmr.people) == (1, 4, 2)
    # and impostor pairs: 15 - 4 = 11; within 0.5: a3-b1 (0.3), a3-b2 (0.5)
    assert (fmr.errors, fmr.comparisons, fmr.people) == (2, 11, 3)
    # and the misses rest on two people: "not enough data"; the false matches do not
    assert not fnmr.enough
    assert fmr.enough and fmr.rate == pytest.approx(2 / 11, abs=1e-6)


def test_not_enough_data_rule() -> None:
    assert acc.person_rate([0, 1], [5, 5]).as_dict()["status"] == "not enough data"  # 2 people
    assert acc.person_rate([0, 0, 1], [1, 2, 2]).as_dict()["status"] == "not enough data"  # 5 < 10
    assert acc.person_rate([0, 0, 1], [4, 3, 3]).enough


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 6), st.integers(1, 6)), min_size=3, max_size=8).filter(
        lambda rows: sum(n for _, n in rows) >= 10
    )
)
def test_intervals_are_deterministic_ordered_and_bounded(rows: list[tuple[int, int]]) -> None:
    errors = [min(e, n) for e, n in rows]
    totals = [n for _, n in rows]
    first = acc.person_rate(errors, totals)
    again = acc.person_rate(errors, totals)
    assert first == again  # seeded
    assert first.low is not None and first.high is not None and first.rate is not None
    assert 0.0 <= first.low <= first.high <= 1.0


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers(1, 5)), min_size=4, max_size=8).filter(
        lambda rows: len({min(e, n) / n for e, n in rows}) > 1 and sum(n for _, n in rows) >= 10
    )
)
def test_intervals_widen_as_a_group_shrinks(rows: list[tuple[int, int]]) -> None:
    # Given the same people's results, once and four times over (a group four times larger)
    errors = [min(e, n) for e, n in rows]
    totals = [n for _, n in rows]
    small = acc.person_rate(errors, totals)
    large = acc.person_rate(errors * 4, totals * 4)
    # Then the same rate, and the smaller group's interval is wider
    assert small.rate == large.rate
    assert small.low is not None and small.high is not None
    assert large.low is not None and large.high is not None
    assert small.high - small.low > large.high - large.low


def test_a_group_with_two_photos_is_not_enough_data() -> None:
    pairs = acc.Pairs.build(["ann", "ann"], np.asarray([[0.0, 0.4], [0.4, 0.0]]))
    assert acc.fnmr(pairs, 0.5).as_dict()["status"] == "not enough data"
    assert acc.fmr(pairs, 0.5).as_dict()["status"] == "not enough data"


@settings(max_examples=30, deadline=None)
@given(
    st.integers(0, 2**31 - 1),
    st.integers(2, 5),
    st.floats(0.2, 0.9),
    st.floats(0.0, 0.2),
)
def test_identify_is_the_gallerys_rule(
    seed: int, people: int, threshold: float, margin: float
) -> None:
    # Given random templates, 1-2 per enrolled person, and random probes
    rng = np.random.default_rng(seed)
    enrolled = [f"p{i}" for i in range(people)]
    items = [
        (p, rng.normal(0, 0.05, 128)) for p in enrolled for _ in range(int(rng.integers(1, 3)))
    ]
    probes = rng.normal(0, 0.05, (6, 128)).astype(np.float32)
    gallery = Gallery.build("t", 1, items)
    # When the audit decides from least distances per person
    nearest = np.zeros((6, people))
    for c, p in enumerate(enrolled):
        rows = np.stack([e for q, e in items if q == p]).astype(np.float32).astype(np.float64)
        diff = probes.astype(np.float64)[:, None, :] - rows[None, :, :]
        nearest[:, c] = np.sqrt((diff**2).sum(axis=2)).min(axis=1)
    got = acc.identify(nearest, enrolled, threshold, margin)
    # Then it names whom the gate's gallery names
    want = [m.subject_id for m in gallery.match(probes, threshold=threshold, margin=margin)]
    assert got == want


def _spread() -> tuple[acc.Pairs, acc.Probes]:
    # Ten people, two faces each: genuine pairs at 0.3, impostors from 0.55 up.
    rng = np.random.default_rng(7)
    persons = [f"p{i}" for i in range(10) for _ in range(2)]
    n = len(persons)
    d = np.full((n, n), 0.0)
    for i in range(n):
        for j in range(i + 1, n):
            value = 0.3 if persons[i] == persons[j] else 0.55 + 0.4 * rng.random()
            d[i, j] = d[j, i] = value
    pairs = acc.Pairs.build(persons, d)
    enrolled = tuple(f"p{i}" for i in range(10))
    probe_rows = list(range(1, n, 2))
    nearest = np.stack([[d[r, 2 * c] for c in range(10)] for r in probe_rows])
    probes = acc.Probes(enrolled, tuple(persons[r] for r in probe_rows), enrolled, nearest)
    return pairs, probes


def test_a_raised_threshold_brings_false_matches_and_advice_restores_the_target() -> None:
    pairs, probes = _spread()
    target = 0.02  # 190 impostor pairs >= 150 needed
    # Given a threshold raised above the impostor floor
    raised = acc.fmr(pairs, 0.7)
    assert raised.errors > 0
    # When advice is asked for
    advice = acc.advise(
        pairs, probes, [acc.Scope("everyone")], threshold=0.7, margin=0.05, target=target
    )
    # Then it names a threshold whose FMR meets the target, tighter than the raised one
    assert advice["status"] == "ok"
    assert advice["match_threshold"] < 0.7 and not advice["loosens"]
    assert acc.fmr(pairs, advice["match_threshold"]).errors / 190 <= target
    assert advice["fnmr_cost"]["everyone"]["errors"] == 0


def test_advice_is_unmeasurable_with_too_few_comparisons() -> None:
    pairs, probes = _spread()
    advice = acc.advise(pairs, probes, [acc.Scope("everyone")], threshold=0.5, margin=0.05)
    assert advice["status"] == "unmeasurable with this data"
    assert advice["needs_comparisons"] == 30000
    assert advice["unmeasurable"] == ["everyone"]


def test_stale_when_engine_model_or_threshold_change() -> None:
    measured = acc.AuditStamp({"engine": "e/1", "encoder": "m1"}, 0.5, 0.05)
    assert acc.stale_reasons(measured, measured) == []
    assert acc.stale_reasons(
        measured, acc.AuditStamp({"engine": "e/1", "encoder": "m2"}, 0.5, 0.05)
    ) == ["engine or model changed: encoder"]
    assert acc.stale_reasons(measured, acc.AuditStamp(measured.engine_versions, 0.45, 0.05)) == [
        "match_threshold changed"
    ]


def test_the_html_report_draws_its_own_svg_and_states_limits() -> None:
    pairs, probes = _spread()
    report = {
        "tenant": "acme",
        "created_at": "2026-12-06T00:00:00+00:00",
        "engine_versions": {"engine": "e/1"},
        "policy": {"match_threshold": 0.5, "match_margin": 0.05},
        "target_fmr": 0.02,
        "data": {"photos": 20, "groups": {}},
        "verification": {
            "overall": {
                "fmr": acc.fmr(pairs, 0.5).as_dict(),
                "fnmr": acc.fnmr(pairs, 0.5).as_dict(),
            },
            "by_group": {},
            "across": {},
        },
        "identification": {"overall": acc.identification(probes, 0.5, 0.05), "by_group": {}},
        "detection": {
            "miss": {**acc.person_rate([], []).as_dict(), "found": 0},
            "by_group": {},
            "by_pose": {},
        },
        "advice": acc.advise(
            pairs, probes, [acc.Scope("everyone")], threshold=0.5, margin=0.05, target=0.02
        ),
        "curves": {
            "det": {"everyone": acc.det_curve(pairs)},
            "bins": list(acc.HIST_BINS),
            "genuine": acc.histogram(pairs.genuine),
            "impostor": acc.histogram(pairs.impostor),
        },
        "method": "m",
        "limits": ["a limit"],
        "legal_basis": "Art. 9",
        "stale": ["match_threshold changed"],
    }
    page = render_html(report)
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    assert len(svgs) == 4
    for svg in svgs:
        ET.fromstring(svg)  # well-formed: browsers draw it inline
    assert "a limit" in page and "Art. 9" in page and "Stale: match_threshold changed" in page


def test_det_curves_run_from_all_misses_down_and_are_empty_without_data() -> None:
    pairs = _pairs()
    curve = acc.det_curve(pairs)
    assert curve[0][1:] == (0.0, 1.0) and curve[-1][2] == 0.0  # impostors reach 2.0
    fmrs = [p[1] for p in curve]
    assert fmrs == sorted(fmrs)
    assert acc.det_curve(pairs, {"cat"}) == []  # one face: no pairs at all
