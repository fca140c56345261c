"""ListOffsets (key 2), v1-v7.

Per partition a timestamp: -2 = earliest (log start offset), -1 = latest (high watermark, or
the last stable offset for read_committed, v2+), -3 = the offset of the largest timestamp
(v7+, KIP-734); otherwise the first offset whose timestamp is >= the one asked (-1/-1 when
there is none). v4+ return the leader epoch. v0 (old-style offset lists) is not served.
"""

from __future__ import annotations

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.handlers import REGISTRY
from seriatim.errors import ErrorCode
from seriatim.protocol import kio_error, make, nested, response_class

EARLIEST, LATEST, MAX_TIMESTAMP = -2, -1, -3


@REGISTRY.handles(2, 1, 7)
async def handle(ctx: RequestContext, request: Any) -> Any:
    state = ctx.state
    version = ctx.header.api_version
    resp_cls = response_class(2, version)
    topic_cls = nested(resp_cls, "topics")
    part_cls = nested(topic_cls, "partitions")
    committed = getattr(request, "isolation_level", 0) == 1
    topics = []
    for topic in request.topics:
        parts = []
        for p in topic.partitions:
            code, timestamp, offset = _lookup(state, topic.name, p.partition_index, p.timestamp,
                                              committed)
            fields: dict[str, Any] = {
                "partition_index": p.partition_index,
                "error_code": kio_error(code),
                "timestamp": timestamp,
                "offset": offset,
            }
            if version >= 4:
                fields["leader_epoch"] = 0 if code == ErrorCode.NONE else -1
            parts.append(make(part_cls, **fields))
        topics.append(make(topic_cls, name=topic.name, partitions=tuple(parts)))
    return make(resp_cls, topics=tuple(topics))


def _lookup(state: Any, topic: str, partition: int, timestamp: int, committed: bool
            ) -> tuple[ErrorCode, int, int]:
    plog = state.partition(topic, partition)
    if plog is None:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1, -1
    hw = state.last_stable_offset(plog) if committed else state.high_watermark(plog)
    if timestamp == EARLIEST:
        return ErrorCode.NONE, -1, plog.start_offset
    if timestamp == LATEST:
        return ErrorCode.NONE, -1, hw
    if timestamp == MAX_TIMESTAMP:
        found = plog.max_timestamp()
        if found is None or found[1] >= hw:
            return ErrorCode.NONE, -1, -1
        return ErrorCode.NONE, found[0], found[1]
    if timestamp < 0:
        return ErrorCode.INVALID_REQUEST, -1, -1
    hit = plog.offset_for_timestamp(timestamp)
    if hit is None or hit[0] >= hw:
        return ErrorCode.NONE, -1, -1
    return ErrorCode.NONE, hit[1], hit[0]
