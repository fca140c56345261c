"""kafka-python 3.0 (pure Python) against a real broker: the interop round trip.

Same scenario as the confluent-kafka test (see interop_support.run_roundtrip): 10k keyed
messages with headers over 5 codecs x acks 1/all (idempotent with acks=all, which is
kafka-python's default producer), a LogAppendTime topic, manual-assign reads before and after
a restart, ListOffsets by time, watermarks, topic deletion.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import pytest
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
from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # type: ignore[import-untyped]
from kafka.admin import KafkaAdminClient, NewTopic  # type: ignore[import-untyped]

pytestmark = [pytest.mark.interop, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


class KafkaPythonDriver(Driver):
    name = "kafkapython"

    def _admin(self, bootstrap: str) -> KafkaAdminClient:
        return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)

    def create_topic(
        self, bootstrap: str, name: str, partitions: int, configs: Mapping[str, str]
    ) -> None:
        admin = self._admin(bootstrap)
        try:
            admin.create_topics(
                [NewTopic(name, partitions, 1, topic_configs=dict(configs))], timeout_ms=30_000
            )
        finally:
            admin.close()

    def delete_topic(self, bootstrap: str, name: str) -> None:
        admin = self._admin(bootstrap)
        try:
            admin.delete_topics([name], timeout_ms=30_000)
        finally:
            admin.close()

    def list_topics(self, bootstrap: str) -> set[str]:
        admin = self._admin(bootstrap)
        try:
            return set(admin.list_topics())
        finally:
            admin.close()

    def produce(
        self, bootstrap: str, topic: str, msgs: list[Sent], codec: str, acks: int
    ) -> tuple[Delivered, AppendTimes]:
        producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all" if acks == -1 else acks,
            enable_idempotence=acks == -1,
            compression_type=None if codec == "none" else codec,
            linger_ms=5,
        )
        delivered: Delivered = {}
        times: AppendTimes = {}
        try:
            futures = [
                (
                    m,
                    producer.send(
                        topic,
                        key=m.key,
                        value=m.value,
                        headers=list(m.headers),
                        timestamp_ms=m.timestamp_ms,
                    ),
                )
                for m in msgs
            ]
            producer.flush(timeout=DEADLINE_S)
            for m, future in futures:
                md = future.get(timeout=DEADLINE_S)
                delivered[(md.partition, md.offset)] = m
                if md.timestamp != m.timestamp_ms:  # the broker's LogAppendTime came back
                    times[(md.partition, md.offset)] = md.timestamp
        finally:
            producer.close(timeout=DEADLINE_S)
        return delivered, times

    def _consumer(self, bootstrap: str, read_committed: bool = True) -> KafkaConsumer:
        return KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="none",  # an out-of-range reset would hide a bug
            isolation_level="read_committed" if read_committed else "read_uncommitted",
            check_crcs=True,
        )

    def consume(self, bootstrap: str, topic: str, total: int, read_committed: bool) -> list[Got]:
        consumer = self._consumer(bootstrap, read_committed)
        out: list[Got] = []
        try:
            parts = sorted(consumer.partitions_for_topic(topic) or ())
            consumer.assign([TopicPartition(topic, p) for p in parts])
            consumer.seek_to_beginning()
            deadline = time.monotonic() + DEADLINE_S
            while len(out) < total and time.monotonic() < deadline:
                batches = consumer.poll(timeout_ms=1000, max_records=2000)
                for tp in sorted(batches, key=lambda t: t.partition):
                    for r in batches[tp]:
                        out.append(
                            Got(
                                r.partition,
                                r.offset,
                                r.key,
                                r.value,
                                normalise_headers(r.headers),
                                r.timestamp,
                                r.timestamp_type == 1,
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
            for p, ts in queries:
                tp = TopicPartition(topic, p)
                hit = consumer.offsets_for_times({tp: ts})[tp]
                out[(p, ts)] = None if hit is None else hit.offset
        finally:
            consumer.close()
        return out

    def watermarks(self, bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
        consumer = self._consumer(bootstrap)
        try:
            tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
            low = consumer.beginning_offsets(tps)
            high = consumer.end_offsets(tps)
            return {tp.partition: (low[tp], high[tp]) for tp in tps}
        finally:
            consumer.close()


def test_kafka_python_round_trip(tmp_path):  # type: ignore[no-untyped-def]
    import seriatim.testing

    with seriatim.testing.broker(tmp_path / "data") as broker:
        run_roundtrip(KafkaPythonDriver(), broker)
