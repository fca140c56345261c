"""DescribeLogDirs (key 35), v1-v4.

One log dir (the first of ``log.dirs``) with the size of every requested partition (null =
all; partitions of unknown topics are left out, as in Kafka). v3+ add a top-level error code;
v4 adds the directory's total and usable bytes.
"""

from __future__ import annotations

import shutil
from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.handlers import REGISTRY
from seriatim.protocol import make, nested, response_class


@REGISTRY.handles(35, 1, 4)
async def handle(ctx: RequestContext, request: Any) -> Any:
    state = ctx.state
    resp_cls = response_class(35, ctx.header.api_version)
    result_cls = nested(resp_cls, "results")
    topic_cls = nested(result_cls, "topics")
    part_cls = nested(topic_cls, "partitions")
    existing = state.topics()
    if request.topics is None:
        wanted = {name: list(range(count)) for name, count in existing.items()}
    else:
        wanted = {
            t.topic: [p for p in t.partitions if p < existing.get(t.topic, 0)]
            for t in request.topics
        }
    topics = []
    for name in sorted(wanted):
        parts = []
        for p in wanted[name]:
            plog = state.partition(name, p)
            if plog is not None:
                parts.append(
                    make(
                        part_cls,
                        partition_index=p,
                        partition_size=plog.size_bytes,
                        offset_lag=0,
                        is_future_key=False,
                    )
                )
        if parts:
            topics.append(make(topic_cls, name=name, partitions=tuple(parts)))
    fields: dict[str, Any] = {"log_dir": str(state.data_dir.resolve()), "topics": tuple(topics)}
    if ctx.header.api_version >= 4:
        usage = shutil.disk_usage(state.data_dir)
        fields.update(total_bytes=usage.total, usable_bytes=usage.free)
    return make(resp_cls, results=(make(result_cls, **fields),))
