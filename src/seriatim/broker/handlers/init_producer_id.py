"""InitProducerId (key 22), v0-v5.

Gives an idempotent producer a producer id and epoch 0. kafka-python's default producer is
idempotent and calls it before producing; aiokafka needs v0 (pitfall 12). Producer ids are
unique across restarts (blocks reserved on disk ahead of use, see BrokerState). v3+ may send an
existing id/epoch to bump the epoch (KIP-360): we answer with a fresh id, which is what Kafka
does when it no longer knows the producer.

Transactional ids need the transaction coordinator, which is not built yet: such requests get
INVALID_REQUEST (non-retriable), so a transactional client fails at once with a clear error
instead of retrying forever.
"""

from __future__ import annotations

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.handlers import REGISTRY
from seriatim.errors import ErrorCode
from seriatim.protocol import kio_error, make, response_class


@REGISTRY.handles(22, 0, 5)
async def handle(ctx: RequestContext, request: Any) -> Any:
    resp_cls = response_class(22, ctx.header.api_version)
    if request.transactional_id is not None:
        return make(
            resp_cls,
            error_code=kio_error(ErrorCode.INVALID_REQUEST),
            producer_id=-1,
            producer_epoch=-1,
        )
    return make(resp_cls, producer_id=ctx.state.next_producer_id(), producer_epoch=0)
