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

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.handlers import REGISTRY
from seriatim.broker.handlers._alter import alter_each, refuse_duplicate
from seriatim.errors import ErrorCode, KafkaError


@REGISTRY.handles(33, 0, 2)
async def handle(ctx: RequestContext, request: Any) -> Any:
    return alter_each(ctx, 33, request, _replace)


def _replace(ctx: RequestContext, name: str, res: Any, validate_only: bool) -> None:
    state = ctx.state
    overrides: dict[str, str] = {}
    for c in res.configs:
        if c.value is None:
            raise KafkaError(f"Null value not supported for : {c.name}", ErrorCode.INVALID_REQUEST)
        refuse_duplicate(overrides, c.name)
        overrides[c.name] = c.value
    manager = state.manager
    if validate_only:
        manager.default_config.with_kafka(overrides)  # raises InvalidConfigError
        return
    manager.alter_topic_config(name, overrides, incremental=False)
