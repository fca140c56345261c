"""CreatePartitions (key 37), v0-v3.

Raises a topic's partition count to ``count`` (never lowers it: INVALID_PARTITIONS; at most
``storage.manager.MAX_PARTITIONS``). Manual assignments must give one entry per new partition
naming only this node (else INVALID_REPLICA_ASSIGNMENT). ``validate_only`` checks without
creating. A topic listed twice gets INVALID_REQUEST (once). v2+ are flexible; v3 changes
nothing on the wire we use.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from seriatim.broker.context import RequestContext
from seriatim.broker.handlers import REGISTRY
from seriatim.errors import ErrorCode, KafkaError, StorageError
from seriatim.protocol import kio_error, make, nested, response_class
from seriatim.storage.manager import MAX_PARTITIONS

log = logging.getLogger(__name__)


@REGISTRY.handles(37, 0, 3)
async def handle(ctx: RequestContext, request: Any) -> Any:
    state = ctx.state
    resp_cls = response_class(37, ctx.header.api_version)
    result_cls = nested(resp_cls, "results")
    counts = Counter(t.name for t in request.topics)
    reported: set[str] = set()
    results = []
    for t in request.topics:
        if t.name in reported:
            continue
        code, message = ErrorCode.NONE, None
        try:
            if counts[t.name] > 1:
                reported.add(t.name)
                raise KafkaError(f"Topic '{t.name}' is listed twice.", ErrorCode.INVALID_REQUEST)
            _check(state, t)
            if not request.validate_only:
                state.manager.add_partitions(t.name, t.count)
        except KafkaError as exc:
            code, message = exc.code, str(exc)
        except (StorageError, OSError) as exc:
            log.error("adding partitions to %s failed: %s", t.name, exc)
            code, message = ErrorCode.KAFKA_STORAGE_ERROR, str(exc)
        results.append(
            make(result_cls, name=t.name, error_code=kio_error(code), error_message=message)
        )
    return make(resp_cls, results=tuple(results))


def _check(state: Any, t: Any) -> None:
    current = state.topics().get(t.name)
    if current is None:
        raise KafkaError(
            f"Topic '{t.name}' does not exist.", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        )
    if t.count <= current:
        raise KafkaError(
            f"Topic '{t.name}' has {current} partitions; the new count must be larger, "
            f"not {t.count}.",
            ErrorCode.INVALID_PARTITIONS,
        )
    if t.count > MAX_PARTITIONS:
        raise KafkaError(
            f"Topic '{t.name}' may have at most {MAX_PARTITIONS} partitions, not {t.count}.",
            ErrorCode.INVALID_PARTITIONS,
        )
    if t.assignments is not None:
        added = t.count - current
        if len(t.assignments) != added:
            raise KafkaError(
                f"Increasing the number of partitions by {added} but "
                f"{len(t.assignments)} assignments provided.",
                ErrorCode.INVALID_REPLICA_ASSIGNMENT,
            )
        for a in t.assignments:
            if tuple(a.broker_ids) != (state.node_id,):
                raise KafkaError(
                    f"Assignment {list(a.broker_ids)} names brokers other than {state.node_id}.",
                    ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                )
