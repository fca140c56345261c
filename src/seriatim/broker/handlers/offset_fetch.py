"""OffsetFetch (key 9), v1-v9.

Committed offsets of a group, from the coordinator's replayed state (-1 and empty metadata
where nothing is committed; a group that does not exist has no offsets, not an error).
v1 asks for listed partitions; v2+ may ask for every committed partition (``topics`` null)
and add a top-level error; v3 throttle time; v5 ``committed_leader_epoch``; v6 flexible; v7
``require_stable`` (KIP-447: a partition whose transactional offset commit awaits its
transaction's marker is UNSTABLE_OFFSET_COMMIT, offset -1; the client retries until the
transaction ends; without the flag it gets the last stable commit); v8+ ask for several
groups at once (``groups[]``); v9 adds member id/epoch (KIP-848; ignored for classic groups).
"""

from __future__ import annotations

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.groups import driver
from seriatim.broker.handlers import REGISTRY
from seriatim.errors import ErrorCode
from seriatim.protocol import kio_error, make, nested, response_class


@REGISTRY.handles(9, 1, 9)
async def handle(ctx: RequestContext, request: Any) -> Any:
    version = ctx.header.api_version
    resp_cls = response_class(9, version)
    if version >= 8:
        group_cls = nested(resp_cls, "groups")
        topic_cls = nested(group_cls, "topics")
        return make(
            resp_cls,
            groups=tuple(
                make(
                    group_cls,
                    group_id=g.group_id,
                    topics=_topics(ctx, topic_cls, version, g.group_id, g.topics,
                                   request.require_stable),
                    error_code=kio_error(_group_error(g.group_id)),
                )
                for g in request.groups
            ),
        )
    topic_cls = nested(resp_cls, "topics")
    fields: dict[str, Any] = {
        "topics": _topics(ctx, topic_cls, version, request.group_id, request.topics,
                          getattr(request, "require_stable", False))
    }
    if version >= 2:
        fields["error_code"] = kio_error(_group_error(request.group_id))
    return make(resp_cls, **fields)


def _group_error(group_id: str) -> ErrorCode:
    return ErrorCode.NONE if group_id else ErrorCode.INVALID_GROUP_ID


def _topics(
    ctx: RequestContext, topic_cls: type[Any], version: int, group_id: str, topics: Any,
    require_stable: bool,
) -> tuple[Any, ...]:
    part_cls = nested(topic_cls, "partitions")
    wanted = None if topics is None else [(t.name, t.partition_indexes) for t in topics]
    core = driver(ctx.state).core
    found = core.fetch_offsets(group_id, wanted)
    unstable = core.unstable_offsets(group_id) if require_stable else set()
    if unstable and wanted is None:  # "all partitions" includes those only pending so far
        for tp in sorted(unstable):
            found.setdefault(tp, None)
    by_topic: dict[str, list[Any]] = {}
    for (topic, partition), stable in found.items():
        pending = (topic, partition) in unstable
        committed = None if pending else stable
        error = ErrorCode.UNSTABLE_OFFSET_COMMIT if pending else ErrorCode.NONE
        fields: dict[str, Any] = {
            "partition_index": partition,
            "committed_offset": committed.offset if committed else -1,
            "metadata": committed.metadata if committed else "",
            "error_code": kio_error(error),
        }
        if version >= 5:
            fields["committed_leader_epoch"] = committed.leader_epoch if committed else -1
        by_topic.setdefault(topic, []).append(make(part_cls, **fields))
    if wanted is not None:
        for name, _ in wanted:
            by_topic.setdefault(name, [])
    return tuple(
        make(topic_cls, name=name, partitions=tuple(parts)) for name, parts in by_topic.items()
    )
