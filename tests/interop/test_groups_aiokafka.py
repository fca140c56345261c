"""Consumer groups with aiokafka (old, non-flexible versions: JoinGroup v5, SyncGroup v3,
OffsetCommit v3, OffsetFetch v3): three members share six partitions, one leaves, and a new
member resumes from the committed offsets after a broker restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest

from seriatim.testing import InProcessBroker

aiokafka = pytest.importorskip("aiokafka")
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402

TOPIC = "orders"
PARTITIONS = 6


@pytest.fixture
def broker() -> Iterator[InProcessBroker]:
    with InProcessBroker() as b:
        yield b


async def create_topic(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
    finally:
        await admin.close()


async def produce(bootstrap: str, start: int, count: int) -> None:
    producer = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(start, start + count):
            await producer.send(TOPIC, value=str(i).encode(), partition=i % PARTITIONS)
        await producer.flush()
    finally:
        await producer.stop()


async def consumer(bootstrap: str, group: str) -> aiokafka.AIOKafkaConsumer:
    c = aiokafka.AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        max_poll_interval_ms=20000,  # bounded rebalance timeout (default 300 s)
        heartbeat_interval_ms=500,
        metadata_max_age_ms=1000,
    )
    await c.start()
    return c


async def poll_until(
    consumers: list[aiokafka.AIOKafkaConsumer],
    done: Callable[[], bool],
    *,
    sink: list[int] | None = None,
    timeout_s: float = 30,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for c in consumers:
            batches = await c.getmany(timeout_ms=50)
            for records in batches.values():
                if sink is not None:
                    sink.extend(int(r.value) for r in records)
        if done():
            return
    raise AssertionError("condition not reached in time")


def partitioned(consumers: list[aiokafka.AIOKafkaConsumer]) -> bool:
    sets = [{tp.partition for tp in c.assignment()} for c in consumers]
    return (
        all(sets)
        and sum(len(s) for s in sets) == PARTITIONS
        and set().union(*sets) == set(range(PARTITIONS))
    )


def test_group_rebalances_commits_and_resumes_after_restart(broker: InProcessBroker) -> None:
    async def first_phase() -> list[int]:
        await create_topic(broker.bootstrap)
        await produce(broker.bootstrap, 0, 60)
        consumers = [await consumer(broker.bootstrap, "aio") for _ in range(3)]
        seen: list[int] = []
        try:
            await poll_until(
                consumers, lambda: partitioned(consumers) and len(set(seen)) == 60, sink=seen
            )
            for c in consumers:
                await c.commit()
            await consumers.pop().stop()  # leaves the group
            await poll_until(consumers, lambda: partitioned(consumers))
        finally:
            for c in consumers:
                await c.stop()
        return seen

    seen = asyncio.run(first_phase())
    assert sorted(set(seen)) == list(range(60))

    broker.restart()

    async def second_phase() -> list[int]:
        await produce(broker.bootstrap, 60, 30)
        late = await consumer(broker.bootstrap, "aio")
        got: list[int] = []
        try:
            await poll_until([late], lambda: len(got) >= 30, sink=got)
        finally:
            await late.stop()
        return got

    assert sorted(asyncio.run(second_phase())) == list(range(60, 90))
