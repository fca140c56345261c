"""AddPartitionsToTxn (key 24), v0-v3.

A transactional producer names the partitions it is about to write in its ongoing transaction
(the first call starts the transaction: Empty/Complete* -> Ongoing). Errors apply to every
partition: INVALID_PRODUCER_ID_MAPPING (unknown id or another producer id), PRODUCER_FENCED
(another epoch; INVALID_PRODUCER_EPOCH before v2), CONCURRENT_TRANSACTIONS (the previous
transaction's markers are still being written; retriable). A partition of an unknown topic
gets UNKNOWN_TOPIC_OR_PARTITION and the others OPERATION_NOT_ATTEMPTED, as in Kafka. v3 is
flexible. v4+ (batched, broker-to-broker verification) are not served.
"""

from __future__ import annotations

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.handlers import REGISTRY
from seriatim.broker.transactions import driver
from seriatim.errors import ErrorCode
from seriatim.protocol import kio_error, make, nested, response_class


@REGISTRY.handles(24, 0, 3)
async def handle(ctx: RequestContext, request: Any) -> Any:
    version = ctx.header.api_version
    state = ctx.state
    topics = state.topics()
    wanted = [(t.name, p) for t in request.v3_and_below_topics for p in t.partitions]
    unknown = {(t, p) for t, p in wanted if not 0 <= p < topics.get(t, 0)}
    errors: dict[tuple[str, int], ErrorCode]
    if unknown:
        errors = {tp: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION if tp in unknown
                  else ErrorCode.OPERATION_NOT_ATTEMPTED for tp in wanted}
    else:
        txns = driver(state)
        error: ErrorCode = await txns.call(
            txns.core.add_partitions, request.v3_and_below_transactional_id,
            request.v3_and_below_producer_id, request.v3_and_below_producer_epoch, wanted)
        if error == ErrorCode.PRODUCER_FENCED and version < 2:
            error = ErrorCode.INVALID_PRODUCER_EPOCH
        errors = dict.fromkeys(wanted, error)
    resp_cls = response_class(24, version)
    topic_cls = nested(resp_cls, "results_by_topic_v3_and_below")
    part_cls = nested(topic_cls, "results_by_partition")
    by_topic: dict[str, list[int]] = {}
    for t, p in wanted:
        by_topic.setdefault(t, []).append(p)
    return make(resp_cls, results_by_topic_v3_and_below=tuple(
        make(topic_cls, name=name, results_by_partition=tuple(
            make(part_cls, partition_index=p, partition_error_code=kio_error(errors[(name, p)]))
            for p in parts))
        for name, parts in by_topic.items()))
