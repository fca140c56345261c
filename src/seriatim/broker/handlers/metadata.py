"""Metadata (key 3), v0-v12.

Topics: v0 an empty list means all topics; v1+ null means all and ``[]`` means none (pitfall 8:
kafka-python and aiokafka bootstrap with ``[]``). v4+ carry ``allow_auto_topic_creation``;
topics are auto-created when both it and ``auto.create.topics.enable`` are true (v0-3 always
ask for it). v10+ carry topic ids: we send the all-zero id, which keeps librdkafka on Fetch v12
keyed by name (pitfall 4). v12 lets the request name topics by id (we answer by name only).
One node: it is the leader and the only replica of every partition, and the controller.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.handlers import REGISTRY
from seriatim.errors import ErrorCode
from seriatim.protocol import kio_error, make, nested, response_class

LEGAL_TOPIC = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")


@REGISTRY.handles(3, 0, 12)
async def handle(ctx: RequestContext, request: Any) -> Any:
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
        count = state.topics()[name]
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
