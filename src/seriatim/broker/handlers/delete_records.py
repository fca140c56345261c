"""DeleteRecords (key 21), v0-v2.

Advances a partition's log start offset to ``offset`` (-1 = the high watermark); whole
segments below it are deleted and the new start offset is checkpointed. An offset beyond the
high watermark is OFFSET_OUT_OF_RANGE. The response carries the new low watermark. v2 is
flexible.
"""

from __future__ import annotations

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.handlers import REGISTRY
from seriatim.errors import ErrorCode, StorageError
from seriatim.protocol import kio_error, make, nested, response_class


@REGISTRY.handles(21, 0, 2)
async def handle(ctx: RequestContext, request: Any) -> Any:
    state = ctx.state
    resp_cls = response_class(21, ctx.header.api_version)
    topic_cls = nested(resp_cls, "topics")
    part_cls = nested(topic_cls, "partitions")
    topics = []
    for t in request.topics:
        parts = []
        for p in t.partitions:
            code, low = _delete(state, t.name, p.partition_index, p.offset)
            parts.append(
                make(
                    part_cls,
                    partition_index=p.partition_index,
                    low_watermark=low,
                    error_code=kio_error(code),
                )
            )
        topics.append(make(topic_cls, name=t.name, partitions=tuple(parts)))
    return make(resp_cls, topics=tuple(topics))


def _delete(state: Any, topic: str, partition: int, offset: int) -> tuple[ErrorCode, int]:
    plog = state.partition(topic, partition)
    if plog is None:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1
    hw = state.high_watermark(plog)
    target = hw if offset == -1 else offset
    if target < 0 or target > hw:
        return ErrorCode.OFFSET_OUT_OF_RANGE, -1
    try:
        return ErrorCode.NONE, plog.delete_records_before(target)
    except StorageError:
        return ErrorCode.KAFKA_STORAGE_ERROR, -1
