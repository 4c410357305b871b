"""Where the local stack fills the emulator's gaps versus AWS: the one list.

Each gap below was observed against moto 5.2.5 (the integration tests in
``tests/integration/local/`` re-check them) and is filled as narrowly as
possible, from the template, so the same template means the same wiring
locally and in AWS. Each fill first probes the emulator and does nothing if
the gap is gone (a newer moto), so an upgrade cannot double-apply anything.

Filled here, after the stack is created (``apply``):

1. **moto delivers to Lambda itself.** On every SendMessage to a queue with
   an event source mapping (and on every write to a mapped DynamoDB or
   Kinesis stream) moto receives the messages and invokes the function in
   Docker, synchronously. Without Docker that fails; worse, the receive
   counts up ``ApproximateReceiveCount`` (an s3:TestEvent was at 3 before
   any consumer read it), so messages would reach the DLQ after fewer
   handler runs than the template's ``maxReceiveCount``. Filled by
   ``detach_emulator_pollers``: moto's in-process push hooks are cleared;
   the mappings stay listed and ``Enabled`` and ``LocalRuntime`` polls them
   instead. (moto runs in this process, so its backends are reachable.)
2. **S3 NotificationConfiguration** in the template is not applied by moto's
   CloudFormation (the bucket has no notification configuration). Filled by
   ``apply_bucket_notifications``: the template's configuration, converted
   to the S3 API shape with intrinsics resolved against the stack, is put on
   the bucket. As in AWS, that sends an ``s3:TestEvent`` to each queue.
3. **S3 VersioningConfiguration** is not applied (no versioning status).
   Filled by ``apply_bucket_versioning``.
4. **DynamoDB TimeToLiveSpecification** is not applied (status DISABLED).
   Filled by ``apply_time_to_live``, so a TTL reaper can read the attribute
   name from ``describe_time_to_live`` as it would in AWS.
5. **Resource types moto does not know** are skipped with only a warning
   (now: ``AWS::SQS::QueuePolicy``; later ``AWS::Scheduler::Schedule``,
   ``AWS::S3::BucketPolicy``). Recorded in ``GapReport.skipped_resources``
   (logical id -> type) for whoever emulates them (the clock, for
   schedules); policies have no local effect since moto does not enforce
   IAM or resource-policy conditions (prove those statically).
6. **DynamoDB stream records** from moto say ``awsRegion: us-east-1`` in
   every region and carry no ``eventSourceARN``. ``lambda_stream_record``
   fixes both for a runtime that delivers stream records to a function (the
   template maps no stream yet).

8. **S3 event records** lack ``versionId`` (even on a versioned bucket) and
   ``sequencer``, and quote ``/`` in keys. In AWS a versioned bucket's event
   names the version, which is what makes a decision keyed by object version
   possible. Filled by ``complete_s3_event_records``: moto's event builder is
   wrapped (moto runs in this process) to add both fields and keep ``/``.

Filled before deployment, in ``deploy.preflight`` (it must run before
anything is created, so it lives with the deploy):

7. **Rules** are ignored by moto (the template deploys to us-east-1) and
   **parameter constraints** are not checked (Stage "BAD!!" deploys).

Checked, no gap:

- Event source mappings: moto's CloudFormation creates them (BatchSize
  resolved from the parameter, FunctionResponseTypes kept), so the runtime
  reads them from the Lambda API; no fallback to the template is needed.
  ``missing_event_source_mappings`` turns a future regression into an error.
- Dead-letter queues: moto moves a message to the RedrivePolicy's DLQ on
  the receive that follows its ``maxReceiveCount``-th receive, as SQS does.

Known, not filled (do not rely on them locally):

- S3 event records have no ``userIdentity``, ``requestParameters`` or
  ``responseElements`` (nothing here reads them).
- Bucket ``BucketKeyEnabled``, ``PublicAccessBlockConfiguration`` and table
  ``PointInTimeRecoverySpecification`` are dropped; functions report
  ``TracingConfig`` PassThrough, ``Architectures`` x86_64 and no ``Layers``.
  The in-process runtime uses none of them.
- ``ListEventSourceMappings(FunctionName=...)`` matches the function name
  only (AWS also takes the ARN); the runtime lists all and filters itself.
- Outputs and ``Ref`` of a queue are ``https://sqs.<region>.amazonaws.com/..``
  URLs, as in AWS; boto3 with the emulator's endpoint accepts them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quitclaim.local.deploy import Deployment

log = logging.getLogger(__name__)


@dataclass
class GapReport:
    """What ``apply`` found and did."""

    filled: list[str] = field(default_factory=list)
    skipped_resources: dict[str, str] = field(default_factory=dict)


def apply(deployment: Deployment) -> GapReport:
    """Fill every post-deployment gap, in an order that matters.

    The pollers are detached before notifications are put: the s3:TestEvent
    that putting them sends must not be consumed by moto's push.
    """
    report = GapReport()
    detached = detach_emulator_pollers(deployment.account_id, deployment.region)
    if detached:
        report.filled.append(f"detached moto's own delivery from {detached} event source(s)")
    report.filled.extend(apply_bucket_notifications(deployment))
    report.filled.extend(apply_bucket_versioning(deployment))
    report.filled.extend(apply_time_to_live(deployment))
    if complete_s3_event_records():
        report.filled.append("S3 event records carry versionId and sequencer")
    report.skipped_resources = skipped_resources(deployment)
    for logical_id, kind in report.skipped_resources.items():
        log.info("emulator skipped %s (%s)", logical_id, kind)
    return report


def detach_emulator_pollers(account_id: str, region: str) -> int:
    """Stop moto invoking functions from SQS, DynamoDB and Kinesis itself (gap 1)."""
    from moto.dynamodb.models import dynamodb_backends
    from moto.kinesis.models import kinesis_backends
    from moto.sqs.models import sqs_backends

    sources: list[Any] = [
        *sqs_backends[account_id][region].queues.values(),
        *dynamodb_backends[account_id][region].tables.values(),
        *kinesis_backends[account_id][region].streams.values(),
    ]
    detached = 0
    for source in sources:
        hooks = getattr(source, "lambda_event_source_mappings", None)
        if hooks is None:
            raise RuntimeError(
                f"moto's {type(source).__name__} has no lambda_event_source_mappings: its "
                "internals changed, so the local stack cannot stop moto's own delivery"
            )
        detached += len(hooks)
        hooks.clear()
    return detached


def _notification_for_api(config: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's NotificationConfiguration in PutBucketNotificationConfiguration's shape."""
    kinds = {
        "QueueConfigurations": ("QueueConfigurations", "Queue", "QueueArn"),
        "TopicConfigurations": ("TopicConfigurations", "Topic", "TopicArn"),
        "LambdaConfigurations": ("LambdaFunctionConfigurations", "Function", "LambdaFunctionArn"),
    }
    result: dict[str, Any] = {}
    for cfn_name, (api_name, target, api_target) in kinds.items():
        for entry in config.get(cfn_name, []):
            item: dict[str, Any] = {api_target: entry[target], "Events": [entry["Event"]]}
            rules = ((entry.get("Filter") or {}).get("S3Key") or {}).get("Rules")
            if rules:
                item["Filter"] = {"Key": {"FilterRules": rules}}
            result.setdefault(api_name, []).append(item)
    if (config.get("EventBridgeConfiguration") or {}).get("EventBridgeEnabled"):
        result["EventBridgeConfiguration"] = {}
    return result


def _buckets(deployment: Deployment) -> list[tuple[str, dict[str, Any]]]:
    return [
        (logical_id, resource.get("Properties") or {})
        for logical_id, resource in deployment.translated["Resources"].items()
        if resource.get("Type") == "AWS::S3::Bucket" and logical_id in deployment.resources
    ]


def apply_bucket_notifications(deployment: Deployment) -> list[str]:
    """Put each bucket's template NotificationConfiguration (gap 2)."""
    s3 = deployment.client("s3")
    done = []
    for logical_id, properties in _buckets(deployment):
        if "NotificationConfiguration" not in properties:
            continue
        bucket = deployment.resources[logical_id]
        current = s3.get_bucket_notification_configuration(Bucket=bucket)
        current.pop("ResponseMetadata", None)
        if current:
            continue  # the emulator applied it itself
        wanted = _notification_for_api(deployment.resolve(properties["NotificationConfiguration"]))
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=wanted)
        done.append(f"notification configuration of {logical_id}")
    return done


def apply_bucket_versioning(deployment: Deployment) -> list[str]:
    """Put each bucket's template VersioningConfiguration (gap 3)."""
    s3 = deployment.client("s3")
    done = []
    for logical_id, properties in _buckets(deployment):
        wanted = deployment.resolve((properties.get("VersioningConfiguration") or {}).get("Status"))
        if not wanted:
            continue
        bucket = deployment.resources[logical_id]
        if s3.get_bucket_versioning(Bucket=bucket).get("Status") == wanted:
            continue
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": wanted})
        done.append(f"versioning {wanted} on {logical_id}")
    return done


def apply_time_to_live(deployment: Deployment) -> list[str]:
    """Enable each table's template TimeToLiveSpecification (gap 4)."""
    dynamodb = deployment.client("dynamodb")
    done = []
    for logical_id, resource in deployment.translated["Resources"].items():
        if resource.get("Type") != "AWS::DynamoDB::Table" or logical_id not in deployment.resources:
            continue
        spec = deployment.resolve((resource.get("Properties") or {}).get("TimeToLiveSpecification"))
        if not spec or not spec.get("Enabled"):
            continue
        table = deployment.resources[logical_id]
        status = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        if status.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
            continue
        dynamodb.update_time_to_live(
            TableName=table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": spec["AttributeName"]},
        )
        done.append(f"time to live on {logical_id}.{spec['AttributeName']}")
    return done


def skipped_resources(deployment: Deployment) -> dict[str, str]:
    """Resources of the translated template the emulator did not create (gap 5)."""
    return {
        logical_id: resource.get("Type", "?")
        for logical_id, resource in deployment.translated["Resources"].items()
        if logical_id not in deployment.resource_types
    }


def missing_event_source_mappings(report: GapReport) -> list[str]:
    """Mappings the emulator skipped: the runtime would silently never deliver them."""
    return [
        logical_id
        for logical_id, kind in report.skipped_resources.items()
        if kind == "AWS::Lambda::EventSourceMapping"
    ]


def lambda_stream_record(
    record: dict[str, Any], region: str, event_source_arn: str
) -> dict[str, Any]:
    """A moto stream record as Lambda delivers it: the stack's region and the stream ARN (gap 6)."""
    return {**record, "awsRegion": region, "eventSourceARN": event_source_arn}


def complete_s3_event_records() -> bool:
    """Make moto's S3 event records name the object version, as AWS's do.

    Returns True when the wrapper was installed now (False: already there, or
    moto's records already carry ``versionId``).
    """
    from urllib.parse import quote_plus

    from moto.s3 import notifications

    original = notifications._get_s3_event
    if getattr(original, "_quitclaim_completed", False):
        return False

    def completed(event_name: str, bucket: Any, key: Any, notification_id: str) -> Any:
        event = original(event_name, bucket, key, notification_id)
        for record in event.get("Records", []):
            obj = record["s3"]["object"]
            obj["key"] = quote_plus(key.name, safe="/")
            version = getattr(key, "version_id", None)
            if version and version != "null" and "versionId" not in obj:
                obj["versionId"] = version
            obj.setdefault("sequencer", f"{time.time_ns():016X}")
        return event

    completed._quitclaim_completed = True  # type: ignore[attr-defined]
    notifications._get_s3_event = completed
    return True
