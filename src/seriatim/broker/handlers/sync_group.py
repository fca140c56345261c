"""SyncGroup (key 14), v0-v5.

The leader sends every member's assignment; the coordinator stores the group (a
GroupMetadata record in ``__consumer_offsets``, durable before anyone is answered) and answers
each member with its own. A follower's SyncGroup waits for the leader's. v1 adds throttle time,
v3 ``group_instance_id``, v4 is flexible, v5 carries ``protocol_type``/``protocol_name`` both
ways (checked against the group's: INCONSISTENT_GROUP_PROTOCOL).
"""

from __future__ import annotations

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.groups import driver
from seriatim.broker.handlers import REGISTRY
from seriatim.coordinator import SyncRequest, SyncResult
from seriatim.protocol import kio_error, make, response_class


@REGISTRY.handles(14, 0, 5)
async def handle(ctx: RequestContext, request: Any) -> Any:
    version = ctx.header.api_version
    req = SyncRequest(
        group_id=request.group_id,
        generation_id=request.generation_id,
        member_id=request.member_id,
        group_instance_id=getattr(request, "group_instance_id", None),
        protocol_type=getattr(request, "protocol_type", None),
        protocol_name=getattr(request, "protocol_name", None),
        assignments=tuple((a.member_id, bytes(a.assignment)) for a in request.assignments),
    )
    groups = driver(ctx.state)
    result: SyncResult = await groups.call(groups.core.sync, req)
    fields: dict[str, Any] = {
        "error_code": kio_error(result.error),
        "assignment": result.assignment,
    }
    if version >= 5:
        fields["protocol_type"] = result.protocol_type
        fields["protocol_name"] = result.protocol_name
    return make(response_class(14, version), **fields)
