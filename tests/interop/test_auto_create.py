"""Producing to a topic that does not exist auto-creates it with ``num.partitions``
(``auto.create.topics.enable=true``), for every client library; with auto-creation off the
producer fails and no topic appears."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from interop_support import DEADLINE_S, RawClient

import seriatim.testing

pytestmark = [pytest.mark.interop, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

N = 60


def _produce_confluent(bootstrap: str, topic: str) -> set[int]:
    from confluent_kafka import Producer

    parts: set[int] = set()
    errors: list[str] = []
    producer = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 10_000})
    try:
        for i in range(N):
            producer.produce(
                topic,
                key=b"k%d" % i,
                value=b"v",
                on_delivery=lambda e, m: errors.append(str(e)) if e else parts.add(m.partition()),
            )
        producer.flush(DEADLINE_S)
    finally:
        producer.close()
    assert not errors, errors[:3]
    return parts


def _produce_kafka_python(bootstrap: str, topic: str) -> set[int]:
    from kafka import KafkaProducer  # type: ignore[import-untyped]

    producer = KafkaProducer(bootstrap_servers=bootstrap, max_block_ms=10_000)
    try:
        futures = [producer.send(topic, key=b"k%d" % i, value=b"v") for i in range(N)]
        return {f.get(timeout=DEADLINE_S).partition for f in futures}
    finally:
        producer.close(timeout=DEADLINE_S)


def _produce_aiokafka(bootstrap: str, topic: str) -> set[int]:
    from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]

    async def go() -> set[int]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        await producer.start()
        try:
            futures = [await producer.send(topic, key=b"k%d" % i, value=b"v") for i in range(N)]
            return {md.partition for md in await asyncio.gather(*futures)}
        finally:
            await producer.stop()

    return asyncio.run(asyncio.wait_for(go(), DEADLINE_S))


PRODUCERS = {
    "confluent": _produce_confluent,
    "kafka-python": _produce_kafka_python,
    "aiokafka": _produce_aiokafka,
}


def _topics(bootstrap: str) -> dict[str, int]:
    with RawClient(bootstrap) as c:
        resp = c.request(3, 9, topics=None, allow_auto_topic_creation=False)
    return {t.name: len(t.partitions) for t in resp.topics}


@pytest.mark.parametrize("client", sorted(PRODUCERS))
def test_producing_to_a_missing_topic_creates_it_with_num_partitions(
    tmp_path: Path, client: str
) -> None:
    config = {"auto.create.topics.enable": "true", "num.partitions": "3"}
    with seriatim.testing.broker(tmp_path / "d", config=config) as b:
        parts = PRODUCERS[client](b.bootstrap, "made-on-demand")
        assert parts == {0, 1, 2}
        assert _topics(b.bootstrap) == {"made-on-demand": 3}
