"""OffsetCommit (key 8), v2-v9.

Each committed offset becomes an OffsetCommit record in ``__consumer_offsets``; the response
is sent once those records are durable (``flush.policy=always`` + group commit), so an
acknowledged commit survives a crash. Generation checks follow Kafka's classic coordinator:
``generation_id = -1`` with an Empty or unknown group is a simple commit from outside group
management (the group is created by the commit); a member commits with its current generation
(REBALANCE_IN_PROGRESS while the group completes a rebalance, ILLEGAL_GENERATION when stale,
UNKNOWN_MEMBER_ID when not a member, FENCED_INSTANCE_ID for a fenced static member).
Partitions of unknown topics get UNKNOWN_TOPIC_OR_PARTITION; metadata over
``offset.metadata.max.bytes`` gets OFFSET_METADATA_TOO_LARGE.

Versions: v2-v4 carry ``retention_time_ms`` (ignored: offsets.retention.minutes applies, as in
Kafka 2.1+ for group offsets); v3 throttle time; v6 ``committed_leader_epoch``; v7
``group_instance_id``; v8 flexible; v9 is the same for classic groups. v10 (topic ids) is not
served.
"""

from __future__ import annotations

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.groups import OFFSETS_TOPIC, driver
from seriatim.broker.handlers import REGISTRY
from seriatim.coordinator import CommitRequest, PartitionErrors
from seriatim.errors import ErrorCode
from seriatim.protocol import kio_error, make, nested, response_class


@REGISTRY.handles(8, 2, 9)
async def handle(ctx: RequestContext, request: Any) -> Any:
    state = ctx.state
    topics = state.topics()
    errors: dict[tuple[str, int], ErrorCode] = {}
    offsets = []
    order: list[tuple[str, list[int]]] = []
    for t in request.topics:
        indexes = []
        for p in t.partitions:
            indexes.append(p.partition_index)
            if t.name == OFFSETS_TOPIC or not 0 <= p.partition_index < topics.get(t.name, 0):
                errors[(t.name, p.partition_index)] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                continue
            offsets.append(
                (
                    t.name,
                    p.partition_index,
                    p.committed_offset,
                    getattr(p, "committed_leader_epoch", -1),
                    p.committed_metadata,
                )
            )
        order.append((t.name, indexes))
    if offsets:
        req = CommitRequest(
            group_id=request.group_id,
            generation_id=request.generation_id_or_member_epoch,
            member_id=request.member_id,
            group_instance_id=getattr(request, "group_instance_id", None),
            offsets=tuple(offsets),
        )
        groups = driver(state)
        result: PartitionErrors = await groups.call(groups.core.commit, req)
        errors.update(result.partitions)
    resp_cls = response_class(8, ctx.header.api_version)
    topic_cls = nested(resp_cls, "topics")
    part_cls = nested(topic_cls, "partitions")
    return make(
        resp_cls,
        topics=tuple(
            make(
                topic_cls,
                name=name,
                partitions=tuple(
                    make(part_cls, partition_index=i, error_code=kio_error(errors[(name, i)]))
                    for i in indexes
                ),
            )
            for name, indexes in order
        ),
    )
