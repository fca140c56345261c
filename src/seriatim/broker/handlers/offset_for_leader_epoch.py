"""OffsetForLeaderEpoch (key 23), v2-v4.

For each partition, the end offset of the requested leader epoch (the start offset of the next
larger epoch, or the log end offset for the current one) from the leader-epoch cache, and the
largest epoch <= the requested one. librdkafka sends v2+ after a leader change to detect log
truncation. A ``current_leader_epoch`` newer than ours is UNKNOWN_LEADER_EPOCH; older is
FENCED_LEADER_EPOCH. v4 is flexible.

Kafka writes the leader's epoch into the cache when it becomes leader; here the cache gets its
first entry with the first append. So a partition with no entry yet (nothing appended since it
was created or emptied) answers as if the current epoch started at its log start offset.
"""

from __future__ import annotations

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.handlers import REGISTRY
from seriatim.errors import ErrorCode
from seriatim.protocol import kio_error, make, nested, response_class


@REGISTRY.handles(23, 2, 4)
async def handle(ctx: RequestContext, request: Any) -> Any:
    state = ctx.state
    resp_cls = response_class(23, ctx.header.api_version)
    topic_cls = nested(resp_cls, "topics")
    part_cls = nested(topic_cls, "partitions")
    topics = []
    for t in request.topics:
        parts = []
        for p in t.partitions:
            code, epoch, end = _lookup(state, t.topic, p)
            parts.append(
                make(
                    part_cls,
                    partition=p.partition,
                    error_code=kio_error(code),
                    leader_epoch=epoch,
                    end_offset=end,
                )
            )
        topics.append(make(topic_cls, topic=t.topic, partitions=tuple(parts)))
    return make(resp_cls, topics=tuple(topics))


def _lookup(state: Any, topic: str, p: Any) -> tuple[ErrorCode, int, int]:
    plog = state.partition(topic, p.partition)
    if plog is None:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1, -1
    if plog.offline_reason is not None:
        return ErrorCode.KAFKA_STORAGE_ERROR, -1, -1
    current = state.leader_epoch
    if p.current_leader_epoch > current:
        return ErrorCode.UNKNOWN_LEADER_EPOCH, -1, -1
    if 0 <= p.current_leader_epoch < current:
        return ErrorCode.FENCED_LEADER_EPOCH, -1, -1
    if not plog.epoch_entries() and p.leader_epoch == current:
        return ErrorCode.NONE, current, plog.end_offset
    epoch, end = plog.end_offset_for_epoch(p.leader_epoch)
    return ErrorCode.NONE, epoch, end
