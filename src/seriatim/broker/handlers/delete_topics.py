"""DeleteTopics (key 20), v1-v6.

v1-v5 name topics in ``topic_names``; v6 in ``topics`` (name or id; ids are not assigned yet,
so a request by id alone gets UNKNOWN_TOPIC_ID). v5+ return an error message. With
``delete.topic.enable=false`` every topic gets TOPIC_DELETION_DISABLED.
"""

from __future__ import annotations

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.handlers import REGISTRY
from seriatim.errors import ErrorCode
from seriatim.protocol import kio_error, make, nested, response_class


@REGISTRY.handles(20, 1, 6)
async def handle(ctx: RequestContext, request: Any) -> Any:
    state = ctx.state
    version = ctx.header.api_version
    resp_cls = response_class(20, version)
    result_cls = nested(resp_cls, "responses")
    names: list[str | None]
    names = [t.name for t in request.topics] if version >= 6 else list(request.topic_names)
    results = []
    for name in names:
        if name is None:
            code, message = (
                ErrorCode.UNKNOWN_TOPIC_ID,
                "Topic ids are not supported; name the topic.",
            )
        elif not state.config.delete_topic_enable:
            code, message = ErrorCode.TOPIC_DELETION_DISABLED, "Topic deletion is disabled."
        elif name not in state.topics():
            code, message = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Topic '{name}' does not exist."
        else:
            state.delete_topic(name)
            code, message = ErrorCode.NONE, None
        results.append(
            make(result_cls, name=name, error_code=kio_error(code), error_message=message)
        )
    return make(resp_cls, responses=tuple(results))
