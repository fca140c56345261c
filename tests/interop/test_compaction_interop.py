"""A compacted topic end to end: confluent-kafka produces updates, the in-process broker's
cleaner compacts on demand (``testing.compact``), and a consumer from offset 0 gets exactly one
record per key, each the latest. A keyless record is refused with INVALID_RECORD."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import seriatim.testing

DEADLINE_S = 30.0
TOPIC = "compacted"


def _create(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    config = {"cleanup.policy": "compact", "segment.bytes": "4096", "segment.ms": "1000",
              "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "100"}
    futures = admin.create_topics([NewTopic(TOPIC, 1, 1, config=config)], operation_timeout=30)
    futures[TOPIC].result(timeout=DEADLINE_S)


def _produce(bootstrap: str, records: list[tuple[bytes | None, bytes | None, int]]
             ) -> list[str]:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0,
                         "retries": 0, "enable.idempotence": False})
    errors: list[str] = []

    def report(err: KafkaError | None, msg: object) -> None:
        if err is not None:
            errors.append(err.name())

    for key, value, ts in records:
        producer.produce(TOPIC, key=key, value=value, timestamp=ts, on_delivery=report)
        producer.flush(DEADLINE_S)  # one record per batch: keyless ones fail alone
    assert producer.flush(DEADLINE_S) == 0
    return errors


def _consume_all(bootstrap: str, end: int) -> list[tuple[int, bytes | None, bytes | None]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"c-{uuid.uuid4()}",
                         "enable.auto.commit": False, "check.crcs": True})
    out: list[tuple[int, bytes | None, bytes | None]] = []
    try:
        consumer.assign([TopicPartition(TOPIC, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline and (not out or out[-1][0] < end - 1):
            msg = consumer.poll(0.2)
            if msg is None or msg.error() is not None:
                continue
            out.append((msg.offset(), msg.key(), msg.value()))
    finally:
        consumer.close()
    return out


def test_a_compacted_topic_serves_one_latest_value_per_key(tmp_path: Path) -> None:
    with seriatim.testing.broker(tmp_path / "data") as broker:
        _create(broker.bootstrap)
        t0 = int(time.time() * 1000) - 60_000
        updates = [(b"key-%d" % (i % 10), b"value-%d" % i, t0 + i) for i in range(300)]
        updates.insert(150, (b"key-3", None, t0 + 150))  # a tombstone, then key-3 again
        assert _produce(broker.bootstrap, updates) == []
        # a keyless record on a compacted topic is refused
        assert _produce(broker.bootstrap, [(None, b"no key", t0 + 400)]) == ["INVALID_RECORD"]
        # a record an hour later rolls the segment (segment.ms), sealing every update
        assert _produce(broker.bootstrap, [(b"sentinel", b"s", t0 + 3_600_000)]) == []

        stats = broker.compact(TOPIC)
        assert stats.cleaned and stats.records_removed >= 290

        got = _consume_all(broker.bootstrap, end=302)
        keys = [k for _, k, _ in got]
        assert len(keys) == len(set(keys)) == 11, got
        latest = {k: v for k, v, _ in updates}
        latest[b"sentinel"] = b"s"
        assert {k: v for _, k, v in got} == latest
        offsets = [o for o, _, _ in got]
        assert offsets == sorted(offsets) and offsets[-1] == 301
        assert broker.apply_retention(TOPIC) == 0  # compact only: retention never deletes
