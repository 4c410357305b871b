"""The DAM's roles can reach the library and their upload prefix, nothing else."""

from __future__ import annotations

import json

from tests.conftest import REPO_ROOT

POLICIES = REPO_ROOT / "policies"


def _statements(name: str) -> list[dict]:
    return json.loads((POLICIES / name).read_text())["Statement"]


def test_dam_read_role_reads_only_the_library() -> None:
    statements = _statements("dam-read.json")
    actions = {a for s in statements for a in s["Action"]}
    resources = {s["Resource"] for s in statements}
    # Only reads; no version reads (a version pulled from the library must not stay readable)
    assert actions == {"s3:GetObject", "s3:ListBucket"}
    assert all(r.startswith("arn:aws:s3:::${LibraryBucket}") for r in resources)
    assert all(s["Effect"] == "Allow" and "*" not in s["Action"] for s in statements)


def test_dam_upload_role_writes_only_its_incoming_prefix() -> None:
    [statement] = _statements("dam-upload.json")
    assert statement["Action"] == ["s3:PutObject"]
    assert statement["Resource"].endswith("/incoming/${Tenant}/*")
