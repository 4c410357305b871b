"""Where a tenant's upload is on the local stack, counted in object versions.

Shared by the fault matrix and the race tests: a copy made twice shows as
two versions of one key, which a count of current objects would hide.
"""

from __future__ import annotations

from typing import Any

from quitclaim.adapters.dynamo import AssetModel
from quitclaim.bootstrap import conservation_service
from tests import inputs


class Places:
    """The stack's buckets and tables by name, and the checks on them."""

    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.s3 = stack.client("s3")
        out = stack.outputs
        self.uploads = out["UploadsBucketName"]
        self.library = out["LibraryBucketName"]
        self.quarantine = out["QuarantineBucketName"]
        self.env = stack.function_env("IngestFunction")
        self.tables = {
            name: stack.resources[f"{name}Table"] for name in ("Assets", "Consents", "Appearances")
        }

    def upload(self, tenant: str, path: str, data: bytes | None = None) -> None:
        """PUT into incoming/<tenant>/ (purpose web); the S3 event is queued, not processed."""
        self.s3.put_object(
            Bucket=self.uploads,
            Key=f"incoming/{tenant}/{path}",
            Body=inputs.small_portrait_jpeg() if data is None else data,
            Metadata={"purpose": "web"},
        )

    def versions(self, bucket_name: str, key: str) -> int:
        """Object versions under exactly ``key``: a second copy would be a second version."""
        found = self.s3.list_object_versions(Bucket=bucket_name, Prefix=key)
        return sum(1 for v in found.get("Versions", []) if v["Key"] == key)

    def where(self, tenant: str, path: str) -> list[str]:
        return [
            label
            for label, bucket_name, key in (
                ("uploads", self.uploads, f"incoming/{tenant}/{path}"),
                ("library", self.library, f"{tenant}/{path}"),
                ("quarantine", self.quarantine, f"{tenant}/{path}"),
            )
            if self.versions(bucket_name, key)
        ]

    def records(self, tenant: str, path: str) -> list[Any]:
        return list(AssetModel.scan((AssetModel.tenant == tenant) & (AssetModel.path == path)))

    def holds(self, tenant: str, cell: str = "") -> None:
        """The conservation checker over the tenant's tables and buckets."""
        report = conservation_service().check(tenant)
        assert report.holds, f"{cell}: {report.violations}"
