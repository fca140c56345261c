"""LeaveGroup (key 13), v0-v5.

v0-v2 carry one ``member_id`` and answer with one error; v1 adds throttle time; v3+ batch
``members`` (member id and/or ``group_instance_id``: a static member may leave by instance id
alone) and answer per member, FENCED_INSTANCE_ID when the ids disagree; v4 is flexible; v5
adds a ``reason``. The group rebalances without the members that left.
"""

from __future__ import annotations

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.groups import driver
from seriatim.broker.handlers import REGISTRY
from seriatim.coordinator import LeaveResult
from seriatim.errors import ErrorCode
from seriatim.protocol import kio_error, make, nested, response_class


@REGISTRY.handles(13, 0, 5)
async def handle(ctx: RequestContext, request: Any) -> Any:
    version = ctx.header.api_version
    resp_cls = response_class(13, version)
    if version >= 3:
        members = [(m.member_id, m.group_instance_id) for m in request.members]
    else:
        members = [(request.member_id, None)]
    groups = driver(ctx.state)
    result: LeaveResult = await groups.call(groups.core.leave, request.group_id, members)
    if version < 3:
        error = result.members[0][2] if result.members else result.error
        if error == ErrorCode.NONE:
            error = result.error
        return make(resp_cls, error_code=kio_error(error))
    member_cls = nested(resp_cls, "members")
    return make(
        resp_cls,
        error_code=kio_error(result.error),
        members=tuple(
            make(member_cls, member_id=m, group_instance_id=i, error_code=kio_error(e))
            for m, i, e in result.members
        ),
    )
