"""TxnOffsetCommit (key 28), v0-v3.

Offsets committed inside a transaction (consume-transform-produce). The producer must have
added the group's ``__consumer_offsets`` partition with AddOffsetsToTxn (else
INVALID_TXN_STATE; a stale epoch gets PRODUCER_FENCED, INVALID_PRODUCER_EPOCH before v3).
The group coordinator writes the offsets in a transactional batch of the producer; they become
visible to OffsetFetch when the transaction's COMMIT marker reaches the partition and are
dropped by an ABORT marker. v3 adds generation_id / member_id / group_instance_id (KIP-447),
checked when given; v3 is flexible.
"""

from __future__ import annotations

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.groups import OFFSETS_TOPIC
from seriatim.broker.groups import driver as group_driver
from seriatim.broker.handlers import REGISTRY
from seriatim.broker.transactions import driver
from seriatim.coordinator import CommitRequest, PartitionErrors
from seriatim.errors import ErrorCode
from seriatim.protocol import kio_error, make, nested, response_class


@REGISTRY.handles(28, 0, 3)
async def handle(ctx: RequestContext, request: Any) -> Any:
    version = ctx.header.api_version
    state = ctx.state
    topics = state.topics()
    groups = group_driver(state)
    wanted = [(t.name, p.partition_index) for t in request.topics for p in t.partitions]
    errors: dict[tuple[str, int], ErrorCode] = {}
    offsets = []
    for t in request.topics:
        for p in t.partitions:
            if not 0 <= p.partition_index < topics.get(t.name, 0):
                errors[(t.name, p.partition_index)] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                continue
            offsets.append((t.name, p.partition_index, p.committed_offset,
                            getattr(p, "committed_leader_epoch", -1), p.committed_metadata))
    if offsets:
        coord = groups.partition_of(request.group_id) if request.group_id else -1
        check = driver(state).verify(request.transactional_id, request.producer_id,
                                     request.producer_epoch, OFFSETS_TOPIC, coord)
        if check == ErrorCode.INVALID_PRODUCER_EPOCH:
            check = ErrorCode.PRODUCER_FENCED if version >= 3 else check
        if check != ErrorCode.NONE:
            errors.update({(t, p): check for t, p, _, _, _ in offsets})
        else:
            req = CommitRequest(
                group_id=request.group_id,
                generation_id=getattr(request, "generation_id", -1),
                member_id=getattr(request, "member_id", ""),
                group_instance_id=getattr(request, "group_instance_id", None),
                offsets=tuple(offsets),
            )
            result: PartitionErrors = await groups.call(
                groups.core.txn_commit, req, request.producer_id, request.producer_epoch)
            errors.update(result.partitions)
    resp_cls = response_class(28, version)
    topic_cls = nested(resp_cls, "topics")
    part_cls = nested(topic_cls, "partitions")
    by_topic: dict[str, list[int]] = {}
    for t, p in wanted:
        by_topic.setdefault(t, []).append(p)
    return make(resp_cls, topics=tuple(
        make(topic_cls, name=name, partitions=tuple(
            make(part_cls, partition_index=p, error_code=kio_error(errors[(name, p)]))
            for p in parts))
        for name, parts in by_topic.items()))
