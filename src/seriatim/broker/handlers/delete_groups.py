"""DeleteGroups (key 42), v0-v2.

Deletes groups that have no members (Empty): a tombstone for each committed offset and for
the group's metadata, durable before the answer. GROUP_ID_NOT_FOUND for an unknown group,
NON_EMPTY_GROUP while it has members. v2 is flexible.
"""

from __future__ import annotations

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.groups import driver
from seriatim.broker.handlers import REGISTRY
from seriatim.errors import ErrorCode
from seriatim.protocol import kio_error, make, nested, response_class


@REGISTRY.handles(42, 0, 2)
async def handle(ctx: RequestContext, request: Any) -> Any:
    resp_cls = response_class(42, ctx.header.api_version)
    result_cls = nested(resp_cls, "results")
    names = list(dict.fromkeys(request.groups_names))
    groups = driver(ctx.state)
    results: dict[str, ErrorCode] = await groups.call(groups.core.delete_groups, names)
    return make(
        resp_cls,
        results=tuple(
            make(result_cls, group_id=name, error_code=kio_error(results[name])) for name in names
        ),
    )
