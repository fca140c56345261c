"""Transactions with real clients: read_committed sees committed data only (aborted and open
transactions are invisible; read_uncommitted sees everything), zombies are fenced, the
coordinator aborts on transaction.timeout.ms, a transaction survives a broker restart, and
kafka-python's and aiokafka's transactional producers work too.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import confluent_kafka as ck
import pytest
from interop_support import RawClient

import seriatim.testing

BROKER = {"num_partitions": 2, "offsets_topic_num_partitions": 3,
          "transaction_state_log_num_partitions": 3}


def _producer(bootstrap: str, txn_id: str, **extra: Any) -> ck.Producer:
    return ck.Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id,
                        "linger.ms": 2, **extra})


def consume(bootstrap: str, topic: str, isolation: str, partitions: int = 2,
            timeout_s: float = 20) -> list[bytes]:
    """Everything a fresh consumer reads until end-of-partition on every partition."""
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{time.time_ns()}",
                     "auto.offset.reset": "earliest", "isolation.level": isolation,
                     "enable.partition.eof": True, "enable.auto.commit": False})
    got: list[bytes] = []
    eof: set[int] = set()
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + timeout_s
        while len(eof) < partitions and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == ck.KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                continue
            eof.discard(m.partition())
            got.append(m.value())
    finally:
        c.close()
    assert len(eof) == partitions, "did not reach the end of every partition"
    return sorted(got)


def _values(prefix: str, n: int) -> list[bytes]:
    return sorted(b"%s%d" % (prefix.encode(), i) for i in range(n))


def test_read_committed_skips_aborted_and_open_transactions() -> None:
    with seriatim.testing.broker(**BROKER) as b:
        p = _producer(b.bootstrap, "tx-vis")
        p.init_transactions(20)
        p.begin_transaction()
        for i in range(10):
            p.produce("t", key=b"%d" % i, value=b"c%d" % i)
        p.commit_transaction(20)
        p.begin_transaction()
        for i in range(10):
            p.produce("t", key=b"%d" % i, value=b"a%d" % i)
        p.flush(20)
        p.abort_transaction(20)
        p.begin_transaction()
        for i in range(4):
            p.produce("t", key=b"%d" % i, value=b"o%d" % i)
        p.flush(20)  # open: written, neither committed nor aborted
        assert consume(b.bootstrap, "t", "read_committed") == _values("c", 10)
        assert consume(b.bootstrap, "t", "read_uncommitted") == sorted(
            _values("a", 10) + _values("c", 10) + _values("o", 4))
        # ListOffsets: read_committed stops at the open transaction (LSO < high watermark).
        with RawClient(b.bootstrap) as c:
            def latest(iso: int) -> list[int]:
                r = c.request(2, 4, replica_id=-1, isolation_level=iso, topics=[
                    {"name": "t", "partitions": [{"partition_index": i, "timestamp": -1}
                                                 for i in range(2)]}])
                return [int(x.offset) for x in r.topics[0].partitions]
            lsos, hws = latest(1), latest(0)
            assert all(lso <= hw for lso, hw in zip(lsos, hws, strict=True))
            assert sum(hws) - sum(lsos) == 4  # the open transaction's 4 records
            # (an unknown id is answered TRANSACTIONAL_ID_NOT_FOUND with start time -1, as
            # Kafka does; kio's reader cannot parse a negative timestamp, so not asked here)
            d = c.request(65, 0, transactional_ids=["tx-vis"])
            (ours,) = d.transaction_states
            assert ours.transaction_state == "Ongoing" and ours.topics
            lst = c.request(66, 1, state_filters=["Ongoing"], producer_id_filters=[],
                            duration_filter=-1)
            assert [s.transactional_id for s in lst.transaction_states] == ["tx-vis"]
            prods = c.request(61, 0, topics=[{"name": "t", "partition_indexes": [0, 1]}])
            starts = [ap.current_txn_start_offset for part in prods.topics[0].partitions
                      for ap in part.active_producers]
            assert any(s >= 0 for s in starts)
        p.commit_transaction(20)
        assert consume(b.bootstrap, "t", "read_committed") == sorted(
            _values("c", 10) + _values("o", 4))


def test_a_zombie_producer_is_fenced() -> None:
    with seriatim.testing.broker(**BROKER) as b:
        zombie = _producer(b.bootstrap, "tx-z")
        zombie.init_transactions(20)
        zombie.begin_transaction()
        zombie.produce("t", value=b"zombie")
        zombie.flush(20)
        fresh = _producer(b.bootstrap, "tx-z")
        fresh.init_transactions(20)  # fences the zombie, aborting its transaction
        fresh.begin_transaction()
        fresh.produce("t", value=b"fresh")
        fresh.commit_transaction(20)
        with pytest.raises(ck.KafkaException) as e:
            zombie.produce("t", value=b"late")
            zombie.commit_transaction(10)
        err = e.value.args[0]
        assert err.fatal() or err.txn_requires_abort() or not err.retriable()
        assert consume(b.bootstrap, "t", "read_committed") == [b"fresh"]


def test_the_coordinator_aborts_a_transaction_past_its_timeout() -> None:
    with seriatim.testing.broker(**BROKER) as b:
        p = _producer(b.bootstrap, "tx-timeout", **{"transaction.timeout.ms": 1000})
        p.init_transactions(20)
        p.begin_transaction()
        p.produce("t", value=b"late")
        p.flush(20)
        time.sleep(2.0)
        with RawClient(b.bootstrap) as c:
            d = c.request(65, 0, transactional_ids=["tx-timeout"])
            assert d.transaction_states[0].transaction_state == "CompleteAbort"
        with pytest.raises(ck.KafkaException):
            p.commit_transaction(10)
        assert consume(b.bootstrap, "t", "read_committed") == []
        assert consume(b.bootstrap, "t", "read_uncommitted") == [b"late"]


def test_a_transaction_survives_a_broker_restart() -> None:
    with seriatim.testing.broker(**BROKER) as b:
        p = _producer(b.bootstrap, "tx-restart")
        p.init_transactions(20)
        p.begin_transaction()
        for i in range(5):
            p.produce("t", value=b"r%d" % i)
        p.flush(20)
        b.restart()
        p.commit_transaction(30)
        assert consume(b.bootstrap, "t", "read_committed") == _values("r", 5)


def test_kafka_python_transactional_producer() -> None:
    kafka = pytest.importorskip("kafka")
    with seriatim.testing.broker(**BROKER) as b:
        p = kafka.KafkaProducer(bootstrap_servers=b.bootstrap, transactional_id="tx-kp")
        try:
            p.init_transactions()
            p.begin_transaction()
            for i in range(5):
                p.send("t", value=b"k%d" % i)
            p.commit_transaction()
            p.begin_transaction()
            for i in range(5):
                p.send("t", value=b"x%d" % i)
            p.flush()
            p.abort_transaction()
        finally:
            p.close(5)
        assert consume(b.bootstrap, "t", "read_committed") == _values("k", 5)
        assert len(consume(b.bootstrap, "t", "read_uncommitted")) == 10


def test_aiokafka_transactional_producer() -> None:
    aiokafka = pytest.importorskip("aiokafka")
    with seriatim.testing.broker(**BROKER) as b:

        async def run() -> None:
            p = aiokafka.AIOKafkaProducer(bootstrap_servers=b.bootstrap,
                                          transactional_id="tx-aio")
            await p.start()
            try:
                async with p.transaction():
                    for i in range(5):
                        await p.send("t", value=b"y%d" % i)
                await p.begin_transaction()
                await p.send("t", value=b"gone")
                await p.abort_transaction()
            finally:
                await p.stop()

        asyncio.run(run())
        assert consume(b.bootstrap, "t", "read_committed") == _values("y", 5)
        assert len(consume(b.bootstrap, "t", "read_uncommitted")) == 6
