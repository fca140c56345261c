"""What AlterConfigs (33) and IncrementalAlterConfigs (44) share: the per-resource loop with
its error mapping, and the checks that a resource is an existing topic.

Not an API module (no registration): the two handlers differ only in how a resource's configs
become the topic's new overrides.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.errors import ErrorCode, KafkaError, StorageError
from seriatim.protocol import kio_error, make, nested, response_class

log = logging.getLogger(__name__)

TOPIC, BROKER = 2, 4

AlterOne = Callable[[RequestContext, str, Any, bool], None]


def alter_each(ctx: RequestContext, api_key: int, request: Any, alter_topic: AlterOne) -> Any:
    """Apply ``alter_topic(ctx, topic, resource, validate_only)`` to every resource; each gets
    its own error code, so one bad resource does not fail the others."""
    resp_cls = response_class(api_key, ctx.header.api_version)
    result_cls = nested(resp_cls, "responses")
    results = []
    for res in request.resources:
        code, message = ErrorCode.NONE, None
        try:
            alter_topic(ctx, _topic_of(ctx, res), res, request.validate_only)
        except KafkaError as exc:
            code, message = exc.code, str(exc)
        except (StorageError, OSError) as exc:
            log.error("altering configs of %s failed: %s", res.resource_name, exc)
            code, message = ErrorCode.KAFKA_STORAGE_ERROR, str(exc)
        results.append(
            make(
                result_cls,
                error_code=kio_error(code),
                error_message=message,
                resource_type=res.resource_type,
                resource_name=res.resource_name,
            )
        )
    return make(resp_cls, responses=tuple(results))


def _topic_of(ctx: RequestContext, res: Any) -> str:
    if res.resource_type == BROKER:
        raise KafkaError(
            "seriatim does not change broker configs at run time; set them in the config file, "
            "SERIATIM_* variables or -c flags and restart.",
            ErrorCode.INVALID_REQUEST,
        )
    if res.resource_type != TOPIC:
        raise KafkaError(
            f"Unsupported resource type {res.resource_type}.", ErrorCode.INVALID_REQUEST
        )
    name: str = res.resource_name
    if name not in ctx.state.topics():
        raise KafkaError(f"Topic '{name}' does not exist.", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    return name


def refuse_duplicate(seen: dict[str, Any], name: str) -> None:
    if name in seen:
        raise KafkaError(f"Error due to duplicate config keys: {name}", ErrorCode.INVALID_REQUEST)
