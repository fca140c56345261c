"""DescribeConfigs (key 32), v1-v4.

Resources: topics (type 2) and this broker (type 4, named by its node id; "" names the
cluster-wide dynamic defaults, of which there are none). Each config has its value, source
(v1+: DYNAMIC_TOPIC_CONFIG 1, STATIC_BROKER_CONFIG 4, DEFAULT_CONFIG 5) and, when asked,
synonyms; v3+ add the config type and documentation (null). v4 is flexible. Sensitive broker
values (passwords) are returned as null with ``is_sensitive``. Broker configs are read-only:
seriatim does not change broker configs at run time.
"""

from __future__ import annotations

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.handlers import REGISTRY
from seriatim.errors import ErrorCode
from seriatim.protocol import kio_error, make, nested, response_class

TOPIC, BROKER = 2, 4

# Kafka's ConfigType codes for DescribeConfigs v3+.
BOOLEAN, STRING, INT, LONG, DOUBLE, LIST = 1, 2, 3, 5, 6, 7
_TYPES = {
    "cleanup.policy": LIST,
    "compression.type": STRING,
    "delete.retention.ms": LONG,
    "file.delete.delay.ms": LONG,
    "flush.messages": LONG,
    "flush.ms": LONG,
    "flush.policy": STRING,
    "index.interval.bytes": INT,
    "max.compaction.lag.ms": LONG,
    "max.message.bytes": INT,
    "message.timestamp.type": STRING,
    "min.cleanable.dirty.ratio": DOUBLE,
    "min.compaction.lag.ms": LONG,
    "min.insync.replicas": INT,
    "preallocate": BOOLEAN,
    "retention.bytes": LONG,
    "retention.ms": LONG,
    "segment.bytes": INT,
    "segment.index.bytes": INT,
    "segment.jitter.ms": LONG,
    "segment.ms": LONG,
    "unclean.leader.election.enable": BOOLEAN,
    "follower.replication.throttled.replicas": LIST,
    "leader.replication.throttled.replicas": LIST,
}
#: Topic configs whose value is a comma-separated list (IncrementalAlterConfigs APPEND/SUBTRACT).
LIST_CONFIGS = frozenset(name for name, kind in _TYPES.items() if kind == LIST)


@REGISTRY.handles(32, 1, 4)
async def handle(ctx: RequestContext, request: Any) -> Any:
    version = ctx.header.api_version
    resp_cls = response_class(32, version)
    result_cls = nested(resp_cls, "results")
    entry_cls = nested(result_cls, "configs")
    synonym_cls = nested(entry_cls, "synonyms")
    results = []
    for res in request.resources:
        code, message, entries = _describe(ctx, res)
        wanted = set(res.configuration_keys) if res.configuration_keys is not None else None
        configs = []
        for name, value, source, read_only, sensitive, synonyms in entries:
            if wanted is not None and name not in wanted:
                continue
            fields: dict[str, Any] = {
                "name": name,
                "value": None if sensitive else value,
                "read_only": read_only,
                "config_source": source,
                "is_sensitive": sensitive,
                "synonyms": tuple(
                    make(synonym_cls, name=n, value=None if sensitive else v, source=src)
                    for n, v, src in synonyms
                )
                if request.include_synonyms
                else (),
            }
            if version >= 3:
                fields["config_type"] = _TYPES.get(name, STRING)
                fields["documentation"] = None
            configs.append(make(entry_cls, **fields))
        results.append(
            make(
                result_cls,
                error_code=kio_error(code),
                error_message=message,
                resource_type=res.resource_type,
                resource_name=res.resource_name,
                configs=tuple(configs),
            )
        )
    return make(resp_cls, results=tuple(results))


Entry = tuple[str, str | None, int, bool, bool, tuple[tuple[str, str | None, int], ...]]


def _describe(ctx: RequestContext, res: Any) -> tuple[ErrorCode, str | None, list[Entry]]:
    state = ctx.state
    if res.resource_type == TOPIC:
        if res.resource_name not in state.topics():
            return (
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                f"Topic '{res.resource_name}' does not exist.",
                [],
            )
        described = state.describe_topic_config(res.resource_name)
        return (
            ErrorCode.NONE,
            None,
            [(name, d.value, d.source, False, False, d.synonyms) for name, d in described.items()],
        )
    if res.resource_type == BROKER:
        if res.resource_name == "":
            return ErrorCode.NONE, None, []
        if res.resource_name != str(state.node_id):
            return (
                ErrorCode.INVALID_REQUEST,
                f"Unexpected broker id, expected {state.node_id} or empty string, "
                f"but received {res.resource_name}",
                [],
            )
        entries: list[Entry] = []
        for entry in state.config.entries():
            if not entry.known or entry.value is None:
                continue
            sensitive = "password" in entry.name
            source = entry.source.kafka_source
            entries.append(
                (
                    entry.name,
                    entry.value,
                    source,
                    True,
                    sensitive,
                    ((entry.name, entry.value, source),),
                )
            )
        return ErrorCode.NONE, None, sorted(entries)
    return ErrorCode.INVALID_REQUEST, f"Unsupported resource type {res.resource_type}.", []
