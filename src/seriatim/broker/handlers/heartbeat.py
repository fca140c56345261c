"""Heartbeat (key 12), v0-v4.

Keeps a member's session alive and tells it when to rejoin: REBALANCE_IN_PROGRESS while the
group prepares a rebalance, UNKNOWN_MEMBER_ID after its session expired (or it was removed),
ILLEGAL_GENERATION for a stale generation, FENCED_INSTANCE_ID when another process took its
static identity. v1 adds throttle time, v3 ``group_instance_id``, v4 is flexible.
"""

from __future__ import annotations

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.groups import driver
from seriatim.broker.handlers import REGISTRY
from seriatim.protocol import kio_error, make, response_class


@REGISTRY.handles(12, 0, 4)
async def handle(ctx: RequestContext, request: Any) -> Any:
    groups = driver(ctx.state)
    error = groups.core.heartbeat(
        request.group_id,
        request.member_id,
        getattr(request, "group_instance_id", None),
        request.generation_id,
    )
    groups.touched()
    return make(response_class(12, ctx.header.api_version), error_code=kio_error(error))
