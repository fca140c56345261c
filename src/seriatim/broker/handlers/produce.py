"""Produce (key 0), served v3-v11, advertised from v0.

Produce must be advertised from v0 (pitfall 5: librdkafka before 2.11.1 silently drops
compression otherwise); v0-v2 carry old message formats that no supported client sends, and
the registry closes the connection on them. v3+ carry record batches v2 (one per partition);
v7+ allow zstd; v8+ return per-record errors and an error message; v9+ are flexible.

Per partition: the batch is validated once (header, CRC, counts, size against the topic's
``max.message.bytes``; a compressed batch is decompressed with a cap and its records walked),
then appended as one blob with its base offset rewritten in place; the log trusts the header
validated here instead of computing the CRC a second time. acks=0 gets no reply (an error
closes the connection, as Kafka does, so the client notices); acks=1 is answered once the
batch is in the log; acks=-1 (all) also waits for the group-commit fsync when
``log.flush.policy=always``.

The request comes from the hand-written decoder (``protocol/produce.py``): each partition's
records are a memoryview of the request frame, never copied on the way in. The broker releases
those views when this handler returns, so nothing here (nor the log) may keep one.

Idempotence (storage/producer_state.py): a batch with a producer id is checked against the
partition's producer state; a retry of one of the producer's last 5 batches is answered NONE
with the offsets it was first stored at (nothing is appended, but acks=all still waits for
those offsets to be durable); a gap is OUT_OF_ORDER_SEQUENCE_NUMBER, an old epoch
INVALID_PRODUCER_EPOCH. Transactional produce (``transactional_id`` set, transactional batches)
is verified with the transaction coordinator first (KIP-890 part 1, which Kafka 3.6+ does too):
the partition must have been added to the producer's ongoing transaction under the same
producer id and epoch, otherwise INVALID_TXN_STATE (or INVALID_PRODUCER_EPOCH), so a late or
zombie write can never open a transaction that no coordinator will ever end.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.handlers import REGISTRY
from seriatim.broker.state import BrokerState
from seriatim.errors import ErrorCode, KafkaError, StorageError
from seriatim.protocol import (
    ProducePartitionResult,
    ProduceRequestView,
    ProtocolError,
    encode_produce_response,
)
from seriatim.records import (
    BatchHeader,
    Compression,
    check_record_framing,
    iter_records,
    validate_batch,
)

log = logging.getLogger(__name__)


@REGISTRY.handles(0, 3, 11, advertised_min=0)
async def handle(ctx: RequestContext, request: ProduceRequestView) -> list[bytes] | None:
    state = ctx.state
    version = ctx.header.api_version
    acks = request.acks
    results: list[tuple[str, list[ProducePartitionResult]]] = []
    durable: list[tuple[ProducePartitionResult, Any, str, int]] = []

    for topic_data in request.topic_data:
        name = topic_data.name
        partition_results = []
        for pdata in topic_data.partition_data:
            if acks not in (-1, 0, 1):
                res = ProducePartitionResult(pdata.index, ErrorCode.INVALID_REQUIRED_ACKS, -1)
            else:
                res, plog = _append(state, name, pdata.index, pdata.records, version,
                                    request.transactional_id)
                if plog is not None and acks == -1:
                    durable.append((res, plog, name, pdata.index))
            partition_results.append(res)
        results.append((name, partition_results))

    if acks == 0:
        state.schedule_flush()
        if any(r.error_code for _, rs in results for r in rs):
            raise ProtocolError(
                "produce with acks=0 failed; closing the connection to tell the client"
            )
        return None
    if durable:
        outcomes = await asyncio.gather(
            *(state.wait_durable(topic, p, plog) for _, plog, topic, p in durable),
            return_exceptions=True,
        )
        for (res, _, _, _), outcome in zip(durable, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                res.error_code = ErrorCode.KAFKA_STORAGE_ERROR
                res.base_offset = -1
                res.error_message = str(outcome)
    else:
        state.schedule_flush()
    return [encode_produce_response(version, ctx.header.correlation_id, results)]


def _append(
    state: BrokerState, topic: str, partition: int, records: memoryview | None, version: int,
    transactional_id: str | None,
) -> tuple[ProducePartitionResult, Any]:
    plog = state.partition(topic, partition)
    if plog is None:
        return ProducePartitionResult(partition, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1), None
    try:
        if not records:  # null or empty
            raise KafkaError("produce request carries no record batch", ErrorCode.INVALID_RECORD)
        header = _validate(state, topic, plog, records, version)
        _check_transaction(state, topic, partition, header, transactional_id)
        # One CRC pass per batch: the log trusts the header _validate computed from these very
        # bytes with this log's max.message.bytes (the validated= contract of append_batch).
        info = plog.append_batch(records, leader_epoch=state.leader_epoch, validated=header)
    except KafkaError as exc:
        return ProducePartitionResult(partition, exc.code, -1, error_message=str(exc)), None
    except StorageError as exc:
        log.error("append to %s-%d failed: %s", topic, partition, exc)
        return ProducePartitionResult(
            partition, ErrorCode.KAFKA_STORAGE_ERROR, -1, error_message=str(exc)
        ), None
    if not info.duplicate:
        state.appended(topic, partition, plog, info)
    return (
        ProducePartitionResult(
            partition,
            ErrorCode.NONE,
            info.base_offset,
            log_append_time_ms=info.log_append_time_ms,
            log_start_offset=plog.start_offset,
        ),
        plog,
    )


def _validate(
    state: BrokerState, topic: str, plog: Any, records: memoryview, version: int
) -> BatchHeader:
    """Kafka's ProduceRequest.validateRecords + LogValidator checks that need the request;
    returns the validated header (CRC checked against the topic's max.message.bytes)."""
    config = plog.config
    header = validate_batch(records, 0, max_bytes=config.max_message_bytes)
    if header.size != len(records):
        raise KafkaError(
            "exactly one record batch per partition is allowed", ErrorCode.INVALID_RECORD
        )
    if header.is_control:
        raise KafkaError("clients may not write control batches", ErrorCode.INVALID_RECORD)
    if header.producer_id >= 0 and header.base_sequence < 0:
        raise KafkaError("an idempotent batch needs a base sequence >= 0", ErrorCode.INVALID_RECORD)
    if header.compression == Compression.ZSTD and version < 7:
        raise KafkaError("zstd needs Produce v7 or later", ErrorCode.UNSUPPORTED_COMPRESSION_TYPE)
    compacted = "compact" in config.cleanup_policy
    if header.compression != Compression.NONE or compacted:
        # Walk the records (decompressing with a cap): offset deltas must be 0..n-1, and a
        # compacted topic needs a key on every record.
        expected = 0
        for record in iter_records(records, validated=header):
            if record.offset - header.base_offset != expected:
                raise KafkaError("record offset deltas are not 0..n-1", ErrorCode.INVALID_RECORD)
            if compacted and record.key is None:
                raise KafkaError(
                    f"compacted topic '{topic}' requires a key on every record",
                    ErrorCode.INVALID_RECORD,
                )
            expected += 1
        if expected != header.record_count:
            raise KafkaError(
                "record count does not match the batch header", ErrorCode.INVALID_RECORD
            )
    else:
        check_record_framing(records, header.record_count)
    return header


def _check_transaction(state: BrokerState, topic: str, partition: int, header: BatchHeader,
                       transactional_id: str | None) -> None:
    if not header.is_transactional:
        if transactional_id is not None and header.producer_id >= 0:
            raise KafkaError("a transactional producer sent a non-transactional batch",
                             ErrorCode.INVALID_TXN_STATE)
        return
    if transactional_id is None:
        raise KafkaError("a transactional batch needs the request's transactional id",
                         ErrorCode.INVALID_TXN_STATE)
    if header.producer_id < 0:
        raise KafkaError("a transactional batch needs a producer id", ErrorCode.INVALID_RECORD)
    code = state.verify_transaction(transactional_id, header.producer_id,
                                    header.producer_epoch, topic, partition)
    if code != ErrorCode.NONE:
        raise KafkaError(f"partition {topic}-{partition} is not in an ongoing transaction of "
                         f"{transactional_id!r} (producer {header.producer_id} epoch "
                         f"{header.producer_epoch})", code)
