"""Settings are validated once; the code refuses to run outside the EU."""

from __future__ import annotations

import pytest

from quitclaim.config import load_settings
from quitclaim.domain.errors import ConfigurationError, RegionNotAllowed


def test_refuses_a_non_eu_region(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a container started in us-east-1
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    # When settings load / Then it refuses with a clear, coded error
    with pytest.raises(RegionNotAllowed) as err:
        load_settings()
    assert err.value.code == "region_not_allowed"
    assert "us-east-1" in err.value.message and "eu-central-1" in err.value.message


def test_accepts_an_eu_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert load_settings().region == "eu-west-1"


def test_allowed_list_cannot_be_widened_beyond_the_eu(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an operator trying to allow a US region through configuration
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("QC_ALLOWED_REGIONS", "eu-west-1,us-east-1")
    # Then the settings are invalid, naming the field
    with pytest.raises(ConfigurationError) as err:
        load_settings()
    assert "us-east-1" in err.value.message


def test_threshold_above_dlib_default_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    monkeypatch.setenv("QC_DEFAULT_THRESHOLD", "0.7")
    with pytest.raises(ConfigurationError):
        load_settings()
