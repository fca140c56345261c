"""Metadata (key 3), v0-v12.

Topics: v0 an empty list means all topics; v1+ null means all and ``[]`` means none (pitfall 8:
kafka-python and aiokafka bootstrap with ``[]``). v4+ carry ``allow_auto_topic_creation``;
topics are auto-created when both it and ``auto.create.topics.enable`` are true (v0-3 always
ask for it). v10+ carry topic ids: we send the all-zero id, which keeps librdkafka on Fetch v12
keyed by name (pitfall 4). v12 lets the request name topics by id (we answer by name only).
One node: it is the leader and the only replica of every partition, and the controller.

Responses are cached encoded (issue 8: "Metadata responses cached"): per (version, topics
asked, allow_auto_topic_creation) the encoded body after the correlation id, valid while the
log manager's topic generation is unchanged (create, delete and new partitions bump it; nothing
else in the response can change while the broker runs). Clients ask for metadata on every
start, error and refresh (librdkafka every 5 min per client, and per topic when producing to a
new one). Measured with one topic of 1,000 partitions (in-process broker, the
``testing.wire`` client): 8.5 ms per request when the body is built, 0.3 ms per round trip
when it is cached.
"""

from __future__ import annotations

import dataclasses
import re
import struct
from collections import OrderedDict
from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.handlers import REGISTRY
from seriatim.broker.state import BrokerState
from seriatim.errors import ErrorCode
from seriatim.protocol import encode_response, kio_error, make, nested, response_class

LEGAL_TOPIC = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")
#: Distinct (version, topics, auto) keys kept; a client asking for ever new topic lists
#: cannot grow the cache past this.
CACHE_ENTRIES = 64
_SIZE_AND_CORRELATION = struct.Struct(">ii")

_CacheKey = tuple[int, "tuple[str, ...] | None", bool]


class MetadataCache:
    """Encoded Metadata bodies by request shape, each tagged with the topic generation."""

    def __init__(self) -> None:
        self._entries: OrderedDict[_CacheKey, tuple[int, bytes]] = OrderedDict()

    def get(self, key: _CacheKey, generation: int) -> bytes | None:
        hit = self._entries.get(key)
        if hit is None or hit[0] != generation:
            return None
        self._entries.move_to_end(key)
        return hit[1]

    def put(self, key: _CacheKey, generation: int, body: bytes) -> None:
        self._entries[key] = (generation, body)
        self._entries.move_to_end(key)
        while len(self._entries) > CACHE_ENTRIES:
            self._entries.popitem(last=False)


def _cache_for(state: BrokerState) -> MetadataCache:
    cache = state.handler_caches.get("metadata")
    if not isinstance(cache, MetadataCache):
        cache = state.handler_caches["metadata"] = MetadataCache()
    return cache


@REGISTRY.handles(3, 0, 12)
async def handle(ctx: RequestContext, request: Any) -> list[bytes]:
    state = ctx.state
    version = ctx.header.api_version
    everything = request.topics is None or (version == 0 and not request.topics)
    asked = None if everything else tuple(t.name for t in request.topics if t.name is not None)
    auto = bool(getattr(request, "allow_auto_topic_creation", True))
    key: _CacheKey = (version, asked, auto)
    cache = _cache_for(state)
    body = cache.get(key, state.manager.generation)
    if body is None:
        # Encoded with correlation id 0; the body after it does not depend on the request.
        frame = encode_response(0, _build(ctx, request))
        body = frame[_SIZE_AND_CORRELATION.size:]
        cache.put(key, state.manager.generation, body)  # after any auto-creation above
    prefix = _SIZE_AND_CORRELATION.pack(len(body) + 4, ctx.header.correlation_id)
    return [prefix, body]


def _build(ctx: RequestContext, request: Any) -> Any:
    state = ctx.state
    version = ctx.header.api_version
    resp_cls = response_class(3, version)
    topic_cls = nested(resp_cls, "topics")
    part_cls = nested(topic_cls, "partitions")
    broker_cls = nested(resp_cls, "brokers")

    existing = state.topics()
    wanted: list[str]
    if request.topics is None or (version == 0 and not request.topics):
        wanted = sorted(existing)
    else:
        wanted = [t.name for t in request.topics if t.name is not None]
    auto = getattr(request, "allow_auto_topic_creation", True)

    topics = []
    for name in wanted:
        if not LEGAL_TOPIC.match(name) or name in (".", ".."):
            topics.append(
                make(topic_cls, name=name, error_code=kio_error(ErrorCode.INVALID_TOPIC_EXCEPTION))
            )
            continue
        if name not in existing and not (auto and state.auto_create(name)):
            topics.append(
                make(
                    topic_cls, name=name, error_code=kio_error(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
                )
            )
            continue
        count = existing[name] if name in existing else state.topics()[name]
        parts = tuple(
            _make(
                part_cls,
                partition_index=p,
                leader_id=state.node_id,
                leader_epoch=0,
                replica_nodes=(state.node_id,),
                isr_nodes=(state.node_id,),
                offline_replicas=(),
            )
            for p in range(count)
        )
        topics.append(
            _make(topic_cls, name=name, partitions=parts, is_internal=name.startswith("__"))
        )

    broker = make(
        broker_cls, node_id=state.node_id, host=state.advertised.host, port=state.advertised.port
    )
    return _make(
        resp_cls,
        brokers=(broker,),
        cluster_id=state.cluster_id,
        controller_id=state.node_id,
        topics=tuple(topics),
    )


def _make(cls: type[Any], /, **fields: Any) -> Any:
    """make() with only the fields this version has: leader_epoch is v7+, offline_replicas
    v5+, is_internal and controller_id v1+, cluster_id v2+."""
    known = {f.name for f in dataclasses.fields(cls)}
    return make(cls, **{k: v for k, v in fields.items() if k in known})
