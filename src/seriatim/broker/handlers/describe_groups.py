"""DescribeGroups (key 15), v0-v5.

Per group: state, protocol type, the chosen protocol and the members. As in Kafka, member
metadata and assignments (and the protocol) are shown only while the group is Stable; a group
that does not exist is described as ``Dead`` with no error. v1 adds throttle time; v3
``include_authorized_operations`` (no ACLs here: every group operation is allowed); v4
``group_instance_id`` per member; v5 is flexible.
"""

from __future__ import annotations

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.groups import driver
from seriatim.broker.handlers import REGISTRY
from seriatim.errors import ErrorCode
from seriatim.protocol import kio_error, make, nested, response_class

# AclOperation bits a group supports: READ (3), DELETE (6), DESCRIBE (8).
GROUP_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8)
NOT_REQUESTED = -(2**31)


@REGISTRY.handles(15, 0, 5)
async def handle(ctx: RequestContext, request: Any) -> Any:
    version = ctx.header.api_version
    resp_cls = response_class(15, version)
    group_cls = nested(resp_cls, "groups")
    member_cls = nested(group_cls, "members")
    core = driver(ctx.state).core
    include_ops = getattr(request, "include_authorized_operations", False)
    described = []
    for group_id in request.groups:
        summary = core.describe(group_id)
        members = []
        for m in summary.members:
            fields: dict[str, Any] = {
                "member_id": m.member_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "member_metadata": m.metadata,
                "member_assignment": m.assignment,
            }
            if version >= 4:
                fields["group_instance_id"] = m.group_instance_id
            members.append(make(member_cls, **fields))
        group: dict[str, Any] = {
            "error_code": kio_error(ErrorCode.INVALID_GROUP_ID if not group_id else ErrorCode.NONE),
            "group_id": group_id,
            "group_state": summary.state.value,
            "protocol_type": summary.protocol_type,
            "protocol_data": summary.protocol,
            "members": tuple(members),
        }
        if version >= 3:
            group["authorized_operations"] = GROUP_OPERATIONS if include_ops else NOT_REQUESTED
        described.append(make(group_cls, **group))
    return make(resp_cls, groups=tuple(described))
