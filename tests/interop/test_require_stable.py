"""KIP-447 ``require_stable``: while a transaction holds an offset commit for a group, an
OffsetFetch that requires stable offsets gets UNSTABLE_OFFSET_COMMIT for that partition (and
the client retries), one that does not gets the last stable commit; once the transaction ends
the committed (or, after an abort, the previous) offset is answered without an error. And a
read_committed confluent-kafka consumer (librdkafka sets require_stable) that joins while the
transaction is open starts from the offset that transaction commits."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import seriatim.testing
from seriatim.testing.wire import RawConnection

ck = pytest.importorskip("confluent_kafka")
pytestmark = pytest.mark.interop

UNSTABLE_OFFSET_COMMIT = 88


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[seriatim.testing.InProcessBroker]:
    with seriatim.testing.broker(tmp_path / "data", num_partitions=1,
                                 config={"offsets.topic.num.partitions": "1",
                                         "transaction.state.log.num.partitions": "1",
                                         "group.initial.rebalance.delay.ms": "0"}) as b:
        yield b


def _fetch(bootstrap: str, group: str, *, stable: bool, version: int = 7) -> tuple[int, int]:
    """(error code, committed offset) of partition in-0 for ``group``."""
    with RawConnection(bootstrap) as c:
        if version >= 8:
            resp = c.request(9, version, {
                "groups": [{"group_id": group,
                            "topics": [{"name": "in", "partition_indexes": [0]}]}],
                "require_stable": stable})
            (part,) = resp.groups[0].topics[0].partitions
        else:
            resp = c.request(9, version, {
                "group_id": group, "topics": [{"name": "in", "partition_indexes": [0]}],
                "require_stable": stable})
            (part,) = resp.topics[0].partitions
    return part.error_code.value, part.committed_offset


def _producer(bootstrap: str, tid: str) -> Any:
    p = ck.Producer({"bootstrap.servers": bootstrap, "transactional.id": tid})
    p.init_transactions(15)
    return p


def _group_metadata(bootstrap: str, group: str) -> Any:
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        return c.consumer_group_metadata()
    finally:
        c.close()


@pytest.mark.parametrize("version", [7, 8])
@pytest.mark.parametrize("outcome", ["commit", "abort"])
def test_pending_transactional_offsets_are_unstable(broker: Any, version: int,
                                                    outcome: str) -> None:
    p0 = ck.Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        p0.produce("in", value=b"%d" % i, partition=0)
    assert p0.flush(15) == 0
    meta = _group_metadata(broker.bootstrap, "g")
    p = _producer(broker.bootstrap, "t-" + outcome)
    p.begin_transaction()
    p.send_offsets_to_transaction([ck.TopicPartition("in", 0, 3)], meta, 15)
    p.commit_transaction(15)  # a stable commit at 3
    p.begin_transaction()
    p.send_offsets_to_transaction([ck.TopicPartition("in", 0, 7)], meta, 15)

    assert _fetch(broker.bootstrap, "g", stable=True, version=version) == (
        UNSTABLE_OFFSET_COMMIT, -1)
    assert _fetch(broker.bootstrap, "g", stable=False, version=version) == (0, 3)
    assert _fetch(broker.bootstrap, "other", stable=True, version=version) == (0, -1)

    if outcome == "commit":
        p.commit_transaction(15)
        assert _fetch(broker.bootstrap, "g", stable=True, version=version) == (0, 7)
    else:
        p.abort_transaction(15)
        assert _fetch(broker.bootstrap, "g", stable=True, version=version) == (0, 3)


def test_a_read_committed_consumer_waits_for_the_open_transaction(broker: Any) -> None:
    p0 = ck.Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        p0.produce("in", value=b"%d" % i, partition=0)
    assert p0.flush(15) == 0
    p = _producer(broker.bootstrap, "t-wait")
    p.begin_transaction()
    p.send_offsets_to_transaction([ck.TopicPartition("in", 0, 6)],
                                  _group_metadata(broker.bootstrap, "g2"), 15)
    timer = threading.Timer(1.5, lambda: p.commit_transaction(15))
    timer.start()
    c = ck.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "g2",
                     "isolation.level": "read_committed", "auto.offset.reset": "earliest",
                     "enable.auto.commit": False})
    try:
        c.subscribe(["in"])
        deadline = time.monotonic() + 30
        first = None
        while first is None and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                first = m
        assert first is not None, "the consumer got nothing"
        # Without require_stable it would have started at 0 (nothing stable yet, earliest).
        assert first.offset() == 6
    finally:
        timer.join()
        c.close()
