"""confluent-kafka (librdkafka 2.16) against a real broker: the interop round trip.

Proves, for 10k keyed messages with headers (5 codecs x acks 1/all, idempotent with acks=all)
and a LogAppendTime topic: delivery offsets contiguous from 0 per partition; batches stored
with the producer's codec; a manual-assign read (read_committed, then read_uncommitted after a
restart) returns every message exactly once, in order, byte-equal, with the sent timestamps
(or broker time); ListOffsets by time and the watermarks are right before and after the
restart; the topics can be deleted.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic
from interop_support import (
    DEADLINE_S,
    AppendTimes,
    Delivered,
    Driver,
    Got,
    Sent,
    normalise_headers,
    run_roundtrip,
)

pytestmark = pytest.mark.interop


class ConfluentDriver(Driver):
    name = "confluent"

    def create_topic(
        self, bootstrap: str, name: str, partitions: int, configs: Mapping[str, str]
    ) -> None:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        futures = admin.create_topics(
            [NewTopic(name, partitions, 1, config=dict(configs))], operation_timeout=30
        )
        futures[name].result(timeout=DEADLINE_S)

    def delete_topic(self, bootstrap: str, name: str) -> None:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.delete_topics([name], operation_timeout=30)[name].result(timeout=DEADLINE_S)

    def list_topics(self, bootstrap: str) -> set[str]:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        return set(admin.list_topics(timeout=DEADLINE_S).topics)

    def produce(
        self, bootstrap: str, topic: str, msgs: list[Sent], codec: str, acks: int
    ) -> tuple[Delivered, AppendTimes]:
        producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all" if acks == -1 else str(acks),
                "enable.idempotence": acks == -1,
                "compression.type": codec,
                "linger.ms": 5,
                "batch.num.messages": 250,
            }
        )
        delivered: Delivered = {}
        times: AppendTimes = {}
        errors: list[str] = []
        try:
            for m in msgs:

                def report(err: object, msg: object, m: Sent = m) -> None:
                    if err is not None:
                        errors.append(str(err))
                        return
                    key = (msg.partition(), msg.offset())  # type: ignore[attr-defined]
                    delivered[key] = m
                    ts_type, ts = msg.timestamp()  # type: ignore[attr-defined]
                    if ts_type == TIMESTAMP_LOG_APPEND_TIME:
                        times[key] = ts

                while True:
                    try:
                        producer.produce(
                            topic,
                            key=m.key,
                            value=m.value,
                            headers=list(m.headers) or None,
                            timestamp=m.timestamp_ms,
                            on_delivery=report,
                        )
                        break
                    except BufferError:
                        producer.poll(0.05)
                producer.poll(0)
            assert producer.flush(DEADLINE_S) == 0, "messages left undelivered"
        finally:
            producer.close()
        assert not errors, errors[:3]
        return delivered, times

    def _consumer(self, bootstrap: str, read_committed: bool = True) -> Consumer:
        return Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"interop-{uuid.uuid4()}",  # required even for manual assign
                "enable.auto.commit": False,
                "isolation.level": "read_committed" if read_committed else "read_uncommitted",
                "check.crcs": True,
            }
        )

    def consume(self, bootstrap: str, topic: str, total: int, read_committed: bool) -> list[Got]:
        consumer = self._consumer(bootstrap, read_committed)
        out: list[Got] = []
        try:
            meta = consumer.list_topics(topic, timeout=DEADLINE_S)
            parts = sorted(meta.topics[topic].partitions)
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
            deadline = time.monotonic() + DEADLINE_S
            while len(out) < total and time.monotonic() < deadline:
                for m in consumer.consume(num_messages=1000, timeout=1.0):
                    if m.error() is not None:
                        raise KafkaException(m.error())
                    ts_type, ts = m.timestamp()
                    out.append(
                        Got(
                            m.partition(),
                            m.offset(),
                            m.key(),
                            m.value(),
                            normalise_headers(m.headers()),
                            ts,
                            ts_type == TIMESTAMP_LOG_APPEND_TIME,
                        )
                    )
        finally:
            consumer.close()
        return out

    def offsets_for_times(
        self, bootstrap: str, topic: str, queries: list[tuple[int, int]]
    ) -> dict[tuple[int, int], int | None]:
        consumer = self._consumer(bootstrap)
        out: dict[tuple[int, int], int | None] = {}
        try:
            for p, ts in queries:  # one partition may appear with several timestamps
                (tp,) = consumer.offsets_for_times([TopicPartition(topic, p, ts)], DEADLINE_S)
                assert tp.error is None, tp.error
                out[(p, ts)] = None if tp.offset < 0 else tp.offset
        finally:
            consumer.close()
        return out

    def watermarks(self, bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
        consumer = self._consumer(bootstrap)
        try:
            meta = consumer.list_topics(topic, timeout=DEADLINE_S)
            return {
                p: consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=DEADLINE_S, cached=False
                )
                for p in meta.topics[topic].partitions
            }
        finally:
            consumer.close()


def test_confluent_kafka_round_trip(tmp_path):  # type: ignore[no-untyped-def]
    import seriatim.testing

    with seriatim.testing.broker(tmp_path / "data") as broker:
        run_roundtrip(ConfluentDriver(), broker)
