"""IncrementalAlterConfigs (key 44), v0-v1.

Topic resources (type 2): per config an operation SET (0), DELETE (1, back to the default),
APPEND (2) or SUBTRACT (3) (list configs such as ``cleanup.policy``). The new overrides are
validated as a whole before anything changes; ``validate_only`` stops there. Every partition
of the topic picks the change up at once, and it survives restarts (topics.json). As in Kafka:
APPEND and SUBTRACT work on list configs only (else INVALID_CONFIG, naming the key), SET needs
a value and a key listed twice in one resource is INVALID_REQUEST.
Broker resources (type 4): refused with INVALID_REQUEST, since seriatim has no dynamic broker
configs yet; set them in the broker's config file or flags. v1 is flexible.
"""

from __future__ import annotations

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.handlers import REGISTRY
from seriatim.broker.handlers._alter import alter_each, refuse_duplicate
from seriatim.broker.handlers.describe_configs import LIST_CONFIGS
from seriatim.errors import ErrorCode, KafkaError

SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


@REGISTRY.handles(44, 0, 1)
async def handle(ctx: RequestContext, request: Any) -> Any:
    return alter_each(ctx, 44, request, _apply_operations)


def _apply_operations(ctx: RequestContext, name: str, res: Any, validate_only: bool) -> None:
    state = ctx.state
    current = state.describe_topic_config(name)
    changes: dict[str, str | None] = {}
    for c in res.configs:
        refuse_duplicate(changes, c.name)
        if c.config_operation == SET:
            if c.value is None:
                raise KafkaError(
                    f"Null value not supported for : {c.name}", ErrorCode.INVALID_REQUEST
                )
            changes[c.name] = c.value
        elif c.config_operation == DELETE:
            changes[c.name] = None
        elif c.config_operation in (APPEND, SUBTRACT):
            if c.name not in LIST_CONFIGS:
                verb = "append" if c.config_operation == APPEND else "subtract"
                raise KafkaError(
                    f"Config value {verb} is not allowed for config key: {c.name}",
                    ErrorCode.INVALID_CONFIG,
                )
            desc = current.get(c.name)
            items = [v for v in (desc.value or "").split(",") if v] if desc else []
            added = [v for v in (c.value or "").split(",") if v]
            if c.config_operation == APPEND:
                items += [v for v in added if v not in items]
            else:
                items = [v for v in items if v not in added]
            changes[c.name] = ",".join(items)
        else:
            raise KafkaError(
                f"Unknown config operation {c.config_operation}.", ErrorCode.INVALID_REQUEST
            )
    state.alter_topic_config(name, changes, validate_only=validate_only)
