"""The IAM documents in policies/, proven offline: lint, declared calls, evaluation.

Every check resolves the documents' CloudFormation intrinsics on a made-up
stack (``infra.iam.FakeStack``) and evaluates concrete requests with a small
policy evaluator (``infra.iam.evaluate``): explicit deny wins, same-account
allow from the identity or the resource policy grants, KMS needs the key
policy. The emulator enforces none of this, so this is the proof.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

from infra import iam, policy_lint
from infra.iam import Principal, Request, evaluate
from tests.unit.infra import templates

BUCKETS = ("Uploads", "Library", "Quarantine", "Documents", "Audit", "AccessLogs")
KMS_BUCKETS = ("Uploads", "Library", "Quarantine", "Documents", "Audit")
READS = ("s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "s3:GetObjectVersionTagging")
WRITES = ("s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectTagging")


@functools.cache
def stack() -> iam.FakeStack:
    return iam.fake_stack()


def doc(name: str) -> dict[str, Any]:
    resolved: dict[str, Any] = stack().resolve(iam.load_document(name))
    return resolved


def bucket(name: str) -> str:
    return stack().arn(f"{name}Bucket")


def bucket_policy(name: str) -> dict[str, Any]:
    files = {"AccessLogs": "access-logs"}
    return doc(f"buckets/{files.get(name, name.lower())}.json")


def key_arn() -> str:
    return stack().arn("DataKey")


def role(name: str, **tags: str) -> Principal:
    return Principal(arn=f"arn:aws:iam::{iam.ACCOUNT}:role/{name}", tags=tags)


DAM_READER = role("acme-dam-read", **{"quitclaim:tenant": "acme"})
DAM_UPLOADER = role("acme-dam-upload", **{"quitclaim:tenant": "acme"})


def s3(
    principal: Principal, identity: list[dict[str, Any]], action: str, arn: str, **ctx: Any
) -> str:
    name = next(b for b in BUCKETS if arn.split("/", 1)[0] == bucket(b))
    return evaluate(Request(principal, action, arn, ctx), identity, bucket_policy(name))


# ---------------------------------------------------------------- lint


def test_every_document_passes_the_linter_or_has_a_reasoned_exception() -> None:
    findings, unused = policy_lint.lint_all(stack())
    assert findings == [], "\n".join(map(str, findings))
    assert unused == [], f"exceptions that match nothing any more: {unused}"
    assert all(e.why for e in policy_lint.lint_exceptions())


def test_the_linter_catches_what_it_is_for() -> None:
    bad = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "A", "Effect": "Allow", "Action": "s3:*", "Resource": "*"},
            {"Sid": "B", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": "arn:k"},
            {"Sid": "C", "Effect": "Allow", "Action": "iam:PassRole", "Resource": "arn:r"},
            {"Sid": "C", "Effect": "Allow", "NotAction": "s3:GetObject", "Resource": "arn:b"},
        ],
    }
    rules = {(f.sid, f.rule) for f in policy_lint.lint_document("functions/x.json", bad)}
    assert {
        ("A", "wildcard-action"),
        ("A", "star-resource"),
        ("B", "kms-direct"),
        ("C", "passrole"),
        ("C", "sid"),
        ("C", "negation"),
    } <= rules


# ---------------------------------------------------------------- declared calls


def _role_documents(translated: dict[str, Any], function: str) -> list[dict[str, Any]]:
    resources = translated["Resources"]
    role_ref = resources[function]["Properties"]["Role"]
    role_id = role_ref["Fn::GetAtt"][0]
    properties = resources[role_id]["Properties"]
    # Nothing AWS-managed (AWSLambdaBasicExecutionRole & co. grant on "*").
    assert not properties.get("ManagedPolicyArns"), f"{role_id} has managed policies"
    return [p["PolicyDocument"] for p in properties.get("Policies", [])]


def test_every_function_is_declared_in_calls_yaml() -> None:
    translated = templates.translated("merged")
    functions = {
        k for k, v in translated["Resources"].items() if v["Type"] == "AWS::Lambda::Function"
    }
    assert functions == set(iam.declared_calls())


@pytest.mark.parametrize("function", sorted(iam.declared_calls()))
def test_a_role_grants_exactly_what_its_functions_calls_need(function: str) -> None:
    # Given the deployable template as CloudFormation gets it, and the fake stack
    translated = templates.translated("merged")
    fake = iam.FakeStack(templates.merged())
    spec = iam.declared_calls()[function]
    # When the role's policies and the declared calls are both made concrete
    granted: set[tuple[str, str]] = set()
    for document in _role_documents(translated, function):
        granted |= iam.resolve_pairs(fake, iam.granted_permissions(document))
    needed = iam.resolve_pairs(fake, iam.implied_permissions(spec))
    # Then nothing is granted that no call needs, and every call is covered
    assert sorted(granted - needed) == [], "granted but never called"
    assert sorted(needed - granted) == [], "called but not granted"
    # And the role's document is the one in policies/ (included, not copied)
    assert _role_documents(translated, function) == [templates_document(spec["policy"])]


def templates_document(name: str) -> dict[str, Any]:
    return iam.load_document(name)


def test_function_kms_use_is_bound_to_a_service_and_its_buckets() -> None:
    # The ingest role may decrypt through S3 only for its own buckets
    ingest = [doc("functions/ingest.json")]
    principal = role("ingest")

    def decrypt(via: str, arn: str) -> str:
        context = {"kms:ViaService": via, "kms:EncryptionContext:aws:s3:arn": arn}
        return evaluate(
            Request(principal, "kms:Decrypt", key_arn(), context), ingest, None, doc("kms-key.json")
        )

    s3_service = f"s3.{iam.REGION}.amazonaws.com"
    assert decrypt(s3_service, bucket("Uploads")) == "Allow"
    assert decrypt(s3_service, bucket("Documents")) == "ImplicitDeny"
    assert decrypt(s3_service, bucket("Audit")) == "ImplicitDeny"
    assert decrypt(f"sqs.{iam.REGION}.amazonaws.com", bucket("Uploads")) == "ImplicitDeny"


@pytest.mark.parametrize("function", sorted(iam.declared_calls()))
def test_no_function_can_touch_the_audit_or_access_log_buckets(function: str) -> None:
    identity = [doc(iam.declared_calls()[function]["policy"])]
    for name in ("Audit", "AccessLogs"):
        for action in READS + WRITES:
            arn = bucket(name) if action == "s3:ListBucket" else f"{bucket(name)}/AWSLogs/x"
            assert s3(role(function), identity, action, arn) != "Allow", (name, action)


@pytest.mark.parametrize("function", sorted(iam.declared_calls()))
def test_functions_only_append_to_the_audit_chains(function: str) -> None:
    # Given a function's role
    identity = [doc(iam.declared_calls()[function]["policy"])]
    record = f"{bucket('Audit')}/audit/acme/000000000001.json"
    # Then it may create a chain record (a put with If-None-Match: *), and
    # do nothing else with it (no read, no replace, no delete, no tagging):
    # what it appended it cannot take back
    create_only = {"s3:if-none-match": "*"}
    assert s3(role(function), identity, "s3:PutObject", record, **create_only) == "Allow"
    assert s3(role(function), identity, "s3:PutObject", record) != "Allow"
    assert s3(role(function), identity, "s3:PutObject", record, **{"s3:if-match": "e"}) != "Allow"
    # (the API reads the chain's record versions: GET /audit/events, /audit/verify)
    reads = READ_THE_CHAIN.get(function, ())
    for action in (*READS, *WRITES[1:]):
        arn = bucket("Audit") if action == "s3:ListBucket" else record
        if action in reads:
            assert s3(role(function), identity, action, arn) == "Allow", action
        else:
            assert s3(role(function), identity, action, arn) != "Allow", action


# Who reads the tenants' chains besides the operator's CLI: the API's audit routes.
READ_THE_CHAIN = {"APIHandler": ("s3:GetObjectVersion",)}


def test_only_the_api_lists_the_chain_versions_and_only_under_audit() -> None:
    identity = [doc(iam.declared_calls()["APIHandler"]["policy"])]
    audit = bucket("Audit")
    api = role("APIHandler")
    # The API lists the chains' versions, under audit/ only (not the CloudTrail logs)
    assert s3(api, identity, "s3:ListBucketVersions", audit, **{"s3:prefix": "audit/acme/"}) == (
        "Allow"
    )
    assert s3(api, identity, "s3:ListBucketVersions", audit, **{"s3:prefix": "AWSLogs/"}) != (
        "Allow"
    )
    assert s3(api, identity, "s3:GetObjectVersion", f"{audit}/AWSLogs/x") != "Allow"
    # And no other function may list them at all
    for function in sorted(set(iam.declared_calls()) - {"APIHandler"}):
        other = [doc(iam.declared_calls()[function]["policy"])]
        listing = s3(
            role(function), other, "s3:ListBucketVersions", audit, **{"s3:prefix": "audit/"}
        )
        assert listing != "Allow", function


# ---------------------------------------------------------------- the DAM's roles


def test_dam_reader_reads_its_tenants_published_images() -> None:
    identity = [doc("roles/dam-read.json")]
    library = bucket("Library")
    assert s3(DAM_READER, identity, "s3:GetObject", f"{library}/acme/2026/a.jpg") == "Allow"
    listing = s3(DAM_READER, identity, "s3:ListBucket", library, **{"s3:prefix": "acme/2026/"})
    assert listing == "Allow"


@pytest.mark.parametrize("name", [b for b in BUCKETS if b != "Library"])
def test_dam_reader_cannot_read_any_other_bucket(name: str) -> None:
    identity = [doc("roles/dam-read.json")]
    target = bucket(name)
    for key in ("acme/a.jpg", "incoming/acme/a.jpg", "rejected/acme/a.jpg", "AWSLogs/x"):
        for action in READS + WRITES:
            arn = target if action == "s3:ListBucket" else f"{target}/{key}"
            ctx = {"s3:prefix": "acme/"} if action == "s3:ListBucket" else {}
            assert s3(DAM_READER, identity, action, arn, **ctx) != "Allow", (name, action, key)


def test_dam_reader_reads_the_clearance_tags_of_its_tenants_images_only() -> None:
    # Given the DAM's read role (clearance per channel: object tags, docs/channels.md)
    identity = [doc("roles/dam-read.json")]
    library = bucket("Library")
    # Then it reads the tags of its tenant's current library objects
    assert s3(DAM_READER, identity, "s3:GetObjectTagging", f"{library}/acme/a.jpg") == "Allow"
    # and not another tenant's, not an old version's, and it cannot change them
    assert s3(DAM_READER, identity, "s3:GetObjectTagging", f"{library}/globex/a.jpg") != "Allow"
    versioned = s3(DAM_READER, identity, "s3:GetObjectVersionTagging", f"{library}/acme/a.jpg")
    assert versioned != "Allow"
    assert s3(DAM_READER, identity, "s3:PutObjectTagging", f"{library}/acme/a.jpg") != "Allow"
    for name in ("Quarantine", "Uploads"):
        arn = f"{bucket(name)}/acme/a.jpg"
        assert s3(DAM_READER, identity, "s3:GetObjectTagging", arn) != "Allow", name


@pytest.mark.parametrize(
    "function", ["IngestFunction", "RecheckFunction", "ExpiryFunction", "APIHandler"]
)
def test_functions_that_place_or_redecide_write_clearance_tags(function: str) -> None:
    # Given a function that places images or re-decides them after a consent change
    spec = iam.declared_calls()[function]
    identity = [doc(spec["policy"])]
    # Then its declared calls name the tagging, and its role allows it in both places
    assert any(line.startswith("s3:PutObjectTagging ") for line in spec["calls"])
    for name in ("Library", "Quarantine"):
        arn = f"{bucket(name)}/acme/a.jpg"
        assert s3(role(function), identity, "s3:PutObjectTagging", arn) == "Allow", name


def test_dam_reader_is_held_to_its_tenant_and_to_current_versions() -> None:
    identity = [doc("roles/dam-read.json")]
    library = bucket("Library")
    other = s3(DAM_READER, identity, "s3:GetObject", f"{library}/globex/a.jpg")
    assert other == "ImplicitDeny"
    assert s3(DAM_READER, identity, "s3:ListBucket", library, **{"s3:prefix": "globex/"}) != "Allow"
    # A version pulled from the library must not stay readable by version id
    version = s3(DAM_READER, identity, "s3:GetObjectVersion", f"{library}/acme/a.jpg")
    assert version == "ImplicitDeny"
    for action in WRITES:
        assert s3(DAM_READER, identity, action, f"{library}/acme/a.jpg") != "Allow"
    # A role without the tenant tag gets nothing (no "${...}" matches everything)
    untagged = role("someone")
    assert s3(untagged, identity, "s3:GetObject", f"{library}/acme/a.jpg") == "ImplicitDeny"
    assert s3(untagged, identity, "s3:GetObject", f"{library}//a.jpg") == "ImplicitDeny"


def test_dam_reader_decrypts_library_objects_only_through_s3() -> None:
    identity = [doc("roles/dam-read.json")]

    def decrypt(arn: str, via: str = f"s3.{iam.REGION}.amazonaws.com") -> str:
        context = {"kms:ViaService": via, "kms:EncryptionContext:aws:s3:arn": arn}
        request = Request(DAM_READER, "kms:Decrypt", key_arn(), context)
        return evaluate(request, identity, None, doc("kms-key.json"))

    assert decrypt(bucket("Library")) == "Allow"  # bucket keys: the context is the bucket
    assert decrypt(f"{bucket('Library')}/acme/a.jpg") == "Allow"
    for name in ("Quarantine", "Uploads", "Documents", "Audit"):
        assert decrypt(bucket(name)) == "ImplicitDeny", name
    assert decrypt(bucket("Library"), via=f"dynamodb.{iam.REGION}.amazonaws.com") != "Allow"


def test_dam_uploader_puts_into_its_incoming_prefix_only() -> None:
    identity = [doc("roles/dam-upload.json")]
    uploads = bucket("Uploads")
    assert s3(DAM_UPLOADER, identity, "s3:PutObject", f"{uploads}/incoming/acme/a.jpg") == "Allow"
    for arn in (
        f"{uploads}/incoming/globex/a.jpg",
        f"{uploads}/acme/a.jpg",
        f"{bucket('Library')}/acme/a.jpg",
        f"{bucket('Quarantine')}/acme/a.jpg",
    ):
        assert s3(DAM_UPLOADER, identity, "s3:PutObject", arn) != "Allow", arn
    for action in READS:
        arn = uploads if action == "s3:ListBucket" else f"{uploads}/incoming/acme/a.jpg"
        assert s3(DAM_UPLOADER, identity, action, arn) != "Allow", action


# ---------------------------------------------------------------- bucket policies

ADMIN = role("administrator")
# An identity policy that allows everything on S3: only the bucket policy can refuse.
EVERYTHING = [
    {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "All", "Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
]


@pytest.mark.parametrize("name", BUCKETS)
def test_every_bucket_denies_requests_without_tls(name: str) -> None:
    target = bucket(name)
    for action, arn in (
        ("s3:GetObject", f"{target}/a"),
        ("s3:PutObject", f"{target}/a"),
        ("s3:ListBucket", target),
        ("s3:DeleteObject", f"{target}/a"),
    ):
        insecure = {"aws:SecureTransport": "false"}
        assert s3(ADMIN, EVERYTHING, action, arn, **insecure) == "Deny", action
        old_tls = {"s3:TlsVersion": "1.1"}
        assert s3(ADMIN, EVERYTHING, action, arn, **old_tls) == "Deny", action
        assert s3(ADMIN, EVERYTHING, action, arn, **{"s3:TlsVersion": "1.3"}) == "Allow"


@pytest.mark.parametrize("name", KMS_BUCKETS)
def test_every_data_bucket_denies_puts_not_under_the_stack_key(name: str) -> None:
    arn = f"{bucket(name)}/incoming/acme/a.jpg"
    sse = "s3:x-amz-server-side-encryption"
    key_id = "s3:x-amz-server-side-encryption-aws-kms-key-id"
    denied = [
        {sse: "AES256"},  # SSE-S3 instead of the stack's key
        {sse: "aws:kms:dsse"},
        {sse: "aws:kms"},  # without a key id S3 may pick the AWS-managed aws/s3 key
        {sse: "aws:kms", key_id: f"arn:aws:kms:{iam.REGION}:999999999999:key/foreign"},
        {"s3:x-amz-server-side-encryption-customer-algorithm": "AES256"},  # SSE-C
    ]
    for context in denied:
        assert s3(ADMIN, EVERYTHING, "s3:PutObject", arn, **context) == "Deny", context
    # The stack's key, named, or no header at all (the bucket default applies it)
    assert (
        s3(ADMIN, EVERYTHING, "s3:PutObject", arn, **{sse: "aws:kms", key_id: key_arn()}) == "Allow"
    )
    assert s3(ADMIN, EVERYTHING, "s3:PutObject", arn) == "Allow"
    default = templates.source()["Resources"][f"{name}Bucket"]["Properties"]["BucketEncryption"]
    [rule] = default["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": ["DataKey", "Arn"]},
    }


def test_the_access_log_bucket_takes_sse_s3_only() -> None:
    arn = f"{bucket('AccessLogs')}/library/2026-01-01"
    sse = "s3:x-amz-server-side-encryption"
    assert s3(ADMIN, EVERYTHING, "s3:PutObject", arn, **{sse: "aws:kms"}) == "Deny"
    ssec = {"s3:x-amz-server-side-encryption-customer-algorithm": "AES256"}
    assert s3(ADMIN, EVERYTHING, "s3:PutObject", arn, **ssec) == "Deny"
    assert s3(ADMIN, EVERYTHING, "s3:PutObject", arn, **{sse: "AES256"}) == "Allow"


def test_the_audit_bucket_refuses_to_replace_a_chain_record_even_to_an_admin() -> None:
    # Given a principal allowed everything on S3 (an operator, a leaked role)
    record = f"{bucket('Audit')}/audit/acme/000000000001.json"
    # Then it may only create chain records: a put that could replace one is denied
    assert s3(ADMIN, EVERYTHING, "s3:PutObject", record) == "Deny"
    assert s3(ADMIN, EVERYTHING, "s3:PutObject", record, **{"s3:if-match": "etag"}) == "Deny"
    assert s3(ADMIN, EVERYTHING, "s3:PutObject", record, **{"s3:if-none-match": "*"}) == "Allow"
    # And the CloudTrail part of the bucket (AWSLogs/) is not concerned
    assert s3(ADMIN, EVERYTHING, "s3:PutObject", f"{bucket('Audit')}/AWSLogs/x") == "Allow"


@pytest.mark.parametrize("name", BUCKETS)
def test_no_bucket_policy_allows_the_public_or_another_account(name: str) -> None:
    policy = bucket_policy(name)
    stranger = Principal(arn="arn:aws:iam::999999999999:role/x", account="999999999999")
    target = bucket(name)
    for action in READS + WRITES:
        arn = target if action == "s3:ListBucket" else f"{target}/a"
        assert evaluate(Request(stranger, action, arn), [], policy) != "Allow"
    for statement in iam.statements(policy):
        if statement["Effect"] == "Allow":
            # Only AWS services delivering logs, each bound to this stack's source
            assert set(statement["Principal"]) == {"Service"}, statement["Sid"]
            assert {"aws:SourceArn", "aws:SourceAccount"} & {
                key for block in statement["Condition"].values() for key in block
            }, statement["Sid"]


def test_services_deliver_logs_only_for_this_stack() -> None:
    cloudtrail = Principal(service="cloudtrail.amazonaws.com")
    trail = f"arn:aws:cloudtrail:{iam.REGION}:{iam.ACCOUNT}:trail/quitclaim-{iam.STAGE}-audit"
    arn = f"{bucket('Audit')}/AWSLogs/{iam.ACCOUNT}/CloudTrail/x.json.gz"
    policy = bucket_policy("Audit")
    ctx = {"aws:SourceArn": trail, "s3:x-amz-acl": "bucket-owner-full-control"}
    kms = {
        "s3:x-amz-server-side-encryption": "aws:kms",
        "s3:x-amz-server-side-encryption-aws-kms-key-id": key_arn(),
    }
    assert evaluate(Request(cloudtrail, "s3:PutObject", arn, {**ctx, **kms}), [], policy) == "Allow"
    other = {**ctx, "aws:SourceArn": trail.replace(iam.STAGE, "other")}
    assert evaluate(Request(cloudtrail, "s3:PutObject", arn, other), [], policy) != "Allow"
    logging = Principal(service="logging.s3.amazonaws.com")
    source = {"aws:SourceArn": bucket("Library"), "aws:SourceAccount": iam.ACCOUNT}
    log_arn = f"{bucket('AccessLogs')}/library/x"
    assert (
        evaluate(Request(logging, "s3:PutObject", log_arn, source), [], bucket_policy("AccessLogs"))
        == "Allow"
    )
    foreign = {**source, "aws:SourceAccount": "999999999999"}
    assert (
        evaluate(
            Request(logging, "s3:PutObject", log_arn, foreign), [], bucket_policy("AccessLogs")
        )
        != "Allow"
    )


def test_the_key_policy_grants_nobody_outside_the_account_and_services_only_theirs() -> None:
    policy = doc("kms-key.json")
    stranger = Principal(arn="arn:aws:iam::999999999999:role/x", account="999999999999")
    assert evaluate(Request(stranger, "kms:Decrypt", key_arn()), [], None, policy) != "Allow"
    # An account role without an IAM grant gets nothing from the key policy alone
    assert evaluate(Request(role("nobody"), "kms:Decrypt", key_arn()), [], None, policy) != "Allow"
    logs = Principal(service=f"logs.{iam.REGION}.amazonaws.com")
    own = f"arn:aws:logs:{iam.REGION}:{iam.ACCOUNT}:log-group:/aws/lambda/quitclaim-{iam.STAGE}-api"
    context = {"kms:EncryptionContext:aws:logs:arn": own}
    assert (
        evaluate(Request(logs, "kms:GenerateDataKey", key_arn(), context), [], None, policy)
        == "Allow"
    )
    other = {"kms:EncryptionContext:aws:logs:arn": own.replace("quitclaim", "someone-else")}
    assert (
        evaluate(Request(logs, "kms:GenerateDataKey", key_arn(), other), [], None, policy)
        != "Allow"
    )
