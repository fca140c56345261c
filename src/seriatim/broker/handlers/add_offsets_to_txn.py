"""AddOffsetsToTxn (key 25), v0-v3.

Adds the group's ``__consumer_offsets`` partition to the producer's ongoing transaction, so
that the transaction's marker reaches it and its TxnOffsetCommit offsets become visible (or are
dropped) with the transaction. Errors as AddPartitionsToTxn (PRODUCER_FENCED is
INVALID_PRODUCER_EPOCH before v2). v3 is flexible.
"""

from __future__ import annotations

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.groups import OFFSETS_TOPIC
from seriatim.broker.groups import driver as group_driver
from seriatim.broker.handlers import REGISTRY
from seriatim.broker.transactions import driver
from seriatim.errors import ErrorCode
from seriatim.protocol import kio_error, make, response_class


@REGISTRY.handles(25, 0, 3)
async def handle(ctx: RequestContext, request: Any) -> Any:
    version = ctx.header.api_version
    resp_cls = response_class(25, version)
    if not request.group_id:
        return make(resp_cls, error_code=kio_error(ErrorCode.INVALID_GROUP_ID))
    partition = group_driver(ctx.state).partition_of(request.group_id)
    txns = driver(ctx.state)
    error: ErrorCode = await txns.call(
        txns.core.add_partitions, request.transactional_id, request.producer_id,
        request.producer_epoch, [(OFFSETS_TOPIC, partition)])
    if error == ErrorCode.PRODUCER_FENCED and version < 2:
        error = ErrorCode.INVALID_PRODUCER_EPOCH
    return make(resp_cls, error_code=kio_error(error))
