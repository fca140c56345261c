"""InitProducerId (key 22), v0-v5.

Without a transactional id: an idempotent producer gets a fresh producer id (unique across
restarts: blocks reserved on disk ahead of use, see BrokerState) at epoch 0. kafka-python's
default producer is idempotent and calls it before producing; aiokafka needs v0 (pitfall 12).
v3+ may send an existing id/epoch to bump the epoch (KIP-360): for an idempotent producer we
answer with a fresh id, which is what Kafka does when it no longer knows the producer.

With a transactional id: the transaction coordinator (coordinator/transactions.py) gives the
id's producer id with its epoch bumped, fencing any older producer of the same id (zombie
fencing); an ongoing transaction of the old producer is aborted first and this call answers
CONCURRENT_TRANSACTIONS (the client retries). ``transaction_timeout_ms`` must be in
(0, transaction.max.timeout.ms], else INVALID_TRANSACTION_TIMEOUT. v4+ return PRODUCER_FENCED;
older versions get INVALID_PRODUCER_EPOCH instead, as Kafka maps it. v2+ are flexible.
"""

from __future__ import annotations

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.handlers import REGISTRY
from seriatim.broker.transactions import driver
from seriatim.coordinator.transactions import InitResult
from seriatim.errors import ErrorCode
from seriatim.protocol import kio_error, make, response_class


@REGISTRY.handles(22, 0, 5)
async def handle(ctx: RequestContext, request: Any) -> Any:
    version = ctx.header.api_version
    resp_cls = response_class(22, version)
    if request.transactional_id is None:
        return make(resp_cls, producer_id=ctx.state.next_producer_id(), producer_epoch=0)
    if not request.transactional_id:
        return make(resp_cls, error_code=kio_error(ErrorCode.INVALID_REQUEST),
                    producer_id=-1, producer_epoch=-1)
    txns = driver(ctx.state)
    timeout_ms = int(request.transaction_timeout.total_seconds() * 1000)
    result: InitResult = await txns.call(
        txns.core.init_producer_id, request.transactional_id, timeout_ms,
        getattr(request, "producer_id", -1), getattr(request, "producer_epoch", -1))
    error = result.error
    if error == ErrorCode.PRODUCER_FENCED and version < 4:
        error = ErrorCode.INVALID_PRODUCER_EPOCH
    return make(resp_cls, error_code=kio_error(error), producer_id=result.producer_id,
                producer_epoch=result.producer_epoch)
