"""Where the local stack fills the emulator's gaps versus AWS: the one list.

Each gap below was observed against moto 5.2.5 (the integration tests in
``tests/integration/local/`` re-check them) and is filled as narrowly as
possible, from the template, so the same template means the same wiring
locally and in AWS. Each fill first probes the emulator and does nothing if
the gap is gone (a newer moto), so an upgrade cannot double-apply anything.

Filled after the stack is created (``apply``), here or in the module each
gap names: ``resource_fills`` (9-12, 23: resources moto's CloudFormation
skips), ``ses_gaps`` (14), ``ttl_reaper`` (13), ``signin`` (21-22),
``marketplace`` (19), ``keepalive`` (28), ``moto_fixes`` and
``moto_transactions`` (17, 18, 20, 24-27, 29):

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
   (now: ``AWS::S3::BucketPolicy``, ``AWS::SQS::QueuePolicy``,
   ``AWS::SecretsManager::Secret``, ``AWS::Scheduler::ScheduleGroup``,
   ``AWS::Scheduler::Schedule``, ``AWS::CloudTrail::Trail``,
   ``AWS::CloudWatch::Alarm``, ``AWS::SNS::Subscription``). Recorded in
   ``GapReport.skipped_resources`` (logical id -> type); 9-12 below create
   the ones that matter. Policies have no local effect since moto does not
   enforce IAM or resource-policy conditions (``tests/unit/infra`` proves
   them statically, with a policy evaluator); the trail, the alarms and their
   e-mail subscription watch AWS and have nothing to do locally.
6. **DynamoDB stream records** from moto say ``awsRegion: us-east-1`` in
   every region and carry no ``eventSourceARN``. ``lambda_stream_record``
   fixes both; ``lambda_events.lambda_dynamodb_record`` uses it for every stream
   record the runtime delivers.

8. **S3 event records** lack ``versionId`` (even on a versioned bucket) and
   ``sequencer``, and quote ``/`` in keys. In AWS a versioned bucket's event
   names the version, which is what makes a decision keyed by object version
   possible. Filled by ``complete_s3_event_records``: moto's event builder is
   wrapped (moto runs in this process) to add both fields and keep ``/``.

9. **AWS::SecretsManager::Secret** is skipped, so ``Ref`` of it has no value.
   Filled by ``create_secrets``: the secret is created through the Secrets
   Manager API (named ``<stack>-<logical id>``), its value generated per
   ``GenerateSecretString`` with ``GetRandomPassword`` (length, exclusions,
   ``SecretStringTemplate``/``GenerateStringKey``), or ``SecretString``;
   its ARN becomes the stack's physical id for it.
10. **AWS::Scheduler::ScheduleGroup** is skipped, and CreateSchedule into a
   group that does not exist is a 500 (a KeyError inside moto; AWS answers
   ResourceNotFoundException). Filled by ``create_schedule_groups``.
11. **AWS::Scheduler::Schedule** is skipped. Filled by
   ``create_template_schedules``: each is created through the Scheduler API
   (named as its ``Name`` or ``<stack>-<logical id>``, in its group or
   ``default``), so it is listed, can be disabled or deleted like any other,
   and the local scheduler (``clock.LocalScheduler``) fires it. moto's
   schedules never fire by themselves (nor do ones created at run time).
12. **Function environment variables that refer to a skipped resource** are
   dropped by moto (``QC_LINK_SECRET_ARN: !Ref LinkSigningSecret`` was
   missing). Filled by ``apply_function_environments`` after 9-11: every
   function's ``Environment`` is resolved against the completed stack and
   put with UpdateFunctionConfiguration where it differs.
13. **DynamoDB TTL never deletes** (moto only stores the setting). Filled by
   ``reap_expired_items``, which the clock runs at each step of a tick:
   items whose TTL attribute is a number of epoch seconds at or before now
   (and not more than five years before, which AWS also skips) are deleted
   with a conditional DeleteItem, and the REMOVE stream record of exactly
   that deletion gets the ``userIdentity`` AWS gives TTL deletions
   (``{"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"}``; moto's
   records never carry one). A user's DeleteItem gets none, as in AWS.
   Done in-process on moto's stream shard, right after the delete.
14. **SES**: moto refuses to send from an unverified address, as the SES
   sandbox does; in AWS the operator verifies the ``MailFrom`` identity once
   per account, outside the template. ``verify_mail_sender`` verifies the
   stack's ``MailFrom`` parameter. And moto keeps only one body of an
   e-mail (the HTML one when both are sent); ``capture_email_bodies`` wraps
   moto's SendEmail handlers (v1 and v2, in-process) to keep text and HTML,
   which ``emulator.sent_emails`` returns. moto does not check recipients
   (the sandbox would).
15. **AWS::KMS::Key** ``KeyPolicy`` given as a JSON object (CloudFormation's
   usual form) is stored unserialised, so every KMS call that checks the key
   policy (``DescribeKey``, hence ``GetAtt Key.Arn`` here) answers a 500.
   Filled by ``serialise_key_policies`` (first of all): the stored policy is
   put back as JSON text with ``PutKeyPolicy``. moto checks key policies for
   explicit denies only; it does not evaluate them (prove them statically).
19. **AWS Marketplace metering** is served (``BatchMeterUsage`` over the
   server), but moto keeps no accepted record (nothing to read back, never a
   ``DuplicateRecord``), has no way to subscribe a customer (every record is
   ``CustomerNotSubscribed``) and accepts an identical repeat as a new record
   (AWS answers it with the record it holds). Filled in-process when the
   emulator starts, in ``devstack/marketplace.py``: accepted records are kept
   and an identical repeat is answered with the one held; ``subscribe`` and
   ``metered_records`` are the buyer's subscription and the read-back;
   ``throttle_next`` simulates throttling for tests. Observed with moto 5.2.6.
20. **SQS SendMessage costs O(queue length)** in moto: it reads one queue
   attribute through ``Queue.attributes``, which computes them all, among
   them three message counts that walk the queue. An undrained outbox (a
   recheck of 1,000 assets) slowed with every event. Filled when the
   emulator starts, in ``moto_fixes._lazy_queue_attributes``: the same keys and
   values, each computed when read. Observed with moto 5.2.6.
21. **AWS::Cognito::*** (user pool, app client, domain, groups) is skipped,
   and (22) moto has no hosted sign-in (``/oauth2/authorize``,
   ``/oauth2/token``). Both filled in ``devstack.signin``: the pool
   from the template's resources, and a stand-in for the hosted sign-in.
23. **AWS::SES::ConfigurationSet** and **ConfigurationSetEventDestination**
   are skipped, so ``Ref`` of the set (every function's
   ``QC_MAIL_CONFIGURATION_SET``) has no value. Filled by
   ``create_mail_configuration_sets``: the set and its SNS event destination
   are created through the SES API, under the template's names. moto sends
   through the set but publishes no bounce or complaint events (and skips the
   SNS subscription, gap 5): locally, mail feedback is tested by calling the
   reminders handler with SNS-shaped records (``tests/integration/local/``).
24. **CopyObject ignores ``If-None-Match: *``** in moto (S3 copies only if
   the destination key has no current object, else 412). Filled when the
   emulator starts, in ``moto_fixes._conditional_copies``: the check and the
   copy under one lock. ``S3ObjectStore.copy`` relies on it to skip the HEAD
   of an empty destination. Observed with moto 5.2.6.
25. **ListObjectVersions costs O(bucket) per page** in moto: every page
   deep-copies every version in the bucket (bytes included) and sorts them
   all before walking to its marker. Listing an audit chain of 20,000
   records (20 pages) made 400,000 deep copies. Filled when the emulator
   starts, in ``moto_fixes._paged_version_listings``: moto's own listing runs
   on a view of the keys the page can reach (under the prefix, from the
   marker, about ``max_keys`` versions): the same answers. Observed with
   moto 5.2.6.
26. **PutItem costs O(attributes²)** in moto: a new item's attributes go
   into a dict that re-sums the size of every attribute already there
   (nested maps to the leaves) on each insert, to enforce the 400 KB limit;
   a third of a PutItem's time for an asset record (8 ms of CPU for 26
   attributes in a microbenchmark, 1 ms summed once). Filled when the
   emulator starts, in ``moto_fixes._items_sized_once``: the same sum, once
   per item, the same error for the same items. Observed with moto 5.2.6.
27. **DynamoDB responses cost a shape walk per attribute value** in moto: its
   JSON serializer writes every value of every item through the service
   model, looking each of the ten members up under several aliases; a
   BatchGetItem of 100 asset records cost ~0.4 s of CPU, a consent Query
   ~14 ms. moto already holds the values in their wire form. Filled when the
   emulator starts, in ``moto_fixes._attribute_values_as_they_are``: strings,
   numbers, their sets, booleans, nulls, maps and lists are written as held
   (byte-for-byte the same JSON, a property test in
   ``tests/integration/local/test_local_stack_gaps.py``); binary values and
   anything unexpected take moto's path. Observed with moto 5.2.6.
28. **Every response closes its connection** in moto's server (werkzeug's
   dev server sends ``Connection: close``): each boto3 call opened a new
   TCP connection and server thread, about a third of its CPU. Filled when
   the emulator starts, in ``devstack.keepalive``: HTTP/1.1 keep-alive with
   every response framed, each request body drained before the next
   request, and TCP_NODELAY (headers and body are separate sends; Nagle's
   algorithm with delayed ACKs held bodies ~40 ms). Anything it cannot
   frame or drain closes the connection. Observed with moto 5.2.6 and
   werkzeug 3.1.
29. **PutObject's ``If-None-Match: *`` is not atomic** in moto: it looks for
   the key, then writes it, with nothing held in between, so two create-only
   puts racing for one key can both write (two versions where S3 refuses the
   second with 412). Seen when 50 audit appenders rolled one record forward
   at once (``python -m bench --only audit_append_concurrency``, the one-head
   design with 10 ms of latency). Filled when the emulator starts, in
   ``moto_fixes._atomic_conditional_puts``: the look and the write under the
   conditional copies' lock. Observed with moto 5.2.6.

Filled before deployment, in ``deploy`` (it must run before anything is
created, so it lives with the deploy):

7. **Rules** are ignored by moto (the template deploys to us-east-1) and
   **parameter constraints** are not checked (Stage "BAD!!" deploys).
16. **AWS::Include** (``Fn::Transform``) is processed neither by moto's
   CloudFormation nor by aws-sam-translator. ``infra.template_source.inline_includes``
   inlines each local snippet (``policies/*.json``) where CloudFormation
   would, before the Serverless transform.
17. **Concurrent DynamoDB writes** are not atomic against each other in
   moto (each request on its own thread; a condition checked, then the
   write applied): two conditional writes racing for one item can both
   succeed. ``moto_fixes._serialise_dynamodb_writes`` takes one lock around
   moto's write operations when the emulator starts, which gives the item-
   level atomicity and transaction isolation DynamoDB guarantees.
18. **TransactWriteItems costs O(table)** in moto: it deep-copies every table
   a transaction touches, whole, to roll back. A load slows with every item
   written (the assets table, the usage counters, the audit heads).
   ``moto_transactions`` checks every condition first
   and writes only when all hold, as DynamoDB does; per-item copies restore
   a write that itself fails.

Checked, no gap:

- Event source mappings: moto's CloudFormation creates them, SQS and
  DynamoDB stream ones (BatchSize resolved from the parameter,
  FunctionResponseTypes, StartingPosition, FilterCriteria,
  MaximumRetryAttempts, BisectBatchOnFunctionError and the OnFailure
  destination kept), so the runtime reads them from the Lambda API; no
  fallback to the template is needed. ``missing_event_source_mappings``
  turns a future regression into an error.
- Table StreamSpecification and GlobalSecondaryIndexes are created.
- Dead-letter queues: moto moves a message to the RedrivePolicy's DLQ on
  the receive that follows its ``maxReceiveCount``-th receive, as SQS does.

Known, not filled (do not rely on them locally):

- Scheduler: UpdateSchedule drops ``State`` when it is not given (it reads
  back absent; the local scheduler treats absent as ENABLED, AWS's default)
  and ignores ``ActionAfterCompletion`` (the value from CreateSchedule
  stays; AWS would reset it). No expression is validated by moto; the local
  scheduler reports one it cannot parse in the tick report. CreateSchedule
  on an existing name answers ConflictException and DeleteSchedule of a
  missing one ResourceNotFoundException, as AWS does.
- Stream records' ``ApproximateCreationDateTime`` is the emulator's wall
  clock at the write, not the stack's clock. Shard iterators never expire.

- S3 event records have no ``userIdentity``, ``requestParameters`` or
  ``responseElements`` (nothing here reads them).
- Bucket ``BucketKeyEnabled``, ``PublicAccessBlockConfiguration``,
  ``OwnershipControls``, ``LifecycleConfiguration``,
  ``LoggingConfiguration`` and ``ObjectLockConfiguration``, table
  ``PointInTimeRecoverySpecification`` and ``SSESpecification``, and function
  ``DeadLetterConfig`` are dropped; functions report ``TracingConfig``
  PassThrough, ``Architectures`` x86_64 and no ``Layers``. The in-process
  runtime uses none of them; ``tests/unit/infra`` checks them in the
  template. moto applies a bucket's default SSE-KMS (the key ARN) to puts and
  copies without checking the key, so no fill is needed for encryption.
  The audit bucket is therefore versioned but not locked locally: the audit
  hash chains' records can be overwritten and deleted, which the e2e tests
  use to tamper with them (``quitclaim audit verify`` must catch it). moto's
  S3 API itself honours a lock given to ``CreateBucket`` /
  ``PutObjectLockConfiguration`` (a locked version cannot be deleted, a
  delete marker can be added); ``tests/e2e/test_audit_chain.py`` checks that
  on a bucket it locks itself.
- ``ListEventSourceMappings(FunctionName=...)`` matches the function name
  only (AWS also takes the ARN); the runtime lists all and filters itself.
- Outputs and ``Ref`` of a queue are ``https://sqs.<region>.amazonaws.com/..``
  URLs, as in AWS; boto3 with the emulator's endpoint accepts them.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from devstack import signin
from devstack.resource_fills import (
    apply_function_environments,
    create_mail_configuration_sets,
    create_schedule_groups,
    create_secrets,
    create_template_schedules,
)
from devstack.ses_gaps import capture_email_bodies, verify_mail_sender

if TYPE_CHECKING:
    from devstack.deploy import Deployment

log = logging.getLogger(__name__)


@dataclass
class GapReport:
    """What ``apply`` found and did."""

    filled: list[str] = field(default_factory=list)
    skipped_resources: dict[str, str] = field(default_factory=dict)
    # What the fills created outside CloudFormation: (kind, id), for ``release``.
    created: list[tuple[str, str]] = field(default_factory=list)


def apply(deployment: Deployment) -> GapReport:
    """Fill every post-deployment gap, in an order that matters.

    The pollers are detached before notifications are put: the s3:TestEvent
    that putting them sends must not be consumed by moto's push.
    """
    report = GapReport()
    # First: until the key policies are JSON text, even GetAtt Key.Arn fails.
    report.filled.extend(serialise_key_policies(deployment))
    detached = detach_emulator_pollers(deployment.account_id, deployment.region)
    if detached:
        report.filled.append(f"detached moto's own delivery from {detached} event source(s)")
    report.filled.extend(apply_bucket_notifications(deployment))
    report.filled.extend(apply_bucket_versioning(deployment))
    report.filled.extend(apply_time_to_live(deployment))
    if complete_s3_event_records():
        report.filled.append("S3 event records carry versionId and sequencer")
    # 9-12 in order: the environments refer to the secret; schedules to groups.
    report.filled.extend(create_secrets(deployment, report))
    report.filled.extend(create_schedule_groups(deployment, report))
    report.filled.extend(create_template_schedules(deployment, report))
    # 23: the SES configuration set, before the environments refer to it.
    report.filled.extend(create_mail_configuration_sets(deployment, report))
    # 20 (devstack.signin): the user pool, before the environments refer to it.
    report.filled.extend(signin.create_user_pools(deployment, report))
    report.filled.extend(apply_function_environments(deployment))
    report.filled.extend(verify_mail_sender(deployment))
    if capture_email_bodies():
        report.filled.append("SES keeps both bodies of an e-mail")
    report.skipped_resources = skipped_resources(deployment)
    for logical_id, kind in report.skipped_resources.items():
        log.info("emulator skipped %s (%s)", logical_id, kind)
    return report


def serialise_key_policies(deployment: Deployment) -> list[str]:
    """Put each stack key's policy back as JSON text (gap 15)."""
    from moto.kms.models import kms_backends

    backend = kms_backends[deployment.account_id][deployment.region]
    done: list[str] = []
    for logical_id, kind in deployment.resource_types.items():
        if kind != "AWS::KMS::Key" or logical_id not in deployment.resources:
            continue
        key = backend.keys.get(deployment.resources[logical_id])
        if key is None or isinstance(key.policy, str):
            continue  # gone, or already text (a moto that serialises it)
        deployment.client("kms").put_key_policy(
            KeyId=key.id, PolicyName="default", Policy=json.dumps(key.policy)
        )
        done.append(f"key policy of {logical_id} as JSON text")
    return done


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
