"""producer.id.expiration.ms: the broker forgets idempotent producers that have been idle that
long (its check runs every producer.id.expiration.check.interval.ms), as DescribeProducers
shows; a producer still writing is kept."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import seriatim.testing
from seriatim.testing.wire import RawConnection

ck = pytest.importorskip("confluent_kafka")
pytestmark = pytest.mark.interop


def _producer_ids(bootstrap: str) -> set[int]:
    with RawConnection(bootstrap) as c:
        resp = c.request(61, 0, {"topics": [{"name": "idem", "partition_indexes": [0]}]})
    (part,) = resp.topics[0].partitions
    assert part.error_code.value == 0
    return {p.producer_id for p in part.active_producers}


def test_idle_producers_expire(tmp_path: Path) -> None:
    with seriatim.testing.broker(tmp_path / "d", num_partitions=1, config={
            "producer.id.expiration.ms": "1500",
            "producer.id.expiration.check.interval.ms": "100"}) as b:
        idle = ck.Producer({"bootstrap.servers": b.bootstrap, "enable.idempotence": True})
        idle.produce("idem", b"once", partition=0)
        assert idle.flush(15) == 0
        busy = ck.Producer({"bootstrap.servers": b.bootstrap, "enable.idempotence": True})
        assert len(_producer_ids(b.bootstrap)) == 1
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:  # keep one producer writing past the expiry
            busy.produce("idem", b"again", partition=0)
            assert busy.flush(15) == 0
            time.sleep(0.1)
        ids = _producer_ids(b.bootstrap)
        assert len(ids) == 1, ids  # only the busy one is left
        # The forgotten producer can still write: an unknown producer id is accepted anew.
        idle.produce("idem", b"back", partition=0)
        assert idle.flush(15) == 0
        assert len(_producer_ids(b.bootstrap)) == 2
