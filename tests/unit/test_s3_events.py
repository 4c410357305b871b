"""S3 notifications through SQS: test events, URL-encoded keys, poison bodies."""

from __future__ import annotations

import pytest

from quitclaim.edges.s3_events import MalformedEvent, uploads_from_message
from tests.conftest import EVENTS


def _event(name: str) -> str:
    return (EVENTS / name).read_text(encoding="utf-8")


def test_test_event_yields_nothing() -> None:
    # Given the s3:TestEvent S3 sends when a notification is configured
    # When parsed / Then there is nothing to scan (and no error to retry)
    assert uploads_from_message(_event("s3_test_event.json")) == []


def test_key_with_spaces_and_unicode_is_decoded() -> None:
    # Given a key URL-encoded as S3 sends it ('+' for spaces, UTF-8 escapes)
    [ref] = uploads_from_message(_event("s3_object_created_unicode.json"))
    # Then the key is the object's real key, and its version is kept
    assert ref.key == "incoming/acme/zomer 2026/Straßenfest été 1.jpg"
    assert ref.version_id == "3HL4kqtJlcpXroDTDmjVBH40Nrjfkd"
    assert ref.version == ref.version_id


def test_removal_events_are_ignored() -> None:
    assert uploads_from_message(_event("s3_object_removed.json")) == []


@pytest.mark.parametrize(
    "body",
    ["not json", "[]", '{"Records": "x"}', '{"Records": [{"eventName": "ObjectCreated:Put"}]}'],
)
def test_poison_messages_raise(body: str) -> None:
    # Given a body that is not an S3 notification / Then it fails loudly (→ DLQ)
    with pytest.raises(MalformedEvent):
        uploads_from_message(body)
