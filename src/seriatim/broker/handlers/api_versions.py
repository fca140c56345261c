"""ApiVersions (key 18), v0-v4.

v0-v2 carry the API table (v1+ adds throttle_time_ms); v3+ are flexible and add the client
software name/version in the request and supported/finalized features in the response (we
send none). The response header is always v0, even for flexible versions (pitfall 1). A
request above v4 never reaches this module: the broker answers it with the v0-form
UNSUPPORTED_VERSION reply (pitfall 2).
"""

from __future__ import annotations

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.handlers import REGISTRY
from seriatim.protocol import api_versions_response


@REGISTRY.handles(18, 0, 4)
async def handle(ctx: RequestContext, request: Any) -> list[bytes]:
    header = ctx.header
    return [api_versions_response(header.correlation_id, header.api_version, REGISTRY.table())]
