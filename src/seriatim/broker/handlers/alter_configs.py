"""AlterConfigs (key 33), v0-v2: the legacy, non-incremental config change.

Topic resources (type 2): the request's configs *replace* the topic's overrides: a key left out
goes back to its default (kafka-python's ``alter_configs(..., incremental=False)`` and old tools
use this; newer clients use IncrementalAlterConfigs). The new overrides are validated as a
whole before anything changes; ``validate_only`` stops there. A null value or a key listed
twice is INVALID_REQUEST; an unknown key or a bad value is INVALID_CONFIG with a message naming
the key. Broker resources (type 4) are refused with INVALID_REQUEST, as in
IncrementalAlterConfigs (seriatim has no dynamic broker configs). v2 is flexible.
"""

from __future__ import annotations

import logging
from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.handlers import REGISTRY
from seriatim.errors import ErrorCode, KafkaError, StorageError
from seriatim.protocol import kio_error, make, nested, response_class

log = logging.getLogger(__name__)

TOPIC, BROKER = 2, 4


@REGISTRY.handles(33, 0, 2)
async def handle(ctx: RequestContext, request: Any) -> Any:
    resp_cls = response_class(33, ctx.header.api_version)
    result_cls = nested(resp_cls, "responses")
    results = []
    for res in request.resources:
        code, message = ErrorCode.NONE, None
        try:
            _alter(ctx, res, request.validate_only)
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


def _alter(ctx: RequestContext, res: Any, validate_only: bool) -> None:
    state = ctx.state
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
    name = res.resource_name
    if name not in state.topics():
        raise KafkaError(f"Topic '{name}' does not exist.", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    overrides: dict[str, str] = {}
    for c in res.configs:
        if c.value is None:
            raise KafkaError(f"Null value not supported for : {c.name}", ErrorCode.INVALID_REQUEST)
        if c.name in overrides:
            raise KafkaError(
                f"Error due to duplicate config keys: {c.name}", ErrorCode.INVALID_REQUEST
            )
        overrides[c.name] = c.value
    manager = state.manager
    if validate_only:
        manager.default_config.with_kafka(overrides)  # raises InvalidConfigError
        return
    manager.alter_topic_config(name, overrides, incremental=False)
