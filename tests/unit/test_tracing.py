"""X-Ray traces carry no S3 object keys (upload keys carry people's file names).

The X-Ray SDK's botocore patch copies allow-listed request parameters into
each AWS call's subsegment (for S3: ``Key``, ``Prefix``, ``CopySource``); its
httplib patch records every URL, and an S3 URL's path is the key. The
package's tracer must do neither.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_xray_sdk.ext import boto_utils

from quitclaim import observability

KEY = "incoming/acme/Jane Doe at the Christmas party.jpg"


class _Subsegment:
    """What the processor writes to (the SDK's Subsegment API, recorded)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.written: dict[str, Any] = {}

    def put_http_meta(self, key: str, value: Any) -> None:
        self.written[f"http.{key}"] = value

    def set_aws(self, meta: dict[str, Any]) -> None:
        self.written["aws"] = meta

    def add_exception(self, *args: Any, **kwargs: Any) -> None:
        self.written["exception"] = repr(args)


class _Client:
    class meta:
        region_name = "eu-central-1"


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("PutObject", {"Bucket": "uploads", "Key": KEY, "Body": b""}),
        ("GetObject", {"Bucket": "uploads", "Key": KEY, "VersionId": "v1"}),
        ("DeleteObject", {"Bucket": "uploads", "Key": KEY}),
        ("CopyObject", {"Bucket": "library", "Key": KEY, "CopySource": f"uploads/{KEY}"}),
        ("ListObjectsV2", {"Bucket": "library", "Prefix": KEY.rsplit(" ", 1)[0]}),
        ("PutObjectTagging", {"Bucket": "library", "Key": KEY, "Tagging": {}}),
    ],
)
def test_an_s3_call_subsegment_names_no_object_key(operation: str, params: dict[str, Any]) -> None:
    # Given the package's observability is loaded (as in every function)
    assert observability.tracer is not None
    # When the X-Ray botocore patch describes an S3 call
    segment = _Subsegment("s3")
    response = {"ResponseMetadata": {"RequestId": "r1", "HTTPStatusCode": 200}}
    boto_utils.aws_meta_processor(
        None, _Client(), (operation, params), {}, response, None, segment, None
    )
    # Then the operation is there, and no key nor any part of the file name
    written = json.dumps(segment.written, default=str)
    assert segment.written["aws"]["operation"] == operation
    assert "Jane" not in written and "incoming/acme" not in written


def test_the_tracer_patches_no_http_library() -> None:
    # An HTTP subsegment records the URL: an S3 URL's path is the object key.
    modules = observability.tracer._config["patch_modules"]
    assert modules is not None, "None patches everything, httplib included"
    assert set(modules) == {"botocore"}
