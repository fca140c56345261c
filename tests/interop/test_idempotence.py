"""Idempotent producers: duplicates answered with the original offsets, Kafka's error codes,
and no duplicates when a Produce response is lost (the request was processed, the connection
dropped: seriatim.testing.faults.DropResponses) -- with librdkafka and kafka-python.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import confluent_kafka as ck
import pytest
from interop_support import RawClient

import seriatim.testing
from seriatim.records import build_batch
from seriatim.testing.faults import DropResponses

N = 300


def _produce(client: RawClient, batch: bytes, topic: str = "t") -> Any:
    resp = client.request(0, 9, acks=-1, timeout_ms=10_000, topic_data=[
        {"name": topic, "partition_data": [{"index": 0, "records": batch}]}])
    return resp.responses[0].partition_responses[0]


def _batch(pid: int, epoch: int, seq: int, n: int = 3) -> bytes:
    return build_batch([(b"k", b"%d" % (seq + i)) for i in range(n)], producer_id=pid,
                       producer_epoch=epoch, base_sequence=seq)


def test_raw_duplicates_gaps_and_stale_epochs() -> None:
    with seriatim.testing.broker(num_partitions=1) as b, RawClient(b.bootstrap) as c:
        init = c.request(22, 4, transactional_id=None, transaction_timeout_ms=60_000,
                         producer_id=-1, producer_epoch=-1)
        pid = int(init.producer_id)
        c.request(19, 4, topics=[{"name": "t", "num_partitions": 1, "replication_factor": 1}],
                  timeout_ms=5_000)
        _produce(c, build_batch([(None, b"x")]))  # offset 0, no producer
        first = _produce(c, _batch(pid, 0, 0))
        assert (first.error_code.value, first.base_offset) == (0, 1)
        assert _produce(c, _batch(pid, 0, 3)).base_offset == 4
        retry = _produce(c, _batch(pid, 0, 0))
        assert (retry.error_code.value, retry.base_offset) == (0, 1)  # the original offset
        assert _produce(c, _batch(pid, 0, 9)).error_code.value == 45  # OUT_OF_ORDER_SEQUENCE
        assert _produce(c, _batch(pid, 1, 4)).error_code.value == 45  # new epoch: seq 0
        assert _produce(c, _batch(pid, 1, 0)).base_offset == 7
        assert _produce(c, _batch(pid, 0, 6)).error_code.value == 47  # INVALID_PRODUCER_EPOCH
        assert _produce(c, _batch(pid, 1, 3)).base_offset == 10
        # DescribeProducers shows the state.
        d = c.request(61, 0, topics=[{"name": "t", "partition_indexes": [0]}])
        (prod,) = d.topics[0].partitions[0].active_producers
        assert (prod.producer_id, prod.producer_epoch, prod.last_sequence) == (pid, 1, 5)
        # After a restart (clean) a retry is still recognised.
        b.restart()
        with RawClient(b.bootstrap) as c2:
            again = _produce(c2, _batch(pid, 1, 3))
            assert (again.error_code.value, again.base_offset) == (0, 10)


def _consume_all(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{time.time_ns()}",
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})
    got: list[bytes] = []
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + 30
        while len(got) < expected and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error():
                got.append(m.value())
        # Anything extra would be a duplicate: give it a moment to show up.
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            m = c.poll(0.1)
            if m is not None and not m.error():
                got.append(m.value())
    finally:
        c.close()
    return got


def _assert_exactly_once(got: list[bytes]) -> None:
    dups = [v for v, n in Counter(got).items() if n > 1]
    assert not dups, f"duplicates: {dups[:5]}"
    assert sorted(got) == sorted(b"%d" % i for i in range(N))


def test_librdkafka_retry_after_a_lost_response_makes_no_duplicate() -> None:
    drop = DropResponses(api_key=0, nth={2, 5})
    with seriatim.testing.broker(num_partitions=1, app_factory=drop.factory()) as b:
        p = ck.Producer({"bootstrap.servers": b.bootstrap, "enable.idempotence": True,
                         "linger.ms": 2, "batch.num.messages": 20, "retry.backoff.ms": 20,
                         "message.timeout.ms": 30_000})
        errors: list[Any] = []
        for i in range(N):
            p.produce("t", value=b"%d" % i,
                      on_delivery=lambda err, _m: errors.append(err) if err else None)
            if i % 20 == 0:
                p.poll(0)
                time.sleep(0.002)
        assert p.flush(30) == 0
        assert not errors
        assert drop.dropped == 2
        _assert_exactly_once(_consume_all(b.bootstrap, "t", N))


def test_kafka_python_retry_after_a_lost_response_makes_no_duplicate() -> None:
    kafka = pytest.importorskip("kafka")
    drop = DropResponses(api_key=0, nth={2})
    with seriatim.testing.broker(num_partitions=1, app_factory=drop.factory()) as b:
        p = kafka.KafkaProducer(bootstrap_servers=b.bootstrap, enable_idempotence=True,
                                linger_ms=2, batch_size=200, retries=5,
                                request_timeout_ms=5_000)
        try:
            futures = [p.send("t", value=b"%d" % i) for i in range(N)]
            p.flush(30)
            for f in futures:
                f.get(timeout=30)
        finally:
            p.close(5)
        assert drop.dropped == 1
        _assert_exactly_once(_consume_all(b.bootstrap, "t", N))
