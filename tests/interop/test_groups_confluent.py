"""Consumer groups with confluent-kafka (librdkafka): rebalancing, leave, death, committed
offsets, static membership, and all of it across a broker restart."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator

import pytest

from seriatim.testing import InProcessBroker

ck = pytest.importorskip("confluent_kafka")
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

TOPIC = "orders"
PARTITIONS = 6
FAST = {
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 500,
    # The rebalance timeout: bounded so that a stalled rebalance fails in seconds, not in the
    # default 300 s (which is also pytest's per-test timeout).
    "max.poll.interval.ms": 20000,
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    "topic.metadata.refresh.interval.ms": 1000,
}


@pytest.fixture
def broker(tmp_path: object) -> Iterator[InProcessBroker]:
    with InProcessBroker(config={"num.partitions": 1}) as b:
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(10)
        yield b


def produce(bootstrap: str, start: int, count: int) -> None:
    producer = ck.Producer({"bootstrap.servers": bootstrap})
    for i in range(start, start + count):
        producer.produce(TOPIC, key=str(i).encode(), value=str(i).encode(), partition=i % 6)
    assert producer.flush(10) == 0


def consumer(bootstrap: str, group: str, **extra: object) -> ck.Consumer:
    conf: dict[str, object] = {"bootstrap.servers": bootstrap, "group.id": group, **FAST}
    conf.update(extra)
    c = ck.Consumer(conf)
    c.subscribe([TOPIC])
    return c


def poll_until(
    consumers: list[ck.Consumer],
    done: Callable[[], bool],
    *,
    timeout_s: float = 30,
    sink: list[int] | None = None,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for c in consumers:
            msg = c.poll(0.05)
            if msg is not None and msg.error() is None and sink is not None:
                sink.append(int(msg.value()))
        if done():
            return
    raise AssertionError("condition not reached in time")


def owned(consumers: list[ck.Consumer]) -> list[set[int]]:
    return [{tp.partition for tp in c.assignment()} for c in consumers]


def partitioned(consumers: list[ck.Consumer]) -> bool:
    """Every partition owned by exactly one consumer, every consumer owning some."""
    sets = owned(consumers)
    return (
        all(sets)
        and sum(len(s) for s in sets) == PARTITIONS
        and set().union(*sets) == set(range(PARTITIONS))
    )


def commit_all(consumers: list[ck.Consumer]) -> None:
    for c in consumers:
        if c.assignment():
            c.commit(asynchronous=False)


def test_three_members_share_six_partitions_then_one_leaves(broker: InProcessBroker) -> None:
    produce(broker.bootstrap, 0, 60)
    consumers = [consumer(broker.bootstrap, "g1") for _ in range(3)]
    seen: list[int] = []
    try:
        poll_until(consumers, lambda: partitioned(consumers) and len(set(seen)) == 60, sink=seen)
        assert sorted(set(seen)) == list(range(60))
        commit_all(consumers)
        leaver = consumers.pop()
        leaver.close()
        poll_until(consumers, lambda: partitioned(consumers))
    finally:
        for c in consumers:
            c.close()
    # Nothing lost, nothing re-read: a new member resumes from the committed offsets.
    produce(broker.bootstrap, 60, 30)
    late = consumer(broker.bootstrap, "g1")
    got: list[int] = []
    try:
        poll_until([late], lambda: len(got) >= 30, sink=got)
        time.sleep(0.3)
        poll_until([late], lambda: True, sink=got)
    finally:
        late.close()
    assert sorted(got) == list(range(60, 90))


def test_committed_offsets_survive_a_broker_restart(broker: InProcessBroker) -> None:
    produce(broker.bootstrap, 0, 30)
    c = consumer(broker.bootstrap, "g-restart")
    seen: list[int] = []
    try:
        poll_until([c], lambda: len(seen) == 30, sink=seen)
        c.commit(asynchronous=False)
    finally:
        c.close()
    broker.restart()
    produce(broker.bootstrap, 30, 12)
    c = consumer(broker.bootstrap, "g-restart")
    got: list[int] = []
    try:
        poll_until([c], lambda: len(got) >= 12, sink=got)
    finally:
        c.close()
    assert sorted(got) == list(range(30, 42))


_DYING_CONSUMER = textwrap.dedent(
    """
    import sys, confluent_kafka as ck
    c = ck.Consumer({"bootstrap.servers": sys.argv[1], "group.id": "g-death",
                     "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
                     "max.poll.interval.ms": 20000, "auto.offset.reset": "earliest"})
    c.subscribe(["orders"])
    while True:
        c.poll(0.1)
        if c.assignment():
            print("assigned", flush=True)
    """
)


def test_a_dead_member_is_expired_and_its_partitions_move(broker: InProcessBroker) -> None:
    survivor = consumer(broker.bootstrap, "g-death")
    proc = subprocess.Popen(
        [sys.executable, "-c", _DYING_CONSUMER, broker.bootstrap],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        stdout = proc.stdout

        def child_assigned() -> bool:
            # The survivor must keep polling (to rebalance) while we wait for the child.
            ready, _, _ = select.select([stdout], [], [], 0)
            return bool(ready) and "assigned" in stdout.readline()

        poll_until([survivor], child_assigned)
        poll_until([survivor], lambda: 0 < len(owned([survivor])[0]) < PARTITIONS)
        os.kill(proc.pid, signal.SIGKILL)  # no LeaveGroup: only the session timeout tells
        proc.wait(5)
        started = time.monotonic()
        poll_until([survivor], lambda: owned([survivor])[0] == set(range(PARTITIONS)))
        assert time.monotonic() - started > 3  # it took the session timeout, not a leave
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        survivor.close()


def _describe(bootstrap: str, group: str) -> object:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return admin.describe_consumer_groups([group])[group].result(10)


def test_static_members_and_offsets_survive_a_broker_restart(broker: InProcessBroker) -> None:
    produce(broker.bootstrap, 0, 60)
    static = [
        consumer(broker.bootstrap, "g-static", **{"group.instance.id": f"worker-{i}"})
        for i in range(2)
    ]
    seen: list[int] = []
    try:
        poll_until(static, lambda: partitioned(static) and len(set(seen)) == 60, sink=seen)
        before = {i: owned(static)[i] for i in range(2)}
        commit_all(static)
    finally:
        for c in static:
            c.close()  # static members do not leave on close
    desc = _describe(broker.bootstrap, "g-static")
    assert sorted(m.group_instance_id for m in desc.members) == ["worker-0", "worker-1"]

    broker.restart()
    desc = _describe(broker.bootstrap, "g-static")
    assert sorted(m.group_instance_id for m in desc.members) == ["worker-0", "worker-1"]
    assert str(desc.state).endswith("STABLE")

    produce(broker.bootstrap, 60, 30)
    static = [
        consumer(broker.bootstrap, "g-static", **{"group.instance.id": f"worker-{i}"})
        for i in range(2)
    ]
    got: list[int] = []
    try:
        poll_until(static, lambda: partitioned(static) and len(got) >= 30, sink=got)
        # The same instances own the same partitions: no rebalance moved them.
        assert {i: owned(static)[i] for i in range(2)} == before
    finally:
        for c in static:
            c.close()
    assert sorted(got) == list(range(60, 90))
