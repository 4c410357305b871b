"""The gate's engine keeps the absolute face floor unless a tenant opts out."""

from __future__ import annotations

import pytest

from quitclaim import bootstrap


@pytest.fixture
def engine():  # type: ignore[no-untyped-def]
    bootstrap.reset_container()
    bootstrap.face_engine.cache_clear()
    yield bootstrap.face_engine()
    bootstrap.face_engine.cache_clear()


def test_a_12mp_photo_is_searched_for_40px_faces_by_default(engine) -> None:  # type: ignore[no-untyped-def]
    # Given the composition root's engine (what the ingest function runs)
    # Then a 40 px face is promised on a 12 MP photo too, not only on small ones
    assert engine.min_face_floor(4000, 3000) == 40
    assert engine.min_face_floor(640, 480) == 40
