"""``RequestLog`` on the requests table: data-subject requests, one partition per tenant."""

from __future__ import annotations

from datetime import UTC, datetime

from pynamodb.expressions.condition import Condition

from quitclaim.adapters.dynamo.plumbing import dependency
from quitclaim.adapters.dynamo.tables import RequestModel
from quitclaim.domain.rights import DataRequest, RequestKind


def _request_sk(kind: str, at: datetime, request_id: str = "") -> str:
    return f"{kind}#{at.astimezone(UTC).isoformat()}#{request_id}"


def _request_from(item: RequestModel) -> DataRequest:
    return DataRequest(
        tenant=item.tenant,
        request_id=item.request_id,
        kind=RequestKind(item.kind),
        at=item.at,
        actor=item.actor,
        subject_id=item.subject_id,
        detail=dict(item.detail or {}),
    )


class DynamoRequests:
    """RequestLog on the requests table (one partition per tenant)."""

    def record(self, request: DataRequest) -> None:
        item = RequestModel(
            request.tenant,
            _request_sk(request.kind.value, request.at, request.request_id),
            request_id=request.request_id,
            kind=request.kind.value,
            at=request.at,
            actor=request.actor,
            subject_id=request.subject_id,
            detail=request.detail,
        )
        with dependency("request log write"):
            item.save(condition=RequestModel.sk.does_not_exist())

    def between(
        self,
        tenant: str,
        kind: RequestKind | None,
        since: datetime | None,
        until: datetime | None,
    ) -> list[DataRequest]:
        """The tenant's requests (of one kind) between two moments, oldest first."""
        condition: Condition | None = None
        if kind is not None:
            low = _request_sk(kind.value, since) if since else f"{kind.value}#"
            high = _request_sk(kind.value, until) if until else f"{kind.value}#~"
            condition = RequestModel.sk.between(low, high)
        with dependency("request log query"):
            found = [_request_from(i) for i in RequestModel.query(tenant, condition)]
        return sorted(
            (
                r
                for r in found
                if (since is None or r.at >= since) and (until is None or r.at <= until)
            ),
            key=lambda r: r.at,
        )

    def for_subject(self, tenant: str, subject_id: str) -> list[DataRequest]:
        with dependency("request log query"):
            found = [
                _request_from(i)
                for i in RequestModel.query(
                    tenant, filter_condition=RequestModel.subject_id == subject_id
                )
            ]
        return sorted(found, key=lambda r: r.at)
