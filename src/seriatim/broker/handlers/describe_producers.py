"""DescribeProducers (key 61), v0 (flexible).

Per partition, the producers its producer state knows (storage/producer_state.py): producer
id, epoch, last sequence, last timestamp, coordinator epoch of the last marker and the first
offset of the producer's open transaction (-1 when none). Unknown partitions get
UNKNOWN_TOPIC_OR_PARTITION.
"""

from __future__ import annotations

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.handlers import REGISTRY
from seriatim.errors import ErrorCode, StorageError
from seriatim.protocol import kio_error, make, nested, response_class


@REGISTRY.handles(61, 0, 0)
async def handle(ctx: RequestContext, request: Any) -> Any:
    resp_cls = response_class(61, ctx.header.api_version)
    topic_cls = nested(resp_cls, "topics")
    part_cls = nested(topic_cls, "partitions")
    prod_cls = nested(part_cls, "active_producers")
    topics = []
    for t in request.topics:
        parts = []
        for index in t.partition_indexes:
            plog = ctx.state.partition(t.name, index)
            try:
                entries = plog.producer_entries() if plog is not None else None
            except StorageError:
                parts.append(make(part_cls, partition_index=index,
                                  error_code=kio_error(ErrorCode.KAFKA_STORAGE_ERROR)))
                continue
            if entries is None:
                parts.append(make(part_cls, partition_index=index,
                                  error_code=kio_error(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)))
                continue
            parts.append(make(part_cls, partition_index=index, active_producers=tuple(
                make(prod_cls, producer_id=e.producer_id, producer_epoch=e.epoch,
                     last_sequence=e.last_seq, last_timestamp=e.last_timestamp_ms,
                     coordinator_epoch=e.coordinator_epoch,
                     current_txn_start_offset=e.txn_first_offset)
                for e in sorted(entries, key=lambda e: e.producer_id))))
        topics.append(make(topic_cls, name=t.name, partitions=tuple(parts)))
    return make(resp_cls, topics=tuple(topics))
