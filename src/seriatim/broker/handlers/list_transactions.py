"""ListTransactions (key 66), v0-v1 (flexible).

Every transactional id with its producer id and state, filtered by state names and producer
ids when given; v1 adds ``duration_filter`` (only transactions running longer than that many
milliseconds; -1 = no filter). Unknown state names come back in ``unknown_state_filters``.
"""

from __future__ import annotations

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.handlers import REGISTRY
from seriatim.broker.transactions import driver
from seriatim.coordinator.transactions import STATE_BY_NAME
from seriatim.protocol import make, nested, response_class


@REGISTRY.handles(66, 0, 1)
async def handle(ctx: RequestContext, request: Any) -> Any:
    core = driver(ctx.state).core
    resp_cls = response_class(66, ctx.header.api_version)
    state_cls = nested(resp_cls, "transaction_states")
    wanted = set(request.state_filters)
    unknown = tuple(sorted(n for n in wanted if n not in STATE_BY_NAME))
    pids = set(request.producer_id_filters)
    min_duration = getattr(request, "duration_filter", -1)
    now = ctx.state.clock.wall_ms()
    out = []
    for s in core.list():
        if wanted and s.state.kafka_name not in wanted:
            continue
        if pids and s.producer_id not in pids:
            continue
        if min_duration >= 0 and (s.start_ms < 0 or now - s.start_ms <= min_duration):
            continue
        out.append(make(state_cls, transactional_id=s.transactional_id,
                        producer_id=s.producer_id, transaction_state=s.state.kafka_name))
    return make(resp_cls, unknown_state_filters=unknown, transaction_states=tuple(out))
