"""OffsetDelete (key 47), v0.

Deletes a group's committed offsets for the listed partitions (tombstones in
``__consumer_offsets``). Refused per partition with GROUP_SUBSCRIBED_TO_TOPIC while a live
consumer group subscribes to the topic; GROUP_ID_NOT_FOUND for an unknown group;
UNKNOWN_TOPIC_OR_PARTITION for a partition that does not exist.
"""

from __future__ import annotations

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.groups import driver
from seriatim.broker.handlers import REGISTRY
from seriatim.coordinator import PartitionErrors
from seriatim.errors import ErrorCode
from seriatim.protocol import kio_error, make, nested, response_class


@REGISTRY.handles(47, 0, 0)
async def handle(ctx: RequestContext, request: Any) -> Any:
    resp_cls = response_class(47, ctx.header.api_version)
    topic_cls = nested(resp_cls, "topics")
    part_cls = nested(topic_cls, "partitions")
    topics = ctx.state.topics()
    errors: dict[tuple[str, int], ErrorCode] = {}
    wanted: list[tuple[str, int]] = []
    for t in request.topics:
        for p in t.partitions:
            if 0 <= p.partition_index < topics.get(t.name, 0):
                wanted.append((t.name, p.partition_index))
            else:
                errors[(t.name, p.partition_index)] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    groups = driver(ctx.state)
    result: PartitionErrors = await groups.call(
        groups.core.delete_offsets, request.group_id, wanted
    )
    if result.error != ErrorCode.NONE:
        return make(resp_cls, error_code=kio_error(result.error))
    errors.update(result.partitions)
    return make(
        resp_cls,
        error_code=kio_error(ErrorCode.NONE),
        topics=tuple(
            make(
                topic_cls,
                name=t.name,
                partitions=tuple(
                    make(
                        part_cls,
                        partition_index=p.partition_index,
                        error_code=kio_error(errors[(t.name, p.partition_index)]),
                    )
                    for p in t.partitions
                ),
            )
            for t in request.topics
        ),
    )
