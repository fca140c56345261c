"""DeleteTopics (key 20), v1-v6.

v1-v5 name topics in ``topic_names``; v6 in ``topics`` (name or id; ids are not assigned yet,
so a request by id alone gets UNKNOWN_TOPIC_ID). v5+ return an error message (v1-v4 have only
the code). With ``delete.topic.enable=false`` every topic gets TOPIC_DELETION_DISABLED. A name
listed twice gets INVALID_REQUEST and is not deleted, as in Kafka. A disk error while removing
the files is KAFKA_STORAGE_ERROR for that topic (the topic table no longer lists it).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.handlers import REGISTRY
from seriatim.errors import ErrorCode, StorageError
from seriatim.protocol import kio_error, make, nested, response_class

log = logging.getLogger(__name__)


@REGISTRY.handles(20, 1, 6)
async def handle(ctx: RequestContext, request: Any) -> Any:
    state = ctx.state
    version = ctx.header.api_version
    resp_cls = response_class(20, version)
    result_cls = nested(resp_cls, "responses")
    names: list[str | None]
    names = [t.name for t in request.topics] if version >= 6 else list(request.topic_names)
    counts = Counter(n for n in names if n is not None)
    results = []
    reported: set[str] = set()
    for name in names:
        if name is None:
            code, message = (
                ErrorCode.UNKNOWN_TOPIC_ID,
                "Topic ids are not supported; name the topic.",
            )
        elif counts[name] > 1:
            if name in reported:
                continue  # one result per name, as Kafka answers
            reported.add(name)
            code, message = ErrorCode.INVALID_REQUEST, f"Topic '{name}' is listed twice."
        elif not state.config.delete_topic_enable:
            code, message = ErrorCode.TOPIC_DELETION_DISABLED, "Topic deletion is disabled."
        elif name not in state.topics():
            code, message = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Topic '{name}' does not exist."
        else:
            try:
                state.delete_topic(name)
                code, message = ErrorCode.NONE, None
            except (StorageError, OSError) as exc:
                log.error("deleting topic %s failed: %s", name, exc)
                code, message = ErrorCode.KAFKA_STORAGE_ERROR, str(exc)
        fields: dict[str, Any] = {"name": name, "error_code": kio_error(code)}
        if version >= 5:
            fields["error_message"] = message
        results.append(make(result_cls, **fields))
    return make(resp_cls, responses=tuple(results))
