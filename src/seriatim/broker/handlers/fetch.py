"""Fetch (key 1), v4-v12.

v4+ carry isolation_level and last_stable_offset (pitfall 10: librdkafka reads
read_committed by default). read_uncommitted reads up to the high watermark; read_committed up
to the last stable offset (the first offset of the oldest open transaction, or the high
watermark), and the response lists the aborted transactions overlapping the data returned
(producer id, first offset; from the partition's ``.txnindex``) so the client drops their
records; control batches (markers) are returned as they are and clients skip them. v5+ log start
offset; v7+ fetch sessions (KIP-227), which we decline by answering session_id 0, so clients
keep sending full requests (pitfall 6); v11+ rack id and preferred read replica (-1); v12 is
flexible. v13+ address topics by id and are not served (pitfall 4).

Long poll: if fewer than ``min_bytes`` are ready and no partition has an error, the request
waits for new data on any requested partition, or ``max_wait_ms``, then reads again. Limits:
``partition_max_bytes`` per partition and ``max_bytes`` in total, except that the first
partition with data returns at least one whole batch even when it is larger (so a consumer can
always make progress). Record bytes go from the segment file to the transport as they are.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.handlers import REGISTRY
from seriatim.broker.state import BrokerState
from seriatim.errors import ErrorCode, OffsetOutOfRangeError, StorageError
from seriatim.limits import FETCH_MAX_BYTES_DEFAULT, FETCH_MAX_WAIT_MS_CAP
from seriatim.protocol import FetchPartitionData, encode_fetch_response


@REGISTRY.handles(1, 4, 12)
async def handle(ctx: RequestContext, request: Any) -> list[bytes | memoryview]:
    state = ctx.state
    loop = asyncio.get_running_loop()
    max_wait_s = min(request.max_wait.total_seconds(), FETCH_MAX_WAIT_MS_CAP / 1000)
    deadline = loop.time() + max_wait_s
    while True:
        topics, total, errors = _read(state, request)
        remaining = deadline - loop.time()
        if total >= request.min_bytes or errors or remaining <= 0:
            break
        waiters = [state.waiter(t.topic, p.partition) for t in request.topics for p in t.partitions]
        if not waiters:
            break
        try:
            await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
    return encode_fetch_response(
        ctx.header.api_version,
        ctx.header.correlation_id,
        throttle_time_ms=0,
        error_code=ErrorCode.NONE,
        session_id=0,
        topics=topics,
    )


def _read(
    state: BrokerState, request: Any
) -> tuple[list[tuple[str, list[FetchPartitionData]]], int, bool]:
    budget = min(request.max_bytes, FETCH_MAX_BYTES_DEFAULT) if request.max_bytes > 0 else 0
    first_with_data = True
    total = 0
    errors = False
    read_committed = getattr(request, "isolation_level", 0) == 1
    out: list[tuple[str, list[FetchPartitionData]]] = []
    for topic in request.topics:
        parts = []
        for p in topic.partitions:
            data = _read_partition(
                state, topic.topic, p, budget - total, first_with_data, read_committed
            )
            if data.error_code != ErrorCode.NONE:
                errors = True
            size = sum(len(b) for b in data.records or ())
            if size:
                first_with_data = False
                total += size
            parts.append(data)
        out.append((topic.topic, parts))
    return out, total, errors


def _read_partition(
    state: BrokerState, topic: str, p: Any, budget: int, min_one: bool, read_committed: bool
) -> FetchPartitionData:
    index = p.partition
    plog = state.partition(topic, index)
    if plog is None:
        return FetchPartitionData(index, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1, -1, -1)
    hw = state.high_watermark(plog)
    lso = state.last_stable_offset(plog)
    start = plog.start_offset
    aborted: list[tuple[int, int]] | None = [] if read_committed else None
    offset = p.fetch_offset
    if offset < start or offset > plog.end_offset:
        return FetchPartitionData(index, ErrorCode.OFFSET_OUT_OF_RANGE, hw, lso, start, aborted)
    upper = lso if read_committed else hw
    if offset >= upper or (budget <= 0 and not min_one):
        return FetchPartitionData(index, ErrorCode.NONE, hw, lso, start, aborted)
    limit = min(p.partition_max_bytes, max(budget, 0))
    try:
        result = plog.read(offset, limit, max_offset=upper, min_one_batch=min_one)
        records = [os.pread(s.fd, s.size, s.position) for s in result.slices]
        if read_committed and records:
            aborted = [(t.producer_id, t.first_offset)
                       for t in plog.aborted_transactions(offset, upper)]
    except OffsetOutOfRangeError:
        return FetchPartitionData(index, ErrorCode.OFFSET_OUT_OF_RANGE, hw, lso, start, aborted)
    except StorageError:
        return FetchPartitionData(index, ErrorCode.KAFKA_STORAGE_ERROR, hw, lso, start, aborted)
    return FetchPartitionData(index, ErrorCode.NONE, hw, lso, start, aborted, records=records)
