"""EndTxn (key 26), v0-v3.

Commits or aborts the producer's ongoing transaction: the coordinator stores PrepareCommit /
PrepareAbort, writes a COMMIT/ABORT marker to every partition of the transaction (which closes
it there: the last stable offset moves past it, and an abort is added to the ``.txnindex``),
then stores CompleteCommit / CompleteAbort. The reply is sent when all of that is durable.
Retrying an EndTxn that completed answers NONE; the other direction is INVALID_TXN_STATE.
PRODUCER_FENCED is INVALID_PRODUCER_EPOCH before v2. v3 is flexible.
"""

from __future__ import annotations

from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.handlers import REGISTRY
from seriatim.broker.transactions import driver
from seriatim.errors import ErrorCode
from seriatim.protocol import kio_error, make, response_class


@REGISTRY.handles(26, 0, 3)
async def handle(ctx: RequestContext, request: Any) -> Any:
    version = ctx.header.api_version
    txns = driver(ctx.state)
    error: ErrorCode = await txns.call(
        txns.core.end_txn, request.transactional_id, request.producer_id,
        request.producer_epoch, bool(request.committed))
    if error == ErrorCode.PRODUCER_FENCED and version < 2:
        error = ErrorCode.INVALID_PRODUCER_EPOCH
    return make(response_class(26, version), error_code=kio_error(error))
