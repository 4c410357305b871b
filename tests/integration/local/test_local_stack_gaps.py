"""The emulator's gaps, re-checked: each fill happened because the gap is still there.

If a moto upgrade closes a gap, a test here fails: update ``devstack.gaps``.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devstack import gaps, signin
from devstack.stack import LocalStack
from tests.integration.local.conftest import INGEST, depth, fresh_stack

pytestmark = pytest.mark.integration


def test_the_gap_fills_that_ran_are_the_documented_ones(stack: LocalStack) -> None:
    # Given a fresh stack, Then each documented post-deploy gap was found and filled
    stage = stack.parameters["Stage"]
    per_stack = [
        "key policy of DataKey as JSON text",
        # the ingest (main and bulk lanes), inbound-webhook and outbox queues and the
        # consents and subjects streams; the accuracy audit jobs' queue
        "detached moto's own delivery from 7 event source(s)",
        "notification configuration of UploadsBucket",
        "versioning Enabled on UploadsBucket",
        "versioning Enabled on LibraryBucket",
        "versioning Enabled on QuarantineBucket",
        "versioning Enabled on DocumentsBucket",
        "versioning Enabled on AuditBucket",
        "versioning Enabled on AccessLogsBucket",
        "time to live on SubjectsTable.ttl",
        "time to live on ConsentsTable.ttl",
        "time to live on WebhooksTable.ttl",
        "time to live on IdempotencyTable.expiration",
        "time to live on AuditHeadsTable.ttl",
        "time to live on AdmissionTable.expires",
        "secret LinkSigningSecret with a generated value",
        f"schedule group ExpiryScheduleGroup (quitclaim-{stage}-expiry)",
        f"schedule group WebhookScheduleGroup (quitclaim-{stage}-webhooks)",
        "schedule SweepSchedule (rate(1 hour))",
        "schedule ReleaseHeldSchedule (cron(5 0 * * ? *))",
        "schedule RemindersSchedule (cron(0 7 * * ? *))",
        "schedule RetentionSchedule (cron(30 2 * * ? *))",
        "schedule DigestSchedule (cron(30 6 * * ? *))",
        "schedule MeteringSchedule (rate(1 hour))",
        "schedule ReconcileSchedule (cron(30 1 * * ? *))",
        # 23: the SES configuration set every mail goes through, bounces and complaints to SNS
        f"SES configuration set MailConfigurationSet (quitclaim-{stage}-mail)",
        "SES event destination MailFeedbackDestination (bounces-and-complaints)",
        # 21: the user pool, its app client, domain and role groups (devstack.signin)
        "user pool UserPool (MFA ON)",
        "app client UserPoolClient",
        "user pool domain UserPoolDomain",
        "group admin",
        "group reviewer",
        "group dpo",
        "group auditor",
        # 12: every function's QC_USER_POOL_* and QC_MAIL_CONFIGURATION_SET refer to
        # skipped resources
        *[
            f"environment of {function} (QC_MAIL_CONFIGURATION_SET, "
            "QC_USER_POOL_CLIENT_ID, QC_USER_POOL_DOMAIN_URL, QC_USER_POOL_ID)"
            for function in (
                "IngestFunction",
                "RecheckFunction",
                "ExpiryFunction",
                "RemindersFunction",
                "MeteringFunction",
                "AuthorizerFunction",
                "WebhooksInFunction",
                "WebhooksOutFunction",
                "AuditsFunction",
            )
        ],
    ]
    # Wrappers of moto and the account-wide SES identity: only the first stack fills them.
    once = {
        "S3 event records carry versionId and sequencer",
        "SES keeps both bodies of an e-mail",
        "SES sender quitclaim@example.org verified",
    }
    assert [f for f in stack.gaps.filled if f not in once] == per_stack
    from moto.s3 import notifications
    from moto.ses.responses import EmailResponse

    assert getattr(notifications._get_s3_event, "_quitclaim_completed", False)
    assert getattr(EmailResponse.send_email, "_quitclaim_captured", False)
    # And the resource types moto skips are recorded, not silently lost
    # (gap 5: policies, the trail, alarms and the alarm e-mail subscription have
    # no local effect; 9-11 create the secret, the schedule group and schedules)
    alarms = {
        f"{name}Alarm"
        for name in [
            "IngestDeadLetter",
            "RecheckDeadLetter",
            "PurgeDeadLetter",
            "AsyncDeadLetter",
            "InboundDeadLetter",
            "EventsDeadLetter",
            "BulkDeadLetter",
            "IngestQueueAge",
            "RecheckIteratorAge",
            "PurgeIteratorAge",
            "IngestErrors",
            "IngestThrottles",
            "RecheckErrors",
            "RecheckThrottles",
            "ExpiryErrors",
            "ExpiryThrottles",
            "RemindersErrors",
            "RemindersThrottles",
            "MeteringErrors",
            "AuthorizerErrors",
            "AuthorizerThrottles",
            "ApiErrors",
            "ApiThrottles",
            "WebhooksInErrors",
            "WebhooksInThrottles",
            "WebhooksOutErrors",
            "WebhooksOutThrottles",
            "AuthorizerErrors",
            "AuthorizerThrottles",
            "AuditsDeadLetter",
            "AuditsErrors",
        ]
    }
    buckets = ["Uploads", "Library", "Quarantine", "Documents", "Audit", "AccessLogs"]
    assert stack.gaps.skipped_resources == {
        **{f"{b}BucketPolicy": "AWS::S3::BucketPolicy" for b in buckets},
        "AuditTrail": "AWS::CloudTrail::Trail",
        "IngestQueuePolicy": "AWS::SQS::QueuePolicy",
        "LinkSigningSecret": "AWS::SecretsManager::Secret",
        "ExpiryScheduleGroup": "AWS::Scheduler::ScheduleGroup",
        "WebhookScheduleGroup": "AWS::Scheduler::ScheduleGroup",
        "SweepSchedule": "AWS::Scheduler::Schedule",
        "ReleaseHeldSchedule": "AWS::Scheduler::Schedule",
        "RemindersSchedule": "AWS::Scheduler::Schedule",
        "RetentionSchedule": "AWS::Scheduler::Schedule",
        "DigestSchedule": "AWS::Scheduler::Schedule",
        "MeteringSchedule": "AWS::Scheduler::Schedule",
        "ReconcileSchedule": "AWS::Scheduler::Schedule",
        "AlarmEmailSubscription": "AWS::SNS::Subscription",
        # 23: SES feedback (the set and destination are created; moto publishes no events)
        "MailConfigurationSet": "AWS::SES::ConfigurationSet",
        "MailFeedbackDestination": "AWS::SES::ConfigurationSetEventDestination",
        "MailFeedbackTopicPolicy": "AWS::SNS::TopicPolicy",
        "RemindersFunctionMailFeedback": "AWS::SNS::Subscription",
        **{name: "AWS::CloudWatch::Alarm" for name in alarms},
        "UserPool": "AWS::Cognito::UserPool",
        "UserPoolClient": "AWS::Cognito::UserPoolClient",
        "UserPoolDomain": "AWS::Cognito::UserPoolDomain",
        **{
            f"{g}Group": "AWS::Cognito::UserPoolGroup"
            for g in ("Admin", "Reviewer", "Dpo", "Auditor")
        },
    }


def _user_pool_from_the_template(stack: LocalStack) -> None:
    # Given the stack's pool, created by the fill (gap 21)
    cognito = stack.client("cognito-idp")
    pool_id = stack.resources["UserPool"]
    pool = cognito.describe_user_pool(UserPoolId=pool_id)["UserPool"]
    # Then it has the template's MFA setting and the tenant attribute
    assert pool["MfaConfiguration"] == "ON"
    assert "custom:tenant" in {a["Name"] for a in pool["SchemaAttributes"]}
    # And the app client is public (no secret), code flow only, and cannot write the tenant
    client = cognito.describe_user_pool_client(
        UserPoolId=pool_id, ClientId=stack.resources["UserPoolClient"]
    )["UserPoolClient"]
    assert "ClientSecret" not in client and client["AllowedOAuthFlows"] == ["code"]
    assert "custom:tenant" not in client["WriteAttributes"]
    # And the role groups exist, and the functions are pointed at this pool
    groups = {g["GroupName"] for g in cognito.list_groups(UserPoolId=pool_id)["Groups"]}
    assert groups == {"admin", "reviewer", "dpo", "auditor"}
    assert stack.function_env(INGEST)["QC_USER_POOL_ID"] == pool_id
    assert stack.client_env()["QC_USER_POOL_DOMAIN_URL"] == stack.signin.url  # the stand-in


def test_the_skipped_resources_exist_after_the_fills(stack: LocalStack) -> None:
    stage = stack.parameters["Stage"]
    # The secret has a generated 64-character value without punctuation
    secret = stack.client("secretsmanager").get_secret_value(
        SecretId=stack.resources["LinkSigningSecret"]
    )["SecretString"]
    assert len(secret) == 64 and secret.isalnum()
    # The schedule group accepts schedules (moto would answer a 500 without it)
    scheduler = stack.client("scheduler")
    group = scheduler.get_schedule_group(Name=f"quitclaim-{stage}-expiry")
    assert group["Name"] == stack.function_env(INGEST)["QC_SCHEDULE_GROUP"]
    # The template's schedules are listed like any other, with their targets
    sweep = scheduler.get_schedule(Name=stack.resources["SweepSchedule"])
    reminders = scheduler.get_schedule(Name=stack.resources["RemindersSchedule"])
    assert sweep["ScheduleExpression"] == "rate(1 hour)"
    assert sweep["Target"]["Arn"] == stack.runtime.functions["ExpiryFunction"].arn
    assert sweep["Target"]["Input"] == '{"kind": "sweep"}'
    assert (reminders["ScheduleExpression"], reminders["ScheduleExpressionTimezone"]) == (
        "cron(0 7 * * ? *)",
        "Europe/Amsterdam",
    )
    assert reminders["Target"]["Arn"] == stack.runtime.functions["RemindersFunction"].arn
    release = scheduler.get_schedule(Name=stack.resources["ReleaseHeldSchedule"])
    assert (release["ScheduleExpression"], release["ScheduleExpressionTimezone"]) == (
        "cron(5 0 * * ? *)",
        "UTC",
    )
    assert release["Target"]["Input"] == '{"kind": "release_held"}'
    # The mail configuration set every function sends through reports bounces and
    # complaints to the feedback topic (gap 23)
    ses = stack.client("ses")
    mail_set = stack.function_env("RemindersFunction")["QC_MAIL_CONFIGURATION_SET"]
    assert mail_set == f"quitclaim-{stage}-mail" == stack.client_env()["QC_MAIL_CONFIGURATION_SET"]
    [destination] = ses.describe_configuration_set(
        ConfigurationSetName=mail_set, ConfigurationSetAttributeNames=["eventDestinations"]
    )["EventDestinations"]
    assert destination["Enabled"] and destination["MatchingEventTypes"] == ["bounce", "complaint"]
    topic = destination["SNSDestination"]["TopicARN"]
    assert topic.endswith(f":quitclaim-{stage}-mail-feedback")
    assert topic in [t["TopicArn"] for t in stack.client("sns").list_topics()["Topics"]]
    # The user pool (gap 21) and the hosted sign-in's stand-in (gap 22)
    _user_pool_from_the_template(stack)
    _stand_in_gives_tokens_only_for_the_right_pkce_verifier(stack)


def test_a_stack_leaving_a_shared_emulator_removes_what_the_fills_created(
    stack: LocalStack,
) -> None:
    # Given a second stack beside the first
    other = fresh_stack()
    name = other.resources["SweepSchedule"]
    group = other.function_env(INGEST)["QC_SCHEDULE_GROUP"]
    secret = other.resources["LinkSigningSecret"]
    mail_set = other.resources["MailConfigurationSet"]
    # When it stops
    other.stop()
    # Then its schedules, group and secret are gone; the first stack's remain
    scheduler = stack.client("scheduler")
    names = [s["Name"] for s in scheduler.list_schedules()["Schedules"]]
    assert name not in names and stack.resources["SweepSchedule"] in names
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
        scheduler.get_schedule_group(Name=group)
    with pytest.raises(stack.client("secretsmanager").exceptions.ResourceNotFoundException):
        stack.client("secretsmanager").describe_secret(SecretId=secret)
    ses = stack.client("ses")
    with pytest.raises(ses.exceptions.ConfigurationSetDoesNotExistException):
        ses.describe_configuration_set(ConfigurationSetName=mail_set)


def test_moto_does_not_consume_messages_after_the_pollers_are_detached(
    stack: LocalStack,
) -> None:
    # Given the deployed stack and its s3:TestEvent in the queue
    sqs = stack.client("sqs")
    queue = stack.outputs["IngestQueueUrl"]
    # When more messages arrive (moto would push each send to Lambda itself)
    sqs.send_message(QueueUrl=queue, MessageBody="x")
    # Then nobody received any of them yet
    messages = sqs.receive_message(
        QueueUrl=queue, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    )["Messages"]
    assert len(messages) == 2
    assert {m["Attributes"]["ApproximateReceiveCount"] for m in messages} == {"1"}
    assert depth(stack, "IngestDeadLetterQueueUrl") == 0


def test_stream_records_say_us_east_1_and_the_fill_corrects_them(stack: LocalStack) -> None:
    # Given a write to the consents table (its stream has both images)
    dynamodb, streams = stack.client("dynamodb"), stack.client("dynamodbstreams")
    table = stack.resources["ConsentsTable"]
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "t#s"}, "sk": {"S": "consent#1"}})
    arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    [shard] = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    # When its stream record is read
    [record] = streams.get_records(ShardIterator=iterator)["Records"]
    # Then moto names the wrong region and no identity (the gap), and the fill gives Lambda's
    assert record["awsRegion"] == "us-east-1" != stack.region
    assert "userIdentity" not in record
    fixed = gaps.lambda_stream_record(record, stack.region, arn)
    assert (fixed["awsRegion"], fixed["eventSourceARN"]) == (stack.region, arn)
    assert fixed["dynamodb"] == record["dynamodb"]


def test_moto_never_expires_items_by_itself(stack: LocalStack) -> None:
    # Given an item whose TTL passed long ago, in a table with TTL enabled
    dynamodb = stack.client("dynamodb")
    table = stack.resources["SubjectsTable"]
    key = {"tenant": {"S": "t"}, "subject_id": {"S": "old"}}
    dynamodb.put_item(TableName=table, Item={**key, "ttl": {"N": "1000000000"}})
    # Then it is still there (only the local reaper deletes it, on a tick)
    assert "Item" in dynamodb.get_item(TableName=table, Key=key)


def test_moto_ses_refuses_unverified_senders_and_keeps_one_body(stack: LocalStack) -> None:
    ses = stack.client("ses")
    message = {
        "Subject": {"Data": "s"},
        "Body": {"Text": {"Data": "plain"}, "Html": {"Data": "<p>html</p>"}},
    }
    # An unverified sender is refused, as in the SES sandbox
    with pytest.raises(ses.exceptions.MessageRejected):
        ses.send_email(
            Source="nobody@elsewhere.example",
            Destination={"ToAddresses": ["a@b.example"]},
            Message=message,
        )
    # The template's MailFrom was verified, and both bodies are kept
    ses.send_email(
        Source="quitclaim@example.org",
        Destination={"ToAddresses": ["a@b.example"]},
        Message=message,
    )
    from moto.ses.models import ses_backends

    [sent] = [
        m
        for m in ses_backends[stack.deployment.account_id][stack.region].sent_messages
        if m.destinations == {"ToAddresses": ["a@b.example"]}
    ][-1:]
    assert sent.body == "<p>html</p>"  # moto's own record: the HTML body only (the gap)
    assert sent.quitclaim_bodies == {"text": "plain", "html": "<p>html</p>"}


def test_marketplace_metering_keeps_accepted_records_and_subscribes_on_request(
    stack: LocalStack,
) -> None:
    # Gap 19: moto serves BatchMeterUsage but keeps nothing and subscribes nobody
    from datetime import UTC, datetime

    from botocore.exceptions import ClientError

    from devstack import marketplace

    mm, product = stack.client("meteringmarketplace"), "gap-19"
    record = {
        "Timestamp": datetime(2026, 11, 26, 10, tzinfo=UTC),
        "CustomerIdentifier": "cust-gap",
        "Dimension": "images_scanned",
        "Quantity": 3,
    }

    def send(**change: object) -> dict[str, object]:
        reply = mm.batch_meter_usage(ProductCode=product, UsageRecords=[{**record, **change}])
        answer: dict[str, object] = reply["Results"][0]
        return answer

    # Given a customer who has not subscribed, Then the record is refused
    assert send()["Status"] == "CustomerNotSubscribed"
    # When the customer subscribes, Then it is accepted, and an identical repeat is the same record
    marketplace.subscribe(product, "cust-gap", stack.region)
    first = send()
    assert first["Status"] == "Success"
    assert send()["MeteringRecordId"] == first["MeteringRecordId"]
    # And another quantity for the same hour is a DuplicateRecord, not a second record
    assert send(Quantity=4)["Status"] == "DuplicateRecord"
    held = marketplace.metered_records(product, stack.region)
    assert [(r["customer"], r["dimension"], r["quantity"]) for r in held] == [
        ("cust-gap", "images_scanned", 3)
    ]
    # And throttling is answered as AWS does (after the client's own retries)
    marketplace.throttle_next(5)
    with pytest.raises(ClientError) as refused:
        send()
    assert refused.value.response["Error"]["Code"] == "ThrottlingException"


def _stand_in_gives_tokens_only_for_the_right_pkce_verifier(stack: LocalStack) -> None:
    # Given an account, and a page that starts the code flow with a PKCE challenge
    cognito = stack.client("cognito-idp")
    pool, client_id = stack.resources["UserPool"], stack.resources["UserPoolClient"]
    signin.create_user(
        cognito,
        pool,
        email="gap@example.org",
        tenant="gaps",
        group="auditor",
        password="Pw-123456789",
    )
    verifier, redirect = "v" * 43, "http://127.0.0.1:9/"
    flow = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": redirect,
        "state": "s1",
        "code_challenge": signin.s256(verifier),
        "code_challenge_method": "S256",
    }
    assert _get(stack.signin.url + "/oauth2/authorize?" + urlencode(flow))[0] == 200
    assert (
        _get(
            stack.signin.url
            + "/oauth2/authorize?"
            + urlencode({**flow, "code_challenge_method": "plain"})
        )[0]
        == 400
    )
    # When the person signs in on the login page, Then they come back with a code and the state
    status, location = _post(
        stack.signin.url + "/login",
        {**flow, "username": "gap@example.org", "password": "Pw-123456789"},
    )
    query = parse_qs(urlsplit(location).query)
    assert status == 302 and location.startswith(redirect) and query["state"] == ["s1"]
    code = query["code"][0]
    token = {"grant_type": "authorization_code", "client_id": client_id, "redirect_uri": redirect}
    # And a wrong verifier gets no tokens (the code is then spent: one use only) ...
    assert (
        _post(
            stack.signin.url + "/oauth2/token", {**token, "code": code, "code_verifier": "w" * 43}
        )[0]
        == 400
    )
    assert (
        _post(
            stack.signin.url + "/oauth2/token", {**token, "code": code, "code_verifier": verifier}
        )[0]
        == 400
    )
    # ... while a fresh code with the right verifier gets the pool's RS256 ID token
    location = _post(
        stack.signin.url + "/login",
        {**flow, "username": "gap@example.org", "password": "Pw-123456789"},
    )[1]
    code = parse_qs(urlsplit(location).query)["code"][0]
    status, body = _post(
        stack.signin.url + "/oauth2/token", {**token, "code": code, "code_verifier": verifier}
    )
    claims = json.loads(base64.urlsafe_b64decode(json.loads(body)["id_token"].split(".")[1] + "=="))
    assert (status, claims["custom:tenant"], claims["cognito:groups"]) == (200, "gaps", ["auditor"])
    # And a wrong password is refused on the page, with no code
    assert (
        _post(
            stack.signin.url + "/login", {**flow, "username": "gap@example.org", "password": "no"}
        )[0]
        == 200
    )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _get(url: str) -> tuple[int, str]:
    return _open(urllib.request.Request(url))


def _post(url: str, form: dict[str, str]) -> tuple[int, str]:
    return _open(urllib.request.Request(url, data=urlencode(form).encode(), method="POST"))


def _open(request: urllib.request.Request) -> tuple[int, str]:
    """(status, Location or body) without following redirects."""
    try:
        with urllib.request.build_opener(_NoRedirect).open(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Location") or exc.read().decode()


def test_moto_ignores_if_none_match_on_copy_and_the_fill_refuses(stack: LocalStack) -> None:
    # Given moto's own CopyObject, which never reads If-None-Match (gap 24)
    import inspect

    from moto.s3.responses import S3Response

    # (only the copy source's x-amz-copy-source-If-None-Match)
    assert '"If-None-Match"' not in inspect.getsource(S3Response.copy_object.__wrapped__)
    s3 = stack.client("s3")
    library = stack.outputs["LibraryBucketName"]
    s3.put_object(Bucket=library, Key="gap24/src", Body=b"a")
    s3.put_object(Bucket=library, Key="gap24/taken", Body=b"b")
    copy = {"Bucket": library, "CopySource": {"Bucket": library, "Key": "gap24/src"}}
    # When a conditional copy goes to a taken key, Then it is refused (412), as S3 does
    with pytest.raises(s3.exceptions.ClientError) as refused:
        s3.copy_object(**copy, Key="gap24/taken", IfNoneMatch="*")
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    assert s3.get_object(Bucket=library, Key="gap24/taken")["Body"].read() == b"b"
    # And to a free key it copies
    s3.copy_object(**copy, Key="gap24/free", IfNoneMatch="*")
    assert s3.get_object(Bucket=library, Key="gap24/free")["Body"].read() == b"a"

    # And a move's copy (S3ObjectStore) into an empty place is one request, and
    # a retried copy that landed leaves no second version
    from quitclaim.adapters.s3_store import S3ObjectStore

    calls: list[str] = []

    def note(model: Any, **_: Any) -> None:
        calls.append(model.name)

    store = S3ObjectStore(s3)
    source = store.head(library, "gap24/src")
    assert source is not None
    s3.meta.events.register("before-call.s3.*", note)
    try:
        store.copy(source, library, "gap24/moved", {"quitclaim-asset-id": "a1"})
    finally:
        s3.meta.events.unregister("before-call.s3.*", note)
    assert calls == ["CopyObject"]
    store.copy(source, library, "gap24/moved", {"quitclaim-asset-id": "a1"})
    listed = s3.list_object_versions(Bucket=library, Prefix="gap24/moved")
    assert len(listed["Versions"]) == 1


def test_moto_copies_the_whole_bucket_per_version_page_and_the_fill_pages(
    stack: LocalStack,
) -> None:
    # Given moto's own listing, which deep-copies every version in the bucket (gap 25)
    import inspect

    from moto.s3.models import S3Backend

    assert "deepcopy" in inspect.getsource(S3Backend.list_object_versions.__wrapped__)
    s3 = stack.client("s3")
    library = stack.outputs["LibraryBucketName"]
    for n in range(5):
        s3.put_object(Bucket=library, Key=f"gap25/{n}", Body=b"1")
    s3.put_object(Bucket=library, Key="gap25/2", Body=b"2")
    s3.delete_object(Bucket=library, Key="gap25/4")
    # When the prefix is listed two versions a page
    pages = s3.get_paginator("list_object_versions").paginate(
        Bucket=library, Prefix="gap25/", PaginationConfig={"PageSize": 2}
    )
    versions, markers = [], []
    for page in pages:
        versions += [(v["Key"], v["IsLatest"]) for v in page.get("Versions", [])]
        markers += [m["Key"] for m in page.get("DeleteMarkers", [])]
    # Then every version is listed once, newest first per key, and the marker
    assert versions == [
        ("gap25/0", True),
        ("gap25/1", True),
        ("gap25/2", True),
        ("gap25/2", False),
        ("gap25/3", True),
        ("gap25/4", False),
    ]
    assert markers == ["gap25/4"]


def test_moto_sizes_an_item_per_attribute_and_the_fill_sizes_it_once(stack: LocalStack) -> None:
    # Given moto's own item, whose attribute dict re-sums the item on every insert (gap 26)
    import inspect

    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict

    assert "for item in (list(self.keys())" in inspect.getsource(LimitedSizeDict.__setitem__)
    moto_init = Item.__init__.__wrapped__  # type: ignore[attr-defined]
    key = DynamoType({"S": "k"})
    nested = {
        "m": {"M": {"a": {"S": "x" * 30}, "b": {"L": [{"N": "1"}, {"BOOL": True}]}}},
        "s": {"SS": ["p", "q"]},
        "n": {"N": "12.5"},
        "z": {"NULL": True},
    }
    # When the fill and moto build the same item, Then they hold the same attributes and size
    ours, theirs = Item.__new__(Item), Item.__new__(Item)
    Item.__init__(ours, key, None, nested)
    moto_init(theirs, key, None, nested)
    assert ours == theirs
    assert ours.size() == theirs.size()
    assert isinstance(ours.attrs, LimitedSizeDict)
    # And through the stack: an item at the limit is written, one byte over is refused as
    # moto refuses it (moto's limit: 405,000 bytes of names and values)
    dynamodb = stack.client("dynamodb")
    table = stack.client_env()["QC_ASSETS_TABLE"]
    base = {"pk": {"S": "gap26#a"}}
    used = sum(len(k) + len(v["S"]) for k, v in base.items()) + len("pad")
    dynamodb.put_item(TableName=table, Item={**base, "pad": {"S": "x" * (405_000 - used)}})
    with pytest.raises(dynamodb.exceptions.ClientError) as refused:
        dynamodb.put_item(TableName=table, Item={**base, "pad": {"S": "x" * (405_001 - used)}})
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "Item size has exceeded" in refused.value.response["Error"]["Message"]


_scalar_values = st.one_of(
    st.builds(lambda s: {"S": s}, st.text(max_size=8)),
    st.builds(lambda n: {"N": str(n)}, st.integers()),
    st.builds(lambda b: {"BOOL": b}, st.booleans()),
    st.just({"NULL": True}),
    st.builds(lambda b: {"B": b}, st.binary(max_size=6)),
    st.builds(lambda s: {"SS": s}, st.lists(st.text(max_size=4), max_size=3, unique=True)),
    st.builds(lambda s: {"NS": [str(n) for n in s]}, st.sets(st.integers(), max_size=3)),
)
_attribute_values = st.recursive(
    _scalar_values,
    lambda inner: st.one_of(
        st.builds(lambda m: {"M": m}, st.dictionaries(st.text(max_size=4), inner, max_size=3)),
        st.builds(lambda items: {"L": items}, st.lists(inner, max_size=3)),
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(items=st.lists(st.dictionaries(st.text(max_size=5), _attribute_values, max_size=4)))
def test_moto_serialises_attribute_values_by_shape_and_the_fill_writes_the_same_json(
    items: list[dict[str, Any]],
) -> None:
    # Given a Query's result as moto holds it (wire-form attribute values), and
    # moto's serializer with and without the fill (gap 27)
    from moto.core.responses import get_service_model
    from moto.core.serialize import BaseJSONSerializer, XFormedAttributePicker, get_serializer_class

    from devstack import moto_fixes

    moto_fixes.apply()
    filled = BaseJSONSerializer._serialize_type_structure
    assert getattr(filled, "_quitclaim_direct", False)
    operation = get_service_model("dynamodb").operation_model("Query")
    result = {"Items": items, "Count": len(items), "ScannedCount": len(items)}

    def serialised() -> dict[str, Any]:
        serializer = get_serializer_class("dynamodb", "json")(
            operation_model=operation, pretty_print=False, value_picker=XFormedAttributePicker()
        )
        out: dict[str, Any] = serializer.serialize(result)
        return out

    # When it is serialised both ways
    ours = serialised()
    BaseJSONSerializer._serialize_type_structure = filled.__wrapped__  # type: ignore[attr-defined,method-assign]
    try:
        theirs = serialised()
    finally:
        BaseJSONSerializer._serialize_type_structure = filled  # type: ignore[method-assign]
    # Then the responses are the same, byte for byte
    assert (ours["status_code"], ours["headers"], ours["body"]) == (
        theirs["status_code"],
        theirs["headers"],
        theirs["body"],
    )


def test_moto_checks_a_create_only_put_apart_from_it_and_the_fill_makes_it_one_step(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given moto's own PutObject, which looks for the key and then writes it (gap 29),
    # with the write made slow so that racing puts all look before any has written
    import inspect
    import threading
    import time

    from moto.s3.models import S3Backend
    from moto.s3.responses import S3Response

    source = inspect.getsource(S3Response.put_object.__wrapped__)  # type: ignore[attr-defined]
    assert 'if_none_match == "*"' in source and "self.backend.get_object" in source
    write = S3Backend.put_object

    def slow_write(self: Any, *args: Any, **kwargs: Any) -> Any:
        time.sleep(0.05)
        return write(self, *args, **kwargs)

    monkeypatch.setattr(S3Backend, "put_object", slow_write)
    s3 = stack.client("s3")
    library = stack.outputs["LibraryBucketName"]
    writers = 16
    start = threading.Barrier(writers)
    outcomes: list[str] = []

    def put(n: int) -> None:
        start.wait()
        try:
            s3.put_object(Bucket=library, Key="gap29/once", Body=f"{n}".encode(), IfNoneMatch="*")
            outcomes.append("created")
        except s3.exceptions.ClientError as exc:
            outcomes.append(exc.response["Error"]["Code"])

    # When sixteen create-only puts race for one key
    threads = [threading.Thread(target=put, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then one creates it, every other is refused as S3 refuses it, and one version is stored
    assert sorted(outcomes) == ["PreconditionFailed"] * (writers - 1) + ["created"]
    versions = s3.list_object_versions(Bucket=library, Prefix="gap29/once").get("Versions", [])
    assert len(versions) == 1
