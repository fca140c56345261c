"""Consumer groups with kafka-python: three members share six partitions, one leaves, and a
new member resumes from the committed offsets after a broker restart."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from seriatim.testing import InProcessBroker

kafka = pytest.importorskip("kafka")
from kafka.admin import KafkaAdminClient, NewTopic  # noqa: E402

TOPIC = "orders"
PARTITIONS = 6


@pytest.fixture
def broker() -> Iterator[InProcessBroker]:
    with InProcessBroker() as b:
        admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
        try:
            admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
        finally:
            admin.close()
        yield b


def produce(bootstrap: str, start: int, count: int) -> None:
    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for i in range(start, start + count):
            producer.send(TOPIC, value=str(i).encode(), partition=i % PARTITIONS)
        producer.flush(10)
    finally:
        producer.close()


def consumer(bootstrap: str, group: str) -> kafka.KafkaConsumer:
    c = kafka.KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        max_poll_interval_ms=20000,  # bounded rebalance timeout (default 300 s)
        heartbeat_interval_ms=500,
        metadata_max_age_ms=1000,
    )
    c.subscribe([TOPIC])
    # Learn the topic's metadata before the first poll joins the group: otherwise kafka-python
    # 3.0.12 can assign from stale metadata, rejoin, and drop its own SyncGroup reply when a
    # poll times out mid-join (see test_groups_extra.py), leaving a member with no partitions.
    assert c.partitions_for_topic(TOPIC)
    return c


def poll_until(
    consumers: list[kafka.KafkaConsumer],
    done: Callable[[], bool],
    *,
    sink: list[int] | None = None,
    timeout_s: float = 30,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for c in consumers:
            for records in c.poll(timeout_ms=50).values():
                if sink is not None:
                    sink.extend(int(r.value) for r in records)
        if done():
            return
    raise AssertionError("condition not reached in time")


def partitioned(consumers: list[kafka.KafkaConsumer]) -> bool:
    sets = [{tp.partition for tp in c.assignment()} for c in consumers]
    return (
        all(sets)
        and sum(len(s) for s in sets) == PARTITIONS
        and set().union(*sets) == set(range(PARTITIONS))
    )


def test_group_rebalances_commits_and_resumes_after_restart(broker: InProcessBroker) -> None:
    produce(broker.bootstrap, 0, 60)
    consumers = [consumer(broker.bootstrap, "kp") for _ in range(3)]
    seen: list[int] = []
    try:
        poll_until(consumers, lambda: partitioned(consumers) and len(set(seen)) == 60, sink=seen)
        for c in consumers:
            c.commit()
        consumers.pop().close()  # leaves the group
        poll_until(consumers, lambda: partitioned(consumers))
    finally:
        for c in consumers:
            c.close()
    assert sorted(set(seen)) == list(range(60))

    broker.restart()
    produce(broker.bootstrap, 60, 30)
    late = consumer(broker.bootstrap, "kp")
    got: list[int] = []
    try:
        poll_until([late], lambda: len(got) >= 30, sink=got)
    finally:
        late.close()
    assert sorted(got) == list(range(60, 90))
