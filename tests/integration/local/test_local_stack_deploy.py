"""The template deploys into the emulator as it would into AWS, and refuses what AWS refuses."""

from __future__ import annotations

import json

import pytest

from devstack.deploy import (
    DeployError,
    ParameterError,
    RuleViolation,
    deploy,
    preflight,
)
from devstack.emulator import ACCOUNT_ID, Emulator, EmulatorError
from devstack.stack import LocalStack
from infra.template_source import default_template_path, load_template
from tests.integration.local.conftest import INGEST, Recorder, fresh_stack, send

pytestmark = pytest.mark.integration


def test_template_deploys_buckets_with_the_templates_names_and_settings(
    stack: LocalStack,
) -> None:
    # Given a stack deployed with Stage=<tag>
    stage = stack.parameters["Stage"]
    s3 = stack.client("s3")
    sqs = stack.client("sqs")
    ingest_arn = sqs.get_queue_attributes(
        QueueUrl=stack.outputs["IngestQueueUrl"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    # Then the three buckets carry the template's names, encryption and versioning
    for role in ("uploads", "library", "quarantine"):
        name = f"quitclaim-{stage}-{role}-{ACCOUNT_ID}"
        assert stack.outputs[f"{role.capitalize()}BucketName"] == name
        s3.head_bucket(Bucket=name)
        assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
        [rule] = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
        assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    # And only the uploads bucket notifies the ingest queue, for incoming/ only
    notification = s3.get_bucket_notification_configuration(
        Bucket=stack.outputs["UploadsBucketName"]
    )
    [queue_config] = notification["QueueConfigurations"]
    assert queue_config["QueueArn"] == ingest_arn
    assert queue_config["Events"] == ["s3:ObjectCreated:*"]
    assert queue_config["Filter"]["Key"]["FilterRules"] == [
        {"Name": "prefix", "Value": "incoming/"}
    ]
    library = s3.get_bucket_notification_configuration(Bucket=stack.outputs["LibraryBucketName"])
    assert "QueueConfigurations" not in library


def test_template_deploys_the_queues_with_redrive_to_the_dlq(stack: LocalStack) -> None:
    # Given the deployed stack
    sqs = stack.client("sqs")
    # When the queues' attributes are read through the outputs' URLs
    ingest = sqs.get_queue_attributes(
        QueueUrl=stack.outputs["IngestQueueUrl"], AttributeNames=["All"]
    )["Attributes"]
    dlq = sqs.get_queue_attributes(
        QueueUrl=stack.outputs["IngestDeadLetterQueueUrl"], AttributeNames=["All"]
    )["Attributes"]
    # Then they have the template's settings and the redrive after 5 receives
    assert ingest["VisibilityTimeout"] == "360"
    assert ingest["MessageRetentionPeriod"] == dlq["MessageRetentionPeriod"] == "1209600"
    assert ingest["SqsManagedSseEnabled"] == dlq["SqsManagedSseEnabled"] == "true"
    assert json.loads(ingest["RedrivePolicy"]) == {
        "deadLetterTargetArn": dlq["QueueArn"],
        "maxReceiveCount": 5,
    }


def test_template_deploys_the_tables_with_keys_stream_and_ttl(stack: LocalStack) -> None:
    # Given the deployed stack
    dynamodb = stack.client("dynamodb")
    keys = {
        "TenantsTable": [("tenant", "HASH")],
        "SubjectsTable": [("tenant", "HASH"), ("subject_id", "RANGE")],
        "ConsentsTable": [("pk", "HASH"), ("sk", "RANGE")],
        "AssetsTable": [("pk", "HASH")],
        "AppearancesTable": [("pk", "HASH"), ("sk", "RANGE")],
        "AdmissionTable": [("tenant", "HASH"), ("window", "RANGE")],
    }
    for logical_id, schema in keys.items():
        # When each table is described by its physical name
        table = dynamodb.describe_table(TableName=stack.resources[logical_id])["Table"]
        # Then its key schema and billing mode are the template's
        assert [(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]] == schema
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    # And the consents table streams both images and expires items by `ttl`
    consents = stack.resources["ConsentsTable"]
    table = dynamodb.describe_table(TableName=consents)["Table"]
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    ttl = dynamodb.describe_time_to_live(TableName=consents)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "ttl")


def test_the_function_and_its_queue_mapping_are_deployed(stack: LocalStack) -> None:
    # Given the deployed stack
    lam = stack.client("lambda")
    function = lam.get_function_configuration(FunctionName=stack.resources[INGEST])
    # Then the function has the template's handler, memory and timeout
    assert (function["Handler"], function["MemorySize"], function["Timeout"]) == (
        "app.handler",
        2048,
        60,
    )
    # And its environment is the Globals' QC_* values, resolved, as client_env has them,
    # plus its own: the admission table, the bulk lane and the fair share
    variables = function["Environment"]["Variables"]
    client_env = stack.client_env()
    qc = {k: v for k, v in client_env.items() if k.startswith("QC_")}
    # (but the sign-in domain: a local client opens the stand-in, the deployed
    # function keeps the template's AWS domain; docs/sign-in.md)
    assert stack.signin is not None
    assert qc.pop("QC_USER_POOL_DOMAIN_URL") == stack.signin.url
    assert variables["QC_USER_POOL_DOMAIN_URL"].endswith(".amazoncognito.com")
    own = {
        k: v
        for k, v in variables.items()
        if k.startswith("QC_") and k not in qc and k != "QC_USER_POOL_DOMAIN_URL"
    }
    assert qc and qc == {k: v for k, v in variables.items() if k in qc}
    assert qc["QC_ASSETS_TABLE"] == stack.resources["AssetsTable"]
    assert own == {
        "QC_ADMISSION_TABLE": stack.resources["AdmissionTable"],
        "QC_BULK_QUEUE_URL": stack.outputs["BulkQueueUrl"],
        "QC_ADMISSION_SHARE": "100",
        "QC_ADMISSION_WINDOW_S": "60",
    }
    assert client_env["AWS_ENDPOINT_URL"] == stack.endpoint_url
    # And two SQS mappings, main and bulk lane, with the template's batch size,
    # partial failures and each its own ceiling (moto filters by function name only)
    mappings = lam.list_event_source_mappings(FunctionName=function["FunctionName"])[
        "EventSourceMappings"
    ]
    by_queue = {m["EventSourceArn"].rsplit(":", 1)[1]: m for m in mappings}
    assert set(by_queue) == {
        stack.outputs["IngestQueueUrl"].rsplit("/", 1)[1],
        stack.outputs["BulkQueueUrl"].rsplit("/", 1)[1],
    }
    for mapping in mappings:
        assert mapping["BatchSize"] == 5
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mapping["State"] == "Enabled"
    ceilings = {
        name.split("-")[-2]: m["ScalingConfig"]["MaximumConcurrency"]
        for name, m in by_queue.items()
    }
    assert ceilings == {"IngestQueue": 10, "BulkQueue": 2}
    runtime_mappings = [m for m in stack.runtime.mappings if m.function == INGEST]
    assert sorted(m.maximum_concurrency or 0 for m in runtime_mappings) == [2, 10]
    assert all(m.batch_size == 5 and m.max_receive_count == 5 for m in runtime_mappings)
    # And the bulk lane dead-letters into its own queue after 5 receives
    sqs = stack.client("sqs")
    bulk = sqs.get_queue_attributes(QueueUrl=stack.outputs["BulkQueueUrl"], AttributeNames=["All"])[
        "Attributes"
    ]
    dlq = sqs.get_queue_attributes(
        QueueUrl=stack.outputs["BulkDeadLetterQueueUrl"], AttributeNames=["QueueArn"]
    )["Attributes"]
    assert bulk["VisibilityTimeout"] == "360"
    assert json.loads(bulk["RedrivePolicy"]) == {
        "deadLetterTargetArn": dlq["QueueArn"],
        "maxReceiveCount": 5,
    }


def test_parameters_override_the_defaults() -> None:
    # Given a stack deployed with IngestBatchSize=2
    stack = fresh_stack(parameters={"Stage": "smallbatch", "IngestBatchSize": 2})
    try:
        recorder = Recorder()
        stack.runtime.override_handler(INGEST, recorder)
        stack.drain(timeout_s=10)  # the s3:TestEvent
        recorder.calls.clear()
        # When three messages are queued and drained
        send(stack, "a", "b", "c")
        stack.drain(timeout_s=10)
        # Then they arrive in batches of at most two, under the Stage's bucket names
        assert sorted(len(call.event["Records"]) for call in recorder.calls) == [1, 2]
        assert stack.outputs["UploadsBucketName"] == f"quitclaim-smallbatch-uploads-{ACCOUNT_ID}"
    finally:
        stack.stop()


def test_deploying_to_a_non_eu_region_fails_on_the_rules_before_anything_starts() -> None:
    # Given the template and region us-east-1
    stack = LocalStack(region="us-east-1", stack_name="qc-us")
    # When the stack is started
    with pytest.raises(RuleViolation) as caught:
        stack.start()
    # Then the EuRegionOnly rule refuses it with the template's description
    assert caught.value.rule == "EuRegionOnly"
    assert "deploys only to EU regions" in str(caught.value)
    assert "us-east-1" in str(caught.value)
    # And no emulator was started for it
    with pytest.raises(EmulatorError):
        _ = stack.endpoint_url


def test_deploy_into_a_running_emulator_refuses_us_east_1_and_creates_nothing() -> None:
    # Given a running emulator
    with Emulator() as emulator:
        # When the template is deployed to us-east-1 directly
        with pytest.raises(RuleViolation):
            deploy(emulator, default_template_path(), stack_name="qc-direct", region="us-east-1")
        # Then no stack exists there
        summaries = emulator.client("cloudformation", "us-east-1").list_stacks()
        assert summaries["StackSummaries"] == []


def test_the_rules_accept_every_other_eu_region() -> None:
    # Given the template
    template = load_template(default_template_path())
    # When the preflight runs for EU regions, Then it passes (the rule is not always false)
    for region in ("eu-central-1", "eu-west-1", "eu-north-1", "eu-south-2"):
        assert preflight(template, region, "qc")["Stage"] == "prod"
    # And it fails for regions outside the EU
    for region in ("us-east-1", "ap-southeast-1", "me-central-1"):
        with pytest.raises(RuleViolation):
            preflight(template, region, "qc")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"Stage": "BAD!!"}, "must match pattern"),
        ({"IngestBatchSize": 99}, "not greater than 10"),
        ({"IngestBatchSize": 0}, "not less than 1"),
        ({"IngestBatchSize": "five"}, "must be a number"),
        ({"Nope": "x"}, "do not exist in the template"),
    ],
)
def test_parameters_breaking_their_constraints_are_refused(
    overrides: dict[str, object], message: str
) -> None:
    # Given the template (moto itself would accept all of these)
    template = load_template(default_template_path())
    # When the parameters are checked, Then CloudFormation's refusal is raised
    with pytest.raises(ParameterError, match=message):
        preflight(template, "eu-central-1", "qc", overrides)


def test_a_stack_name_in_use_is_refused(stack: LocalStack) -> None:
    # Given a running stack
    # When another stack with the same name starts in the same process
    twin = LocalStack(stack_name=stack.stack_name, parameters={"Stage": "twin"})
    with pytest.raises(DeployError, match="already exists"):
        twin.start()
    # Then the first stack still works
    assert stack.client("s3").head_bucket(Bucket=stack.outputs["UploadsBucketName"])


def test_two_stacks_share_the_emulator_without_seeing_each_other(stack: LocalStack) -> None:
    # Given a second stack in the same process
    other = fresh_stack()
    try:
        assert other.endpoint_url == stack.endpoint_url
        # Then each runtime maps only its own queue and function
        assert [m.queue_url for m in stack.runtime.mappings] != [
            m.queue_url for m in other.runtime.mappings
        ]
        assert (
            set(stack.runtime.functions)
            == set(other.runtime.functions)
            == {
                INGEST,
                "RecheckFunction",
                "ExpiryFunction",
                "RemindersFunction",
                "WebhooksInFunction",
                "WebhooksOutFunction",
                "MeteringFunction",
                "AuthorizerFunction",  # deployed, never invoked: the emulator has no API Gateway
                "AuditsFunction",
            }
        )
        assert {m.stream_arn for m in stack.runtime.stream_mappings}.isdisjoint(
            m.stream_arn for m in other.runtime.stream_mappings
        )
    finally:
        other.stop()
    # When the second stops, Then the first still delivers
    recorder = Recorder()
    stack.runtime.override_handler(INGEST, recorder)
    report = stack.drain(timeout_s=10)
    assert report.succeeded == 1 and len(recorder.records) == 1


def test_start_up_takes_seconds(stack: LocalStack) -> None:
    # Given a started stack, Then it took seconds, not minutes (no Docker, no waits)
    assert stack.timings["total"] < 20, stack.timings
