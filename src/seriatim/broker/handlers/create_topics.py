"""CreateTopics (key 19), v2-v7.

Per topic: ``num_partitions`` and ``replication_factor`` (-1 = the broker defaults, v4+), or a
manual assignment (every partition must be assigned to this node alone); ``configs`` are topic
configs by Kafka name, validated before anything is created; ``validate_only`` checks without
creating. v1+ return an error message; v5+ return the partition count, replication factor and
the topic's resulting configs; v7 returns the topic id (all-zero here). One node: a replication
factor above 1 is INVALID_REPLICATION_FACTOR, as Kafka says with fewer brokers than replicas.
"""

from __future__ import annotations

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.handlers import REGISTRY
from seriatim.errors import ErrorCode, KafkaError
from seriatim.protocol import kio_error, make, nested, response_class


@REGISTRY.handles(19, 2, 7)
async def handle(ctx: RequestContext, request: Any) -> Any:
    state = ctx.state
    version = ctx.header.api_version
    resp_cls = response_class(19, version)
    topic_cls = nested(resp_cls, "topics")
    topics = []
    seen: set[str] = set()
    for t in request.topics:
        code, message, partitions = ErrorCode.NONE, None, -1
        try:
            if t.name in seen:
                raise KafkaError(f"Topic '{t.name}' is listed twice.", ErrorCode.INVALID_REQUEST)
            seen.add(t.name)
            partitions = _partition_count(state, t)
            configs = {c.name: c.value for c in t.configs if c.value is not None}
            state.create_topic(t.name, partitions, configs, validate_only=request.validate_only)
        except KafkaError as exc:
            code, message = exc.code, str(exc)
        fields: dict[str, Any] = {
            "name": t.name,
            "error_code": kio_error(code),
            "error_message": message,
        }
        if version >= 5:
            fields.update(
                num_partitions=partitions if code == ErrorCode.NONE else -1,
                replication_factor=1 if code == ErrorCode.NONE else -1,
                configs=_result_configs(state, topic_cls, t.name, code, request.validate_only),
            )
        topics.append(make(topic_cls, **fields))
    return make(resp_cls, topics=tuple(topics))


def _partition_count(state: Any, t: Any) -> int:
    if t.assignments:
        if t.num_partitions != -1 or t.replication_factor != -1:
            raise KafkaError(
                "Both numPartitions or replicationFactor and replicasAssignments were set.",
                ErrorCode.INVALID_REQUEST,
            )
        for a in t.assignments:
            if tuple(a.broker_ids) != (state.node_id,):
                raise KafkaError(
                    f"Replica assignment {list(a.broker_ids)} names brokers "
                    f"other than {state.node_id}.",
                    ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                )
        return len(t.assignments)
    rf = (
        t.replication_factor
        if t.replication_factor != -1
        else state.config.default_replication_factor
    )
    if rf != 1:
        raise KafkaError(
            f"Replication factor: {rf} larger than available brokers: 1.",
            ErrorCode.INVALID_REPLICATION_FACTOR,
        )
    partitions = t.num_partitions if t.num_partitions != -1 else state.config.num_partitions
    if partitions <= 0:
        raise KafkaError(
            "Number of partitions must be larger than 0.", ErrorCode.INVALID_PARTITIONS
        )
    return int(partitions)


def _result_configs(
    state: Any, topic_cls: Any, name: str, code: ErrorCode, validate_only: bool
) -> tuple[Any, ...]:
    if code != ErrorCode.NONE or validate_only or name not in state.topics():
        return ()
    config_cls = nested(topic_cls, "configs")
    described = state.describe_topic_config(name)
    return tuple(
        make(
            config_cls,
            name=k,
            value=d.value,
            read_only=False,
            config_source=d.source,
            is_sensitive=False,
        )
        for k, d in described.items()
    )
