"""JoinGroup (key 11), v0-v9.

The request is translated into a :class:`~seriatim.coordinator.JoinRequest`; the reply waits
until the rebalance's join phase completes (``group.initial.rebalance.delay.ms`` for a new
group, else every member rejoined or the rebalance timeout passed). Versions: v1 adds the
rebalance timeout (v0 uses the session timeout); v2 throttle time; v4 the MEMBER_ID_REQUIRED
round trip (a first join with an empty member id gets error 79 and its id); v5 static
membership (``group_instance_id``); v6 flexible; v7 ``protocol_type`` in the response (and
``protocol_name`` becomes nullable); v8 a ``reason``; v9 ``skip_assignment`` (a static leader
replaced without a rebalance must not reassign).
"""

from __future__ import annotations

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.groups import driver
from seriatim.broker.handlers import REGISTRY
from seriatim.coordinator import JoinRequest, JoinResult
from seriatim.protocol import kio_error, make, nested, response_class


def duration_ms(value: Any) -> int:
    """A kio ``*_ms`` field (a timedelta) as whole milliseconds."""
    return int(value.total_seconds() * 1000) if hasattr(value, "total_seconds") else int(value)


def client_host(ctx: RequestContext) -> str:
    """Kafka shows a member's host as ``/address``."""
    host = getattr(ctx.peer, "peer_host", "")
    return f"/{host}" if host else ""


@REGISTRY.handles(11, 0, 9)
async def handle(ctx: RequestContext, request: Any) -> Any:
    version = ctx.header.api_version
    session_ms = duration_ms(request.session_timeout)
    req = JoinRequest(
        group_id=request.group_id,
        member_id=request.member_id,
        group_instance_id=getattr(request, "group_instance_id", None),
        protocol_type=request.protocol_type,
        protocols=tuple((p.name, bytes(p.metadata)) for p in request.protocols),
        session_timeout_ms=session_ms,
        rebalance_timeout_ms=duration_ms(request.rebalance_timeout) if version >= 1 else session_ms,
        client_id=ctx.header.client_id or "",
        client_host=client_host(ctx),
        require_known_member_id=version >= 4,
    )
    groups = driver(ctx.state)
    result: JoinResult = await groups.call(groups.core.join, req)
    return _response(version, result)


def _response(version: int, result: JoinResult) -> Any:
    resp_cls = response_class(11, version)
    member_cls = nested(resp_cls, "members")
    members = []
    for m in result.members:
        fields: dict[str, Any] = {"member_id": m.member_id, "metadata": m.metadata}
        if version >= 5:
            fields["group_instance_id"] = m.group_instance_id
        members.append(make(member_cls, **fields))
    out: dict[str, Any] = {
        "error_code": kio_error(result.error),
        "generation_id": result.generation_id,
        "leader": result.leader,
        "member_id": result.member_id,
        "members": tuple(members),
    }
    if version >= 7:
        out["protocol_type"] = result.protocol_type
        out["protocol_name"] = result.protocol_name
    else:
        out["protocol_name"] = result.protocol_name or ""
    if version >= 9:
        out["skip_assignment"] = result.skip_assignment
    return make(resp_cls, **out)
