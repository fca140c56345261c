"""DescribeCluster (key 60), v0-v1.

The cluster id, the controller (this node) and the one broker. v1 adds ``endpoint_type``
(1 = brokers; asking for controllers (2) gets MISMATCHED_ENDPOINT_TYPE and any other type
UNSUPPORTED_ENDPOINT_TYPE, as in Kafka).
"""

from __future__ import annotations

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.handlers import REGISTRY
from seriatim.errors import ErrorCode
from seriatim.protocol import kio_error, make, nested, response_class


@REGISTRY.handles(60, 0, 1)
async def handle(ctx: RequestContext, request: Any) -> Any:
    state = ctx.state
    resp_cls = response_class(60, ctx.header.api_version)
    broker_cls = nested(resp_cls, "brokers")
    endpoint_type = getattr(request, "endpoint_type", 1)
    if endpoint_type != 1:
        code = (
            ErrorCode.MISMATCHED_ENDPOINT_TYPE
            if endpoint_type == 2
            else ErrorCode.UNSUPPORTED_ENDPOINT_TYPE
        )
        return make(
            resp_cls,
            error_code=kio_error(code),
            error_message=f"seriatim serves broker endpoints only, not type {endpoint_type}",
            cluster_id=state.cluster_id,
            controller_id=-1,
        )
    broker = make(
        broker_cls,
        broker_id=state.node_id,
        host=state.advertised.host,
        port=state.advertised.port,
        rack=None,
    )
    fields: dict[str, Any] = {
        "cluster_id": state.cluster_id,
        "controller_id": state.node_id,
        "brokers": (broker,),
        "cluster_authorized_operations": -2147483648,
    }
    if ctx.header.api_version >= 1:
        fields["endpoint_type"] = 1
    return make(resp_cls, **fields)
