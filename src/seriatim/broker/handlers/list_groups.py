"""ListGroups (key 16), v0-v5.

Every group this coordinator knows (groups that only hold committed offsets too, with an
empty protocol type, as Kafka lists them). v1 adds throttle time; v3 is flexible; v4 a
``states_filter`` (and returns each group's state); v5 a ``types_filter`` (and the group type,
always ``classic`` here). Filters match case-insensitively; empty means all.
"""

from __future__ import annotations

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.groups import driver
from seriatim.broker.handlers import REGISTRY
from seriatim.protocol import make, nested, response_class

GROUP_TYPE = "classic"


@REGISTRY.handles(16, 0, 5)
async def handle(ctx: RequestContext, request: Any) -> Any:
    version = ctx.header.api_version
    resp_cls = response_class(16, version)
    group_cls = nested(resp_cls, "groups")
    states = {s.lower() for s in getattr(request, "states_filter", ())}
    types = {t.lower() for t in getattr(request, "types_filter", ())}
    groups = []
    if not types or GROUP_TYPE in types:
        for group_id, protocol_type, state in driver(ctx.state).core.list_groups():
            if states and state.value.lower() not in states:
                continue
            fields: dict[str, Any] = {"group_id": group_id, "protocol_type": protocol_type}
            if version >= 4:
                fields["group_state"] = state.value
            if version >= 5:
                fields["group_type"] = GROUP_TYPE
            groups.append(make(group_cls, **fields))
    return make(resp_cls, groups=tuple(groups))
