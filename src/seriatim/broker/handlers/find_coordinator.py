"""FindCoordinator (key 10), v0-v6.

One node coordinates every group and every transactional id, so the answer is always this
broker. v0 carries one group key; v1+ add ``key_type`` (0 group, 1 transaction), an error
message and throttle time; v3+ are flexible; v4+ batch the keys (``coordinator_keys``) and
answer one coordinator per key. Any other key type is INVALID_REQUEST; an empty group id is
INVALID_GROUP_ID and an empty transactional id INVALID_REQUEST.
"""

from __future__ import annotations

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.handlers import REGISTRY
from seriatim.errors import ErrorCode
from seriatim.protocol import kio_error, make, nested, response_class

GROUP_KEY_TYPE = 0
TRANSACTION_KEY_TYPE = 1


@REGISTRY.handles(10, 0, 6)
async def handle(ctx: RequestContext, request: Any) -> Any:
    version = ctx.header.api_version
    resp_cls = response_class(10, version)
    key_type = getattr(request, "key_type", GROUP_KEY_TYPE)
    if version >= 4:
        coord_cls = nested(resp_cls, "coordinators")
        coordinators = []
        for key in request.coordinator_keys:
            code, message = _check(key, key_type)
            coordinators.append(make(coord_cls, key=key, **_fields(ctx, code, message)))
        return make(resp_cls, coordinators=tuple(coordinators))
    code, message = _check(request.key, key_type)
    fields = _fields(ctx, code, message)
    if version == 0:
        del fields["error_message"]
    return make(resp_cls, **fields)


def _check(key: str, key_type: int) -> tuple[ErrorCode, str | None]:
    if key_type == TRANSACTION_KEY_TYPE:
        if not key:
            return ErrorCode.INVALID_REQUEST, "the transactional id is empty"
        return ErrorCode.NONE, None
    if key_type != GROUP_KEY_TYPE:
        return ErrorCode.INVALID_REQUEST, f"coordinator key type {key_type} is not supported"
    if not key:
        return ErrorCode.INVALID_GROUP_ID, "the group id is empty"
    return ErrorCode.NONE, None


def _fields(ctx: RequestContext, code: ErrorCode, message: str | None) -> dict[str, Any]:
    ok = code == ErrorCode.NONE
    endpoint = ctx.state.advertised
    return {
        "error_code": kio_error(code),
        "error_message": message,
        "node_id": ctx.state.node_id if ok else -1,
        "host": endpoint.host if ok else "",
        "port": endpoint.port if ok else -1,
    }
