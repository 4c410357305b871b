"""DynamoDB stream event source mappings, delivered as Lambda's poller does.

DynamoDB streams are read through the emulator's DynamoDB Streams API, one
checkpoint per mapping and shard (``StartingPosition`` TRIM_HORIZON or
LATEST), as Lambda's stream poller does:

- ``FilterCriteria`` patterns are applied to each Lambda-shaped record
  first; a record no filter matches is skipped and checkpointed, never
  delivered (Lambda's event filtering; ``event_filters`` has the
  pattern subset supported);
- up to ``BatchSize`` matching records go to one invocation; on success the
  checkpoint moves past them;
- with ``ReportBatchItemFailures`` the checkpoint moves to the first
  reported ``itemIdentifier`` (a SequenceNumber) and the records from there
  are retried; an unknown identifier fails the whole batch;
- a function error (exception, timeout, bad response) retries the batch;
  with ``BisectBatchOnFunctionError`` it is split in two first (a split
  does not use up a retry, as in AWS);
- after ``MaximumRetryAttempts`` retries (-1: forever) the batch is
  discarded: a JSON invocation record goes to the ``OnFailure`` SQS
  destination, and the shard moves on.

Stream retries happen on the next poll, without Lambda's back-off delay.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from devstack.event_filters import compile_filter, filter_matches
from devstack.invocations import (
    FunctionSpec,
    InvocationError,
    RunReport,
    ShardCheckpoint,
    StreamMapping,
)
from devstack.lambda_events import batch_item_failures, iso_time, lambda_dynamodb_record
from quitclaim.bootstrap import current_clock

log = logging.getLogger(__name__)

# Runs a function from an event source: (logical id, event) -> (spec, response, error).
SourceInvoke = Callable[[str, dict[str, Any]], tuple[FunctionSpec, Any, str | None]]


def stream_mapping(
    esm: dict[str, Any], arns: dict[str, str], queue_url: Callable[[str], str]
) -> StreamMapping:
    """A DynamoDB stream mapping as the emulator lists it (``arns``: function ARN -> id)."""
    stream_arn = esm["EventSourceArn"]
    on_failure = ((esm.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
    if on_failure and not on_failure.startswith("arn:aws:sqs:"):
        # SNS, S3 and Kafka destinations exist in AWS; nothing here uses them yet.
        raise InvocationError(
            f"{arns[esm['FunctionArn']]}: OnFailure destination {on_failure} is not an SQS "
            "queue; the local runtime delivers failure records to SQS only"
        )
    filters = (esm.get("FilterCriteria") or {}).get("Filters", [])
    patterns = [f.get("Pattern", "") for f in filters]
    return StreamMapping(
        uuid=esm["UUID"],
        function=arns[esm["FunctionArn"]],
        stream_arn=stream_arn,
        table_name=stream_arn.split(":", 5)[5].split("/")[1],
        batch_size=int(esm.get("BatchSize") or 100),
        starting_position=str(esm.get("StartingPosition") or "TRIM_HORIZON"),
        report_batch_item_failures="ReportBatchItemFailures"
        in (esm.get("FunctionResponseTypes") or []),
        enabled=esm.get("State") in ("Enabled", "Enabling", "Updating"),
        maximum_retry_attempts=int(esm.get("MaximumRetryAttempts", -1)),
        bisect_on_error=bool(esm.get("BisectBatchOnFunctionError")),
        on_failure_arn=on_failure,
        on_failure_url=queue_url(on_failure) if on_failure else None,
        filters=tuple(compile_filter(p) for p in patterns),
    )


class StreamPoller:
    """Reads the mappings' streams shard by shard and hands batches to the function."""

    def __init__(self, streams: Any, sqs: Any, region: str, invoke: SourceInvoke) -> None:
        self._streams = streams
        self._sqs = sqs
        self._region = region
        self._invoke = invoke
        self._checkpoints: dict[tuple[str, str], ShardCheckpoint] = {}  # (mapping, shard)
        self._shards: dict[str, list[str]] = {}  # stream ARN -> shard ids

    def _shard_ids(self, stream_arn: str, *, refresh: bool = False) -> list[str]:
        if refresh or stream_arn not in self._shards:
            description = self._streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]
            self._shards[stream_arn] = [shard["ShardId"] for shard in description["Shards"]]
        return self._shards[stream_arn]

    def start_checkpoints(self, mapping: StreamMapping) -> None:
        """Place a new mapping at its StartingPosition (known ones keep their checkpoints)."""
        description = self._streams.describe_stream(StreamArn=mapping.stream_arn)[
            "StreamDescription"
        ]
        self._shards[mapping.stream_arn] = [s["ShardId"] for s in description["Shards"]]
        for shard in description["Shards"]:
            key = (mapping.uuid, shard["ShardId"])
            if key in self._checkpoints:
                continue
            position = int(shard["SequenceNumberRange"]["StartingSequenceNumber"])
            if mapping.starting_position == "LATEST":
                # Everything already in the shard is history for this mapping.
                for record in self._read_from(mapping.stream_arn, shard["ShardId"], position):
                    position = int(record["dynamodb"]["SequenceNumber"]) + 1
            self._checkpoints[key] = ShardCheckpoint(position=position)

    def _read_from(self, stream_arn: str, shard_id: str, position: int) -> list[dict[str, Any]]:
        iterator = self._streams.get_shard_iterator(
            StreamArn=stream_arn,
            ShardId=shard_id,
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            SequenceNumber=str(position),
        )["ShardIterator"]
        records: list[dict[str, Any]] = []
        while iterator:
            page = self._streams.get_records(ShardIterator=iterator, Limit=1000)
            records.extend(page["Records"])
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
        return records

    def poll(self, mapping: StreamMapping) -> RunReport:
        """One batch from each of the mapping's shards: invoke, then checkpoint or retry."""
        report = RunReport()
        for shard_id in self._shard_ids(mapping.stream_arn):
            key = (mapping.uuid, shard_id)
            checkpoint = self._checkpoints.get(key)
            if checkpoint is None:
                self.start_checkpoints(mapping)
                checkpoint = self._checkpoints[key]
            report.add(self._poll_shard(mapping, shard_id, checkpoint))
        return report

    def _next_records(
        self, mapping: StreamMapping, shard_id: str, checkpoint: ShardCheckpoint
    ) -> list[dict[str, Any]]:
        if checkpoint.iterator is None:
            checkpoint.iterator = self._streams.get_shard_iterator(
                StreamArn=mapping.stream_arn,
                ShardId=shard_id,
                ShardIteratorType="AT_SEQUENCE_NUMBER",
                SequenceNumber=str(checkpoint.position),
            )["ShardIterator"]
        page = self._streams.get_records(ShardIterator=checkpoint.iterator, Limit=1000)
        records: list[dict[str, Any]] = page["Records"]
        if records:
            # The iterator would move past these; the checkpoint decides what is next.
            checkpoint.iterator = None
        else:
            checkpoint.iterator = page.get("NextShardIterator")
        return records

    def _poll_shard(
        self, mapping: StreamMapping, shard_id: str, checkpoint: ShardCheckpoint
    ) -> RunReport:
        report = RunReport()
        records = self._next_records(mapping, shard_id, checkpoint)
        limit = checkpoint.segments[0] if checkpoint.segments else mapping.batch_size
        batch: list[dict[str, Any]] = []  # Lambda-shaped, matching records only
        skipped = 0  # non-matching records read after the batch's first one
        window_end = 0  # the last record read for this batch: success checkpoints past it
        for raw in records:
            record = lambda_dynamodb_record(raw, self._region, mapping.stream_arn)
            sequence = int(record["dynamodb"]["SequenceNumber"])
            if sequence < checkpoint.position:
                continue
            if mapping.filters and not any(filter_matches(p, record) for p in mapping.filters):
                if not batch:
                    checkpoint.position = sequence + 1  # filtered out: checkpointed at once
                    report.filtered += 1
                else:
                    skipped += 1
                    window_end = sequence
                continue
            batch.append(record)
            window_end = sequence
            if len(batch) >= limit:
                break
        if not batch:
            return report
        report.add(self._deliver_stream(mapping, shard_id, checkpoint, batch, skipped, window_end))
        return report

    def _deliver_stream(
        self,
        mapping: StreamMapping,
        shard_id: str,
        checkpoint: ShardCheckpoint,
        batch: list[dict[str, Any]],
        skipped: int,
        window_end: int,
    ) -> RunReport:
        spec, response, error = self._invoke(mapping.function, {"Records": batch})
        report = RunReport(invocations=1, stream_records=len(batch))
        sequences = [int(r["dynamodb"]["SequenceNumber"]) for r in batch]
        failed: set[str] | None = set()
        if error is None and mapping.report_batch_item_failures:
            failed = batch_item_failures(response, {str(s) for s in sequences})
            if failed is None:
                error = (
                    f"{spec.logical_id}: invalid batchItemFailures response {response!r}: "
                    "the whole batch is retried"
                )
        if error is None and not failed:
            checkpoint.position = window_end + 1
            checkpoint.attempts = 0
            checkpoint.segments = checkpoint.segments[1:]
            report.filtered += skipped
            return report
        if error is None:
            assert failed
            # Partial failure: done up to the first failed record; the rest is retried.
            first = min(int(f) for f in failed)
            report.errors.append(f"{spec.logical_id}: batch item failures from {first}")
            checkpoint.attempts = checkpoint.attempts + 1 if first == checkpoint.position else 1
            checkpoint.position = first
            remaining = [r for r, s in zip(batch, sequences, strict=True) if s >= first]
            checkpoint.segments = [len(remaining)]
            batch = remaining
        else:
            report.errors.append(error)
            if mapping.bisect_on_error and len(batch) > 1:
                # Split in two; a split does not use up a retry (AWS).
                half = len(batch) // 2
                checkpoint.segments = [half, len(batch) - half, *checkpoint.segments[1:]]
                return report
            checkpoint.attempts += 1
        if 0 <= mapping.maximum_retry_attempts < checkpoint.attempts:
            report.discarded += len(batch)
            self._discard(mapping, shard_id, batch, spec, checkpoint.attempts, error)
            checkpoint.position = int(batch[-1]["dynamodb"]["SequenceNumber"]) + 1
            checkpoint.attempts = 0
            checkpoint.segments = checkpoint.segments[1:]
        return report

    def _discard(
        self,
        mapping: StreamMapping,
        shard_id: str,
        batch: list[dict[str, Any]],
        spec: FunctionSpec,
        attempts: int,
        error: str | None,
    ) -> None:
        """Lambda's invocation record for discarded stream records, to the OnFailure queue."""
        first, last = batch[0]["dynamodb"], batch[-1]["dynamodb"]
        log.warning(
            "%s: giving up on %d stream record(s) %s..%s after %d attempt(s)",
            spec.logical_id,
            len(batch),
            first["SequenceNumber"],
            last["SequenceNumber"],
            attempts,
        )
        if mapping.on_failure_url is None:
            return
        response_context: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
        if error is not None:
            response_context["functionError"] = "Unhandled"
        record = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": spec.arn,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": attempts,
            },
            "responseContext": response_context,
            "version": "1.0",
            # The stack's clock (simulated time), as everything else the stack records.
            "timestamp": iso_time(current_clock().now().timestamp()),
            "DDBStreamBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": first["SequenceNumber"],
                "endSequenceNumber": last["SequenceNumber"],
                "approximateArrivalOfFirstRecord": iso_time(
                    first.get("ApproximateCreationDateTime")
                ),
                "approximateArrivalOfLastRecord": iso_time(last.get("ApproximateCreationDateTime")),
                "batchSize": len(batch),
                "streamArn": mapping.stream_arn,
            },
        }
        self._sqs.send_message(QueueUrl=mapping.on_failure_url, MessageBody=json.dumps(record))
