"""DescribeTransactions (key 65), v0 (flexible).

Per transactional id: its state (Kafka's names: Empty, Ongoing, PrepareCommit, ...), timeout,
start time (-1 when no transaction is open), producer id and epoch and the partitions of the
ongoing transaction. An unknown id gets TRANSACTIONAL_ID_NOT_FOUND.
"""

from __future__ import annotations

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.handlers import REGISTRY
from seriatim.broker.transactions import driver
from seriatim.errors import ErrorCode
from seriatim.protocol import kio_error, make, nested, response_class


@REGISTRY.handles(65, 0, 0)
async def handle(ctx: RequestContext, request: Any) -> Any:
    core = driver(ctx.state).core
    resp_cls = response_class(65, ctx.header.api_version)
    state_cls = nested(resp_cls, "transaction_states")
    topic_cls = nested(state_cls, "topics")
    states = []
    for txn_id in request.transactional_ids:
        s = core.describe(txn_id)
        if s is None:
            states.append(make(state_cls, error_code=kio_error(
                ErrorCode.TRANSACTIONAL_ID_NOT_FOUND), transactional_id=txn_id,
                transaction_state="", transaction_timeout_ms=0, transaction_start_time=-1,
                producer_id=-1, producer_epoch=-1))
            continue
        by_topic: dict[str, list[int]] = {}
        for topic, partition in s.partitions:
            by_topic.setdefault(topic, []).append(partition)
        states.append(make(
            state_cls, transactional_id=txn_id, transaction_state=s.state.kafka_name,
            transaction_timeout_ms=s.timeout_ms, transaction_start_time=s.start_ms,
            producer_id=s.producer_id, producer_epoch=s.producer_epoch,
            topics=tuple(make(topic_cls, topic=t, partitions=tuple(ps))
                         for t, ps in sorted(by_topic.items()))))
    return make(resp_cls, transaction_states=tuple(states))
