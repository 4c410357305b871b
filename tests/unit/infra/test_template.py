"""infra/template.yaml, checked offline: lint, translation, and what production needs.

The emulator drops much of this (bucket lifecycle, logging, Object Lock,
table encryption: see devstack.gaps), so it is asserted here on the
template itself, and on the template CloudFormation would receive.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from devstack.deploy import preflight
from quitclaim.adapters import dynamo, dynamo_sqs_admission
from tests.unit.infra import templates

BUCKETS = ("Uploads", "Library", "Quarantine", "Documents", "Audit", "AccessLogs")
DATA_KEY_ARN = {"Fn::GetAtt": ["DataKey", "Arn"]}


def resources(kind: str, template: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    template = template or templates.source()
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def props(logical_id: str) -> dict[str, Any]:
    properties: dict[str, Any] = templates.source()["Resources"][logical_id]["Properties"]
    return properties


# ---------------------------------------------------------------- lint and translation


@pytest.mark.parametrize("which", ["source", "merged"])
def test_cfn_lint_is_clean(which: str) -> None:
    from cfnlint.api import ManualArgs, lint

    template = templates.source() if which == "source" else templates.merged()
    matches = lint(json.dumps(template), config=ManualArgs(regions=["eu-central-1", "eu-west-1"]))
    assert [f"{m.rule.id} {m.message}" for m in matches] == []


def test_cfn_lint_would_see_a_mistake() -> None:
    # Guards against a lint that silently checks nothing (e.g. a SAM transform failure). The
    # template's own header and transform with one resource broken: linting all 126 again
    # would cost ~11 s of CPU for the same proof.
    from cfnlint.api import ManualArgs, lint

    source = templates.source()
    queue = json.loads(json.dumps(source["Resources"]["IngestQueue"]))
    queue["Properties"]["VisibilityTimeout"] = "soon"
    dead = source["Resources"]["IngestDeadLetterQueue"]
    broken = {k: v for k, v in source.items() if k not in ("Resources", "Outputs", "Conditions")}
    broken["Resources"] = {"IngestQueue": queue, "IngestDeadLetterQueue": dead}
    matches = lint(json.dumps(broken), config=ManualArgs(regions=["eu-central-1"]))
    assert matches
    assert all("VisibilityTimeout" in "/".join(map(str, m.path)) for m in matches), [
        f"{m.rule.id} {m.message}" for m in matches
    ]


@pytest.mark.parametrize("which", ["source", "merged"])
def test_aws_sam_translator_translates_it(which: str) -> None:
    translated = templates.translated(which)
    kinds = {r["Type"] for r in translated["Resources"].values()}
    assert not {k for k in kinds if k.startswith("AWS::Serverless::")}
    assert "Fn::Transform" not in json.dumps(translated)
    assert "AWS::Lambda::Function" in kinds


def test_the_template_refuses_non_eu_regions() -> None:
    from devstack.deploy import RuleViolation

    template = templates.source()
    for region in ("eu-central-1", "eu-west-1", "eu-north-1"):
        preflight(template, region, "quitclaim")
    for region in ("us-east-1", "eu-central-3", "il-central-1", "me-central-1"):
        with pytest.raises(RuleViolation):
            preflight(template, region, "quitclaim")


def test_every_suppression_says_why() -> None:
    for which in ("source", "merged"):
        for logical_id, resource in templates.translated(which)["Resources"].items():
            metadata = resource.get("Metadata") or {}
            for skip in (metadata.get("checkov") or {}).get("skip", []):
                assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (logical_id, skip)
                assert len(skip.get("comment", "")) > 30, (logical_id, skip["id"])
            for ignored in ((metadata.get("cfn-lint") or {}).get("config") or {}).get(
                "ignore_checks", []
            ):
                pytest.fail(f"{logical_id}: cfn-lint ignore {ignored} needs a reason in a comment")


# ---------------------------------------------------------------- buckets


@pytest.mark.parametrize("name", BUCKETS)
def test_every_bucket_is_private_versioned_encrypted_logged_and_tidied(name: str) -> None:
    p = props(f"{name}Bucket")
    assert p["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert p["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert p["VersioningConfiguration"] == {"Status": "Enabled"}
    [sse] = p["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    rules = {r["Id"]: r for r in p["LifecycleConfiguration"]["Rules"]}
    assert rules["abandoned-multipart-uploads"]["AbortIncompleteMultipartUpload"]
    if name == "AccessLogs":
        # S3 server access logging can only deliver to an SSE-S3 bucket
        assert sse["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
        assert "LoggingConfiguration" not in p
    else:
        assert sse["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] == DATA_KEY_ARN
        assert sse["BucketKeyEnabled"] is True
        assert p["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": "AccessLogsBucket"}
    if name != "Audit":  # Object Lock: versions expire with their retention, not by rule
        assert rules["old-versions" if name != "AccessLogs" else "expire-logs"][
            "NoncurrentVersionExpiration"
        ]
    [policy] = [
        r
        for r in resources("AWS::S3::BucketPolicy").values()
        if r["Properties"]["Bucket"] == {"Ref": f"{name}Bucket"}
    ]
    assert policy["Properties"]["PolicyDocument"]["Statement"]


def test_the_audit_bucket_is_under_object_lock_in_compliance_mode() -> None:
    p = props("AuditBucket")
    assert p["ObjectLockEnabled"] is True
    assert p["ObjectLockConfiguration"] == {
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": {"Ref": "AuditRetentionDays"}}},
    }
    trail = props("AuditTrail")
    assert trail["S3BucketName"] == {"Ref": "AuditBucket"}
    assert trail["EnableLogFileValidation"] is True and trail["KMSKeyId"] == DATA_KEY_ARN


def test_what_outlives_the_stack_is_retained_on_purpose_and_nothing_else() -> None:
    retained = {
        k for k, v in templates.source()["Resources"].items() if v.get("DeletionPolicy") == "Retain"
    }
    # Evidence, the audit trail, access logs, and the key they are encrypted with.
    # Biometric data (subjects table, images) is not retained.
    assert retained == {"DocumentsBucket", "AuditBucket", "AccessLogsBucket", "DataKey"}


# ---------------------------------------------------------------- tables


def test_every_table_is_encrypted_with_the_key_and_recoverable() -> None:
    tables = resources("AWS::DynamoDB::Table")
    assert len(tables) == 11
    for logical_id, table in tables.items():
        p = table["Properties"]
        assert p["SSESpecification"] == {
            "SSEEnabled": True,
            "SSEType": "KMS",
            "KMSMasterKeyId": {"Ref": "DataKey"},
        }, logical_id
        assert p["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert p["BillingMode"] == "PAY_PER_REQUEST"


MODELS = {
    "TenantsTable": dynamo.TenantModel,
    "ApiKeysTable": dynamo.ApiKeyModel,
    "SubjectsTable": dynamo.SubjectModel,
    "ConsentsTable": dynamo.ConsentModel,
    "AssetsTable": dynamo.AssetModel,
    "AppearancesTable": dynamo.AppearanceModel,
    "RequestsTable": dynamo.RequestModel,
}


@pytest.mark.parametrize("logical_id", sorted(MODELS))
def test_keys_indexes_and_ttl_are_the_ones_the_code_uses(logical_id: str) -> None:
    model = MODELS[logical_id]
    p = props(logical_id)
    keys = {k["AttributeName"]: k["KeyType"] for k in p["KeySchema"]}
    expected = {
        name: "HASH" if attribute.is_hash_key else "RANGE"
        for name, attribute in model.get_attributes().items()
        if attribute.is_hash_key or attribute.is_range_key
    }
    assert keys == expected
    indexes = {i["IndexName"]: i for i in p.get("GlobalSecondaryIndexes", [])}
    code_indexes = {
        index.Meta.index_name: index
        for index in vars(model).values()
        if hasattr(index, "Meta") and hasattr(index.Meta, "index_name")
    }
    assert set(indexes) == set(code_indexes)
    for name, index in code_indexes.items():
        schema = {k["AttributeName"]: k["KeyType"] for k in indexes[name]["KeySchema"]}
        assert schema == {
            attr_name: "HASH" if attr.is_hash_key else "RANGE"
            for attr_name, attr in index.Meta.attributes.items()
            if attr.is_hash_key or attr.is_range_key
        }, name
    ttl = [n for n, a in model.get_attributes().items() if type(a).__name__ == "TTLAttribute"]
    if ttl:
        assert p["TimeToLiveSpecification"] == {"AttributeName": ttl[0], "Enabled": True}
    else:
        assert "TimeToLiveSpecification" not in p


def test_the_admission_table_has_the_key_and_ttl_the_counter_writes() -> None:
    p = props("AdmissionTable")
    assert {k["AttributeName"]: k["KeyType"] for k in p["KeySchema"]} == {
        dynamo_sqs_admission.HASH_KEY: "HASH",
        dynamo_sqs_admission.RANGE_KEY: "RANGE",
    }
    assert p["TimeToLiveSpecification"] == {
        "AttributeName": dynamo_sqs_admission.TTL_ATTRIBUTE,
        "Enabled": True,
    }


# ---------------------------------------------------------------- functions and queues

FUNCTIONS = ("IngestFunction", "RecheckFunction", "ExpiryFunction", "RemindersFunction")


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_memory_and_timeout_are_set_per_function_with_the_reason(logical_id: str) -> None:
    text = templates.TEMPLATE.read_text(encoding="utf-8")
    block = re.search(rf"\n  {logical_id}:\n(.*?)(?=\n  [A-Za-z]+:\n)", text, re.S)
    assert block is not None
    lines = block.group(1).splitlines()
    for setting in ("MemorySize", "Timeout"):
        [index] = [i for i, line in enumerate(lines) if line.strip().startswith(f"{setting}:")]
        assert lines[index - 1].strip().startswith("#"), f"{logical_id}.{setting} needs a why"
    p = props(logical_id)
    assert p["Runtime" if "Runtime" in p else "Handler"]
    assert p["Role"] == {"Fn::GetAtt": [logical_id.replace("Function", "Role"), "Arn"]}
    assert p["FunctionName"] == {"Fn::Sub": f"quitclaim-${{Stage}}-{logical_id[:-8].lower()}"}


def test_every_function_is_arm64_python313_traced_with_its_own_log_group() -> None:
    translated = templates.translated("merged")
    log_groups = {
        json.dumps(r["Properties"]["LogGroupName"])
        for r in resources("AWS::Logs::LogGroup", translated).values()
    }
    for logical_id, fn in resources("AWS::Lambda::Function", translated).items():
        p = fn["Properties"]
        assert (p["Runtime"], p["Architectures"]) == ("python3.13", ["arm64"]), logical_id
        assert p["TracingConfig"] == {"Mode": "Active"}
        name = p["FunctionName"]["Fn::Sub"]
        assert json.dumps({"Fn::Sub": f"/aws/lambda/{name}"}) in log_groups, logical_id
    for group in resources("AWS::Logs::LogGroup", translated).values():
        assert group["Properties"]["KmsKeyId"] == DATA_KEY_ARN
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_queue_visibility_is_at_least_six_times_each_consumers_timeout() -> None:
    translated = templates.translated("merged")
    res = translated["Resources"]
    sqs_sources = [
        m["Properties"]
        for m in resources("AWS::Lambda::EventSourceMapping", translated).values()
        if "Queue" in json.dumps(m["Properties"]["EventSourceArn"])
    ]
    assert sqs_sources, "the ingest queue has a consumer"
    for mapping in sqs_sources:
        queue = mapping["EventSourceArn"]["Fn::GetAtt"][0]
        function = mapping["FunctionName"]["Ref"]
        timeout = res[function]["Properties"]["Timeout"]
        visibility = res[queue]["Properties"]["VisibilityTimeout"]
        assert visibility >= 6 * timeout, (queue, visibility, function, timeout)


def test_every_queue_has_a_dead_letter_or_is_one_and_is_encrypted() -> None:
    queues = resources("AWS::SQS::Queue")
    dead_letters = {k for k in queues if k.endswith("DeadLetterQueue")}
    assert dead_letters == {
        "IngestDeadLetterQueue",
        "BulkDeadLetterQueue",
        "RecheckDeadLetterQueue",
        "PurgeDeadLetterQueue",
        "AsyncDeadLetterQueue",
        "InboundDeadLetterQueue",
        "EventsDeadLetterQueue",
        "AuditsDeadLetterQueue",
    }
    for logical_id, queue in queues.items():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True
        if logical_id not in dead_letters:
            assert queue["Properties"]["RedrivePolicy"]["maxReceiveCount"] == 5


# ---------------------------------------------------------------- alarms and dashboard


def _alarms() -> list[dict[str, Any]]:
    return [a["Properties"] for a in resources("AWS::CloudWatch::Alarm").values()]


def _watched(metric: str, dimension: str) -> set[str]:
    return {
        json.dumps(a["Dimensions"][0]["Value"])
        for a in _alarms()
        if a["MetricName"] == metric and a["Dimensions"][0]["Name"] == dimension
    }


def test_alarms_cover_dead_letters_errors_throttles_and_age() -> None:
    for alarm in _alarms():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
        assert alarm["TreatMissingData"] == "notBreaching"
    for queue in ("Ingest", "Bulk", "Recheck", "Purge", "Async", "Inbound", "Events", "Audits"):
        value = json.dumps({"Fn::GetAtt": [f"{queue}DeadLetterQueue", "QueueName"]})
        assert value in _watched("ApproximateNumberOfMessagesVisible", "QueueName"), queue
    age = json.dumps({"Fn::GetAtt": ["IngestQueue", "QueueName"]})
    assert age in _watched("ApproximateAgeOfOldestMessage", "QueueName")
    for name in ("ingest", "recheck", "expiry", "reminders", "api", "webhooks-in", "webhooks-out"):
        value = json.dumps({"Fn::Sub": f"quitclaim-${{Stage}}-{name}"})
        assert value in _watched("Errors", "FunctionName"), name
        assert value in _watched("Throttles", "FunctionName"), name
    for name in ("recheck", "expiry"):  # stream consumers: age of the oldest record
        assert json.dumps({"Fn::Sub": f"quitclaim-${{Stage}}-{name}"}) in _watched(
            "IteratorAge", "FunctionName"
        )


def test_the_dashboard_shows_the_processing_volumes_the_code_emits() -> None:
    body = props("Dashboard")["DashboardBody"]["Fn::Sub"]
    widgets = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))["widgets"]
    quitclaim = {
        m[1]
        for w in widgets
        for m in w["properties"]["metrics"]
        if m[0] == "Quitclaim" and m[2:4] == ["service", "quitclaim"]
    }
    assert {"AssetsApproved", "AssetsQuarantined", "AssetsRejected", "FacesProcessed"} <= quitclaim
    source = "\n".join(
        p.read_text(encoding="utf-8")
        for p in (templates.TEMPLATE.parents[1] / "layers/core/python/quitclaim").rglob("*.py")
    )
    for metric in quitclaim - {"AssetsApproved", "AssetsQuarantined", "AssetsRejected"}:
        assert f'"{metric}"' in source, f"{metric} is on the dashboard but never emitted"
    assert 'count(f"Assets{record.status.value.capitalize()}")' in source


def test_the_bulk_lane_is_drained_by_ingest_under_its_own_lower_ceiling() -> None:
    # Given the translated template's SQS event source mappings of the ingest function
    translated = templates.translated("merged")
    mappings = {
        m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]: m["Properties"]
        for m in resources("AWS::Lambda::EventSourceMapping", translated).values()
        if m["Properties"]["FunctionName"] == {"Ref": "IngestFunction"}
    }
    # Then both lanes feed it, each with partial failures and its own ceiling
    assert set(mappings) == {"IngestQueue", "BulkQueue"}
    for mapping in mappings.values():
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mappings["IngestQueue"]["ScalingConfig"] == {
        "MaximumConcurrency": {"Ref": "IngestMaxConcurrency"}
    }
    assert mappings["BulkQueue"]["ScalingConfig"] == {
        "MaximumConcurrency": {"Ref": "BulkMaxConcurrency"}
    }
    parameters = templates.source()["Parameters"]
    assert (
        parameters["BulkMaxConcurrency"]["Default"] < parameters["IngestMaxConcurrency"]["Default"]
    )
    # And the function is told its table, its bulk queue, its share and window
    variables = props("IngestFunction")["Environment"]["Variables"]
    assert variables["QC_ADMISSION_TABLE"] == {"Ref": "AdmissionTable"}
    assert variables["QC_BULK_QUEUE_URL"] == {"Ref": "BulkQueue"}
    assert variables["QC_ADMISSION_SHARE"] == {"Fn::Sub": "${AdmissionShare}"}
    assert variables["QC_ADMISSION_WINDOW_S"] == {"Fn::Sub": "${AdmissionWindowSeconds}"}
