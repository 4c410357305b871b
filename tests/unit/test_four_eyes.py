"""Four eyes (I2): who is the same person, and which policy changes loosen the gate."""

from __future__ import annotations

from dataclasses import replace

import pytest

from quitclaim.domain.errors import Forbidden, ValidationFailed
from quitclaim.domain.four_eyes import confirm, loosened, person_name, person_of, requested_by
from quitclaim.domain.models import ScanMode, TenantPolicy
from quitclaim.domain.registry import Principal, Role

BASE = TenantPolicy("acme")


def _who(key_id: str, person: str = "") -> Principal:
    return Principal("acme", key_id, Role.REVIEWER, "", person)


def test_one_persons_keys_count_once_whatever_the_spelling() -> None:
    # Given a request by Ana's laptop key
    pending = requested_by(_who("key_1", "Ana  Smith"), "2026-12-01T00:00:00+00:00")
    # When her phone key (same person, other spacing and case) confirms: refused
    with pytest.raises(Forbidden) as refused:
        confirm(pending, _who("key_2", "ana smith"), "release")
    assert refused.value.code == "same_reviewer"
    # When Ben confirms: both people are named, the asker first
    assert confirm(pending, _who("key_3", "Ben"), "release") == ["Ana  Smith", "Ben"]


def test_a_key_without_a_person_is_its_own_person() -> None:
    # A request from before keys had people names only its key
    legacy = {"by": "key_1", "at": "2026-12-01T00:00:00+00:00"}
    with pytest.raises(Forbidden):
        confirm(legacy, _who("key_1"), "release")
    assert confirm(legacy, _who("key_2"), "release") == ["key_1", "key_2"]
    assert person_of(_who("key_9")) == "key_9"


def test_a_person_is_required_and_bounded() -> None:
    assert person_name("  ana   smith ") == "ana smith"
    for bad in ("", "   ", "x" * 101, "bell\x07"):
        with pytest.raises(ValidationFailed) as failed:
            person_name(bad)
        assert failed.value.field == "person"


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"min_face_px": 41}, ["min_face_px"]),
        ({"match_threshold": 0.55}, ["match_threshold"]),
        ({"match_margin": 0.01}, ["match_margin"]),
        ({"scan_modes": (("*", ScanMode.RECOGNIZE), ("p", ScanMode.OFF))}, ["scan_modes"]),
        ({"scan_modes": (("*", ScanMode.OFF),)}, ["scan_modes"]),
        ({"unknown_face_policy": "review"}, ["unknown_face_policy"]),
        ({"auto_redact": True}, ["auto_redact"]),
        ({"min_face_px": 400, "auto_redact": True}, ["min_face_px", "auto_redact"]),
    ],
)
def test_changes_that_let_the_gate_see_less_are_named(
    change: dict[str, object], fields: list[str]
) -> None:
    assert loosened(BASE, replace(BASE, **change)) == fields  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "change",
    [
        {"min_face_px": 30},
        {"match_threshold": 0.4},
        {"match_margin": 0.1},
        {"scan_modes": (("*", ScanMode.DETECT_ONLY),)},
        {"language": "nl"},
        {"default_purpose": "print"},
    ],
)
def test_changes_that_tighten_or_do_not_touch_the_gate_are_not(change: dict[str, object]) -> None:
    assert loosened(BASE, replace(BASE, **change)) == []  # type: ignore[arg-type]


def test_dropping_a_strict_collection_falls_back_to_the_default_and_loosens() -> None:
    # Given events scanned detect-only; when events is dropped it falls back to "*"
    strict = replace(BASE, scan_modes=(("*", ScanMode.RECOGNIZE), ("events", ScanMode.DETECT_ONLY)))
    assert loosened(strict, BASE) == ["scan_modes"]
    assert loosened(BASE, strict) == []


def test_publishing_on_fewer_channels_needs_a_second_administrator() -> None:
    # Given the default: each upload published on its own purpose's clearance
    web = frozenset({"web"})
    every = BASE.purposes
    publish_web = replace(BASE, publishing_purposes=web)
    # Then asking for the web alone lets a print upload through on less: it loosens
    assert loosened(BASE, publish_web) == ["publishing_purposes"]
    # and so does dropping a channel from the set, or dropping the set
    both = replace(BASE, publishing_purposes=web | {"print"})
    assert loosened(both, publish_web) == ["publishing_purposes"]
    assert loosened(publish_web, BASE) == ["publishing_purposes"]
    # While adding a channel to the set, or asking for every purpose, does not
    assert loosened(publish_web, both) == []
    assert loosened(BASE, replace(BASE, publishing_purposes=every)) == []
