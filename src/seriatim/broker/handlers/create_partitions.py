"""CreatePartitions (key 37), v0-v3.

Raises a topic's partition count to ``count`` (never lowers it: INVALID_PARTITIONS). Manual
assignments must name only this node. ``validate_only`` checks without creating. v2+ are
flexible; v3 changes nothing on the wire we use.
"""

from __future__ import annotations

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.handlers import REGISTRY
from seriatim.errors import ErrorCode, KafkaError
from seriatim.protocol import kio_error, make, nested, response_class


@REGISTRY.handles(37, 0, 3)
async def handle(ctx: RequestContext, request: Any) -> Any:
    state = ctx.state
    resp_cls = response_class(37, ctx.header.api_version)
    result_cls = nested(resp_cls, "results")
    results = []
    for t in request.topics:
        code, message = ErrorCode.NONE, None
        try:
            current = state.topics().get(t.name)
            if current is None:
                raise KafkaError(
                    f"Topic '{t.name}' does not exist.", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                )
            if t.count <= current:
                raise KafkaError(
                    f"Topic '{t.name}' has {current} partitions; the new count must be larger, "
                    f"not {t.count}.",
                    ErrorCode.INVALID_PARTITIONS,
                )
            for a in t.assignments or ():
                if tuple(a.broker_ids) != (state.node_id,):
                    raise KafkaError(
                        f"Assignment {list(a.broker_ids)} names brokers "
                        f"other than {state.node_id}.",
                        ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                    )
            if not request.validate_only:
                state.manager.add_partitions(t.name, t.count)
        except KafkaError as exc:
            code, message = exc.code, str(exc)
        results.append(
            make(result_cls, name=t.name, error_code=kio_error(code), error_message=message)
        )
    return make(resp_cls, results=tuple(results))
