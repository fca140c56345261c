"""CreateTopics (key 19), v2-v7.

Per topic: ``num_partitions`` and ``replication_factor`` (-1 = the broker defaults, v4+), or a
manual assignment (every partition must be assigned to this node alone); ``configs`` are topic
configs by Kafka name, validated before anything is created; ``validate_only`` checks without
creating. v1+ return an error message; v5+ return the partition count, replication factor and
the topic's resulting configs; v7 returns the topic id (all-zero here). One node: a replication
factor above 1 is INVALID_REPLICATION_FACTOR, as Kafka says with fewer brokers than replicas.
A config with a null value is INVALID_CONFIG; a name listed twice in one request gets
INVALID_REQUEST (once) and nothing is created for it, as in Kafka.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.handlers import REGISTRY
from seriatim.errors import ErrorCode, KafkaError, StorageError
from seriatim.protocol import kio_error, make, nested, response_class

log = logging.getLogger(__name__)


@REGISTRY.handles(19, 2, 7)
async def handle(ctx: RequestContext, request: Any) -> Any:
    state = ctx.state
    version = ctx.header.api_version
    resp_cls = response_class(19, version)
    topic_cls = nested(resp_cls, "topics")
    topics = []
    counts = Counter(t.name for t in request.topics)
    reported: set[str] = set()
    for t in request.topics:
        code, message, partitions = ErrorCode.NONE, None, -1
        if t.name in reported:
            continue  # a duplicate already answered: one result per name
        try:
            if counts[t.name] > 1:
                reported.add(t.name)
                raise KafkaError(f"Topic '{t.name}' is listed twice.", ErrorCode.INVALID_REQUEST)
            partitions = _partition_count(state, t)
            configs = _configs(t)
            state.create_topic(t.name, partitions, configs, validate_only=request.validate_only)
        except KafkaError as exc:
            code, message = exc.code, str(exc)
        except (StorageError, OSError) as exc:
            log.error("creating topic %s failed: %s", t.name, exc)
            code, message = ErrorCode.KAFKA_STORAGE_ERROR, str(exc)
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


def _configs(t: Any) -> dict[str, str]:
    configs: dict[str, str] = {}
    for c in t.configs:
        if c.value is None:
            raise KafkaError(
                f"Null value not supported for topic config: {c.name}", ErrorCode.INVALID_CONFIG
            )
        if c.name in configs:
            raise KafkaError(
                f"Topic config {c.name} is listed twice.", ErrorCode.INVALID_CONFIG
            )
        configs[c.name] = c.value
    return configs


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
    if rf <= 0:
        raise KafkaError(
            "Replication factor must be larger than 0, or -1 to use the default value.",
            ErrorCode.INVALID_REPLICATION_FACTOR,
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
