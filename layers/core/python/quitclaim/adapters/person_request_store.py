"""Storage of a person's own requests (DynamoDB) and their export links (S3).

Both item kinds live in the requests table, outside the tenant's data-request
log partition (``{tenant}``), so that log reads exactly as before:

- a request: ``tenant`` = ``{tenant}#person``, ``sk`` = ``req#{request_id}``;
- an officer reminder: ``tenant`` = ``person-due#{YYYY-MM-DD}``, ``sk`` =
  ``{tenant}#{request_id}#{days}``: the daily run reads one day's partition
  (like the consents' by-expiry-day index), the tenant leading each sort key;
- a sweep (the daily deletion of an unverified request or an answered one's
  export ZIPs): ``tenant`` = ``person-sweep#{YYYY-MM-DD}``, ``sk`` =
  ``{tenant}#{request_id}#{what}``, deleted once done.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError
from pynamodb.exceptions import PutError, PynamoDBException, UpdateError

from quitclaim.adapters.dynamo.tables import PersonRequestModel
from quitclaim.config import Settings
from quitclaim.domain.errors import DependencyFailed
from quitclaim.domain.person_requests import PersonRequest

DUE = "person-due#"
SWEEP = "person-sweep#"


def bind(settings: Settings) -> None:
    """Point the model at this container's requests table (as ``bind_models`` does)."""
    meta: Any = PersonRequestModel.Meta
    bound = (settings.requests_table, settings.region, settings.endpoint_url)
    if (meta.table_name, meta.region, getattr(meta, "host", None)) != bound:
        meta.table_name, meta.region, meta.host = bound
        PersonRequestModel._connection = None


def _pk(tenant: str) -> str:
    return f"{tenant}#person"


def _from(item: PersonRequestModel, tenant: str) -> PersonRequest:
    return PersonRequest(
        tenant=tenant,
        request_id=item.request_id or "",
        kind=item.kind or "",
        email=item.email or "",
        received_at=item.received_at or datetime.min,
        status=item.status or "unverified",
        verified_at=item.verified_at,
        deadline=item.deadline,
        subject_ids=tuple(str(s) for s in item.subject_ids or ()),
        detail=dict(item.detail or {}),
    )


def _item(request: PersonRequest) -> PersonRequestModel:
    return PersonRequestModel(
        _pk(request.tenant),
        f"req#{request.request_id}",
        request_id=request.request_id,
        kind=request.kind,
        email=request.email,
        received_at=request.received_at,
        status=request.status,
        verified_at=request.verified_at,
        deadline=request.deadline,
        subject_ids=list(request.subject_ids) or None,
        detail=dict(request.detail),
    )


class DynamoPersonRequests:
    """``PersonRequestStore`` on the requests table."""

    def create(self, request: PersonRequest) -> None:
        try:
            _item(request).save(condition=PersonRequestModel.sk.does_not_exist())
        except PynamoDBException as exc:
            raise DependencyFailed(f"DynamoDB person request write failed: {exc}") from exc

    def get(self, tenant: str, request_id: str) -> PersonRequest | None:
        try:
            item = PersonRequestModel.get(_pk(tenant), f"req#{request_id}")
        except PersonRequestModel.DoesNotExist:
            return None
        except PynamoDBException as exc:
            raise DependencyFailed(f"DynamoDB person request read failed: {exc}") from exc
        return _from(item, tenant)

    def mark_verified(self, request: PersonRequest) -> bool:
        try:
            _item(request).save(condition=PersonRequestModel.status == "unverified")
        except PutError as exc:
            if _conditional(exc):
                return False
            raise DependencyFailed(f"DynamoDB person request write failed: {exc}") from exc
        return True

    def update(self, request: PersonRequest) -> None:
        try:
            _item(request).save()
        except PynamoDBException as exc:
            raise DependencyFailed(f"DynamoDB person request write failed: {exc}") from exc

    def verified(self, tenant: str) -> list[PersonRequest]:
        try:
            found = PersonRequestModel.query(
                _pk(tenant),
                PersonRequestModel.sk.startswith("req#"),
                filter_condition=PersonRequestModel.status != "unverified",
            )
            return [_from(i, tenant) for i in found]
        except PynamoDBException as exc:
            raise DependencyFailed(f"DynamoDB person request query failed: {exc}") from exc

    def add_reminder(self, day: str, tenant: str, request_id: str, days_before: int) -> None:
        try:
            PersonRequestModel(DUE + day, f"{tenant}#{request_id}#{days_before}", sent=False).save()
        except PynamoDBException as exc:
            raise DependencyFailed(f"DynamoDB reminder write failed: {exc}") from exc

    def reminders_on(self, day: str) -> list[tuple[str, str, int]]:
        try:
            found = list(PersonRequestModel.query(DUE + day))
        except PynamoDBException as exc:
            raise DependencyFailed(f"DynamoDB reminder query failed: {exc}") from exc
        due = []
        for item in found:
            if item.sent:
                continue
            tenant, request_id, days = item.sk.rsplit("#", 2)
            due.append((tenant, request_id, int(days)))
        return due

    def claim_reminder(self, day: str, tenant: str, request_id: str, days_before: int) -> bool:
        item = PersonRequestModel(DUE + day, f"{tenant}#{request_id}#{days_before}")
        try:
            item.update(
                actions=[PersonRequestModel.sent.set(True)],
                condition=PersonRequestModel.sent == False,  # noqa: E712 (a DynamoDB condition)
            )
        except UpdateError as exc:
            if _conditional(exc):
                return False
            raise DependencyFailed(f"DynamoDB reminder claim failed: {exc}") from exc
        return True

    def release_reminder(self, day: str, tenant: str, request_id: str, days_before: int) -> None:
        item = PersonRequestModel(DUE + day, f"{tenant}#{request_id}#{days_before}")
        try:
            item.update(actions=[PersonRequestModel.sent.set(False)])
        except PynamoDBException as exc:
            raise DependencyFailed(f"DynamoDB reminder release failed: {exc}") from exc

    def delete(self, tenant: str, request_id: str) -> None:
        try:
            PersonRequestModel(_pk(tenant), f"req#{request_id}").delete()
        except PynamoDBException as exc:
            raise DependencyFailed(f"DynamoDB person request delete failed: {exc}") from exc

    def add_sweep(self, day: str, tenant: str, request_id: str, what: str) -> None:
        try:
            PersonRequestModel(SWEEP + day, f"{tenant}#{request_id}#{what}").save()
        except PynamoDBException as exc:
            raise DependencyFailed(f"DynamoDB sweep write failed: {exc}") from exc

    def sweeps_on(self, day: str) -> list[tuple[str, str, str]]:
        try:
            found = list(PersonRequestModel.query(SWEEP + day))
        except PynamoDBException as exc:
            raise DependencyFailed(f"DynamoDB sweep query failed: {exc}") from exc
        due = []
        for item in found:
            tenant, request_id, what = item.sk.rsplit("#", 2)
            due.append((tenant, request_id, what))
        return due

    def drop_sweep(self, day: str, tenant: str, request_id: str, what: str) -> None:
        try:
            PersonRequestModel(SWEEP + day, f"{tenant}#{request_id}#{what}").delete()
        except PynamoDBException as exc:
            raise DependencyFailed(f"DynamoDB sweep delete failed: {exc}") from exc


def _conditional(exc: PynamoDBException) -> bool:
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"


class S3ExportLinks:
    """The export ZIP in the documents bucket (encrypted, private), and a presigned GET.

    The link's lifetime is capped by the signing credentials: a Lambda role's
    session may end before ``days`` (docs/person-pages.md).
    """

    def __init__(self, client: Any, *, bucket: str, days: int = 7) -> None:
        self._s3 = client
        self._bucket = bucket
        self._seconds = min(days * 86400, 7 * 86400)  # SigV4's longest

    def publish(self, tenant: str, request_id: str, filename: str, data: bytes) -> str:
        key = f"exports/{tenant}/{request_id}/{filename}"
        try:
            self._s3.put_object(
                Bucket=self._bucket, Key=key, Body=data, ContentType="application/zip"
            )
            url: str = self._s3.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self._bucket,
                    "Key": key,
                    "ResponseContentDisposition": f'attachment; filename="{filename}"',
                },
                ExpiresIn=self._seconds,
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "unknown")
            raise DependencyFailed(f"S3 export write failed: {code}") from exc
        return url

    def remove(self, tenant: str, request_id: str) -> int:
        # The bucket is versioned: every version goes, not just the newest
        # (a delete marker would leave the personal data behind it).
        prefix = f"exports/{tenant}/{request_id}/"
        try:
            listed = self._s3.list_object_versions(Bucket=self._bucket, Prefix=prefix)
            found = [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]
            for version in found:
                self._s3.delete_object(
                    Bucket=self._bucket, Key=version["Key"], VersionId=version["VersionId"]
                )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "unknown")
            raise DependencyFailed(f"S3 export delete failed: {code}") from exc
        return len({v["Key"] for v in listed.get("Versions", [])})
