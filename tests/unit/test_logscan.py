"""The log scanner finds each kind of forbidden value, and sees the logs it must see."""

from __future__ import annotations

import base64
import io
import json
import logging

import pytest
from aws_lambda_powertools import Logger
from hypothesis import given
from hypothesis import strategies as st

from tests.logscan import LogScan, json_path, scan_line

API_KEY = "qc_acme_" + "0123456789abcdef" * 3
SAMPLES = {
    "api_key": f"resolved key {API_KEY}",
    "webhook_secret": '{"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}',
    "aws_secret_key": "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "aws_access_key_id": "using AKIAIOSFODNN7EXAMPLE",
    "email": "reminder sent to rose.leslie@example.org",
    "encoding": "enc=" + ", ".join(f"{(i - 64) / 100:.4f}" for i in range(128)),
    "image_base64": "body=" + base64.b64encode(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00").decode(),
    "person_name": "enrolled Kit Harington as subject s_1",
}


@pytest.mark.parametrize("rule", sorted(SAMPLES))
def test_each_rule_flags_its_value(rule: str) -> None:
    assert rule in scan_line(SAMPLES[rule])


def test_a_png_in_base64_is_flagged() -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR").decode()
    assert scan_line(f"data:image/png;base64,{png}") == ["image_base64"]


@pytest.mark.parametrize("name", ["obama", "OBAMA-office.jpg", "kit_harington", "rose-leslie"])
def test_fixture_names_are_flagged_in_any_spelling(name: str) -> None:
    assert scan_line(f"path=incoming/t/{name}") == ["person_name"]


@pytest.mark.parametrize(
    "line",
    [
        '{"level":"INFO","message":"asset.decided","asset_id":"a_0f3c","tenant":"acme"}',
        "key_0123456789ab issued for tenant acme (role admin)",
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "box [12.5, 40.0, 80.25, 96.0] distance 0.4312",
        "from quitclaim@example.org",
        "AWS_SECRET_ACCESS_KEY=testing",
        "the carnival arose",
        '{"Stage_total": [' + ", ".join(f"{12.5 + i:.2f}" for i in range(40)) + "]}",
    ],
)
def test_ordinary_log_lines_pass(line: str) -> None:
    assert scan_line(line) == []


@given(st.text(alphabet=st.characters(codec="ascii", categories=["Ll", "Nd"]), max_size=60))
def test_a_key_is_found_wherever_it_sits_in_a_line(noise: str) -> None:
    assert "api_key" in scan_line(f"{noise} {API_KEY} {noise}")


def test_the_session_scanner_sees_powertools_logs(logscan: LogScan) -> None:
    # Given a Powertools logger writing JSON to its own stream (not to the captured stdout)
    stream = io.StringIO()
    log = Logger(service="logscan-probe", logger_handler=logging.StreamHandler(stream))
    # When it logs a key and a name, inside a sealed block (the session does not fail)
    with logscan.sealed() as found:
        log.info("issued", key=API_KEY, subject="Rose Leslie")
    # Then the line was written, and the scanner saw both, by rule and place only
    assert API_KEY in stream.getvalue()
    assert {f.rule for f in found} == {"api_key", "person_name"}
    assert all(API_KEY not in str(f) and "test_logscan.py" in f.where for f in found)
    assert all(f.test.endswith("test_the_session_scanner_sees_powertools_logs") for f in found)


def test_the_session_scanner_sees_standard_logging(logscan: LogScan) -> None:
    stream = io.StringIO()
    log = logging.getLogger("tests.logscan.probe")
    handler = logging.StreamHandler(stream)
    log.addHandler(handler)
    try:
        with logscan.sealed() as found:
            log.warning("webhook secret %s", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    finally:
        log.removeHandler(handler)
    # (once per handler: its own, and pytest's capture handlers on the root logger)
    assert found and {f.rule for f in found} == {"webhook_secret"}


def test_a_finding_in_a_printed_json_line_is_placed_by_its_key() -> None:
    line = json.dumps({"_aws": {"x": 1}, "audit": {"faces": [{"enc": [0.12345] * 40}]}})
    assert json_path(line, "encoding") == "$.audit.faces[0].enc"
    assert json_path("plain text", "encoding") == "?"


def test_a_numpy_array_printed_over_several_lines_is_flagged(logscan: LogScan) -> None:
    import numpy as np

    encoding = np.linspace(-0.25, 0.25, 128) + 1e-6
    with logscan.sealed() as found:
        logscan.scan_text(f"template {encoding}", "a probe")
    assert "\n" in str(encoding)
    assert [f.rule for f in found] == ["encoding"]
