"""cost_per_1000: compute and request cost of 1,000 images against Amazon Rekognition.

List prices, eu-central-1 (Frankfurt), on-demand, without free tiers, as
published on the AWS pricing pages in November 2025 (Lambda and Rekognition
as stated in issue 8; DynamoDB after the 1 November 2024 on-demand price
reduction). Re-check them before quoting a figure to anyone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PRICES_AS_OF = "2025-11 (AWS list prices, eu-central-1, no free tier)"

# Lambda, arm64.
LAMBDA_GB_SECOND_USD = 0.0000133334
LAMBDA_REQUEST_USD = 0.20 / 1_000_000
# S3 Standard requests. HEAD is billed as a GET; DELETE is free.
S3_PUT_COPY_POST_LIST_USD = 0.0054 / 1000
S3_GET_AND_OTHER_USD = 0.00043 / 1000
# DynamoDB on-demand, Standard table class.
DYNAMODB_WRITE_UNIT_USD = 0.7625 / 1_000_000
DYNAMODB_READ_UNIT_USD = 0.1525 / 1_000_000
# SQS standard queue, per request (64 KB chunks; our messages are < 4 KB).
SQS_REQUEST_USD = 0.40 / 1_000_000
# Amazon Rekognition Image, first 1M images a month, per image per API call.
REKOGNITION_DETECT_FACES_USD = 0.001
REKOGNITION_SEARCH_FACES_BY_IMAGE_USD = 0.001

_S3_PUT_CLASS = frozenset({"PutObject", "CopyObject", "PostObject", "ListObjectsV2", "ListObjects"})
_S3_FREE = frozenset({"DeleteObject", "DeleteObjects"})
_DYNAMODB_READS = frozenset({"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"})


def ingest_memory_mb(template: Path) -> int:
    """The IngestFunction's MemorySize in the SAM template (Globals as fallback)."""
    from infra.template_source import load_template

    data = load_template(template)
    props = data["Resources"]["IngestFunction"]["Properties"]
    memory = props.get("MemorySize") or data["Globals"]["Function"]["MemorySize"]
    return int(memory)


def requests_cost(requests: dict[str, float], write_units: dict[str, float]) -> dict[str, float]:
    """USD per image for the AWS requests one ingest makes (as counted on the stack).

    DynamoDB reads count one request unit each (strongly consistent, items
    under 4 KB); writes count the measured 1 KB units. Stream reads by a
    Lambda trigger are free. S3's notification into SQS is one more SQS
    request per image, made by S3 and so not seen by the counter.
    """
    s3 = dynamodb = sqs = 0.0
    for key, per_image in requests.items():
        service, operation = key.split(":", 1)
        if service == "s3":
            if operation in _S3_PUT_CLASS:
                s3 += per_image * S3_PUT_COPY_POST_LIST_USD
            elif operation not in _S3_FREE:
                s3 += per_image * S3_GET_AND_OTHER_USD
        elif service == "dynamodb" and operation in _DYNAMODB_READS:
            dynamodb += per_image * DYNAMODB_READ_UNIT_USD
        elif service == "sqs" and operation != "GetQueueAttributes":
            # (GetQueueAttributes is the local runtime asking for queue depth;
            # Lambda's event source mapping does not.)
            sqs += per_image * SQS_REQUEST_USD
    dynamodb += sum(write_units.values()) * DYNAMODB_WRITE_UNIT_USD
    sqs += SQS_REQUEST_USD
    return {"s3": s3, "dynamodb": dynamodb, "sqs": sqs, "lambda_requests": LAMBDA_REQUEST_USD}


# The prices above as the report states them.
PRICES_USD = {
    "lambda_arm64_gb_second": LAMBDA_GB_SECOND_USD,
    "lambda_request": LAMBDA_REQUEST_USD,
    "s3_put_copy_post_list_request": S3_PUT_COPY_POST_LIST_USD,
    "s3_get_and_other_request": S3_GET_AND_OTHER_USD,
    "dynamodb_write_unit": DYNAMODB_WRITE_UNIT_USD,
    "dynamodb_read_unit": DYNAMODB_READ_UNIT_USD,
    "sqs_request": SQS_REQUEST_USD,
    "rekognition_detect_faces_image": REKOGNITION_DETECT_FACES_USD,
    "rekognition_search_faces_by_image": REKOGNITION_SEARCH_FACES_BY_IMAGE_USD,
}


def cost_per_1000(
    engine: dict[str, Any], pipeline: dict[str, Any], memory_mb: int
) -> dict[str, Any]:
    """Our cost per 1,000 images from measured durations, against Rekognition's."""
    gb = memory_mb / 1024

    def compute(seconds: float) -> float:
        return seconds * gb * LAMBDA_GB_SECOND_USD * 1000

    # Requests made by the pipeline's handlers, except the DAM's own upload.
    requests = {k: v for k, v in pipeline["requests_per_image"].items() if k != "s3:PutObject"}
    fixed = requests_cost(requests, pipeline.get("dynamodb_write_units", {}))
    fixed_per_1000 = {k: v * 1000 for k, v in fixed.items()}
    rest = sum(fixed_per_1000.values())
    faces = float(engine.get("faces_per_image", 1.0))
    rekognition = 1000 * (REKOGNITION_DETECT_FACES_USD + REKOGNITION_SEARCH_FACES_BY_IMAGE_USD)
    rekognition_per_face = 1000 * (
        REKOGNITION_DETECT_FACES_USD + faces * REKOGNITION_SEARCH_FACES_BY_IMAGE_USD
    )
    ours = {k: compute(engine[k]) + rest for k in ("value", "min", "max")}
    face_recognition_lambda = compute(engine["baseline"]) + rest
    cases = {
        "lambda_compute": _usd(
            compute(engine["value"]), compute(engine["min"]), compute(engine["max"])
        ),
        **{name: _usd(v) for name, v in fixed_per_1000.items()},
        "face_recognition_on_lambda": _usd(
            face_recognition_lambda,
            compute(engine["baseline_min"]) + rest,
            compute(engine["baseline_max"]) + rest,
        ),
        "rekognition_one_search_per_face": _usd(rekognition_per_face),
    }
    result: dict[str, Any] = {
        "unit": "USD/1000 images",
        "value": ours["value"],
        "min": ours["min"],
        "max": ours["max"],
        "baseline": rekognition,
        "speedup": rekognition / ours["value"],
        "baseline_is": "Rekognition DetectFaces + one SearchFacesByImage per image",
        "memory_mb": memory_mb,
        "seconds_per_image": engine["value"],
        "faces_per_image": faces,
        "prices_as_of": PRICES_AS_OF,
        "prices_usd": dict(PRICES_USD),
        "cases": cases,
        "note": (
            "Lambda seconds are engine_12mp's decode-to-encodings on this machine's core, "
            "not on a Graviton core; requests are those counted per image on the local stack"
        ),
        "target": "<= 1/20 of Rekognition",
    }
    result["target_met"] = result["value"] <= rekognition / 20
    return result


def _usd(value: float, low: float | None = None, high: float | None = None) -> dict[str, Any]:
    return {
        "unit": "USD/1000 images",
        "value": value,
        "min": value if low is None else low,
        "max": value if high is None else high,
    }
