"""Consumer groups beyond one client library at a time.

* librdkafka's cooperative-sticky assignor: incremental rebalancing over classic rounds; only
  moved partitions are revoked; committed offsets hand partitions over exactly once.
* A static member (``group.instance.id``) restarting within its session timeout: no rebalance,
  the others see nothing, the new instance gets the old one's partitions (confluent-kafka and
  kafka-python).
* confluent-kafka, kafka-python and aiokafka members joining one group at once (range
  assignor): they converge, consume a produced set exactly once, and survive a leave.

Every member is wrapped in a small adapter (:class:`Member`) that records what it consumed
(value and next offset per partition) and its assignment callbacks, and commits exactly what it
consumed of the partitions it owns. The broker's own view (state, generation, committed
offsets) is read on its event loop.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from seriatim.coordinator import GroupState
from seriatim.testing import InProcessBroker

ck = pytest.importorskip("confluent_kafka")
kafka = pytest.importorskip("kafka")
aiokafka = pytest.importorskip("aiokafka")
from aiokafka.abc import ConsumerRebalanceListener as AioListener  # noqa: E402
from aiokafka.coordinator.assignors.range import (  # noqa: E402
    RangePartitionAssignor as AioRange,
)
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from kafka import ConsumerRebalanceListener as KpListenerBase  # noqa: E402
from kafka.coordinator.assignors.range import RangePartitionAssignor as KpRange  # noqa: E402
from kafka.structs import OffsetAndMetadata  # noqa: E402

TOPIC = "orders"
PARTITIONS = 6
SESSION_MS = 6000
HEARTBEAT_MS = 500
REBALANCE_MS = 20000  # max.poll.interval.ms: a stalled rebalance fails in seconds
DEADLINE_S = 30.0


@pytest.fixture
def broker() -> Iterator[InProcessBroker]:
    with InProcessBroker() as b:
        admin = AdminClient({"bootstrap.servers": b.bootstrap})
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])[TOPIC].result(10)
        yield b


def produce(bootstrap: str, start: int, count: int) -> None:
    """Values ``start..start+count-1``, value ``i`` to partition ``i % 6``."""
    producer = ck.Producer({"bootstrap.servers": bootstrap})
    for i in range(start, start + count):
        producer.produce(TOPIC, value=str(i).encode(), partition=i % PARTITIONS)
    assert producer.flush(10) == 0


# --- the broker's view ---------------------------------------------------------------------


def group_view(b: InProcessBroker, group: str) -> tuple[GroupState | None, int, int]:
    """(state, generation, member count) as the coordinator has it."""

    async def read() -> tuple[GroupState | None, int, int]:
        core = b.app.state.groups.core  # type: ignore[attr-defined]
        summary = core.describe(group)
        return core.state_of(group), core.generation_of(group), len(summary.members)

    return b.call(read())


def group_protocol(b: InProcessBroker, group: str) -> str:
    """The assignor the group chose (shown while Stable)."""

    async def read() -> str:
        protocol: str = b.app.state.groups.core.describe(group).protocol  # type: ignore[attr-defined]
        return protocol

    return b.call(read())


def committed(b: InProcessBroker, group: str) -> dict[int, int]:
    async def read() -> dict[int, int]:
        core = b.app.state.groups.core  # type: ignore[attr-defined]
        found = core.fetch_offsets(group, [(TOPIC, range(PARTITIONS))])
        return {p: o.offset for (_, p), o in found.items() if o is not None}

    return b.call(read())


# --- members -------------------------------------------------------------------------------


class Member:
    """One consumer of any library, driven from the test thread."""

    name = "member"

    def __init__(self) -> None:
        self.next_offset: dict[int, int] = {}  # partition -> offset after the last consumed
        self.assigns: list[set[int]] = []  # non-empty assignment callbacks, in order
        self.revokes: list[set[int]] = []  # non-empty revocation callbacks, in order
        self.lost: list[set[int]] = []

    def assigned(self) -> set[int]:
        raise NotImplementedError

    def pump(self, sink: list[int]) -> None:
        """Poll once (briefly); consumed values go to ``sink``."""
        raise NotImplementedError

    def commit(self) -> None:
        """Commit (synchronously) what was consumed of the partitions owned now."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _offsets_to_commit(self, partitions: set[int]) -> dict[int, int]:
        return {p: o for p, o in self.next_offset.items() if p in partitions}

    def _assigned_cb(self, partitions: set[int]) -> None:
        if partitions:
            self.assigns.append(partitions)

    def _revoked_cb(self, partitions: set[int]) -> None:
        if partitions:
            self.revokes.append(partitions)

    def __repr__(self) -> str:
        try:
            owns = sorted(self.assigned())
        except Exception:  # closed
            return f"<{self.name} closed>"
        return f"<{self.name} owns {owns}>"


class ConfluentMember(Member):
    def __init__(
        self,
        bootstrap: str,
        group: str,
        *,
        strategy: str | None = None,
        instance_id: str | None = None,
    ) -> None:
        super().__init__()
        self.name = f"confluent[{instance_id or strategy or 'default'}]"
        conf: dict[str, object] = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "session.timeout.ms": SESSION_MS,
            "heartbeat.interval.ms": HEARTBEAT_MS,
            "max.poll.interval.ms": REBALANCE_MS,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "topic.metadata.refresh.interval.ms": 1000,
        }
        if strategy is not None:
            conf["partition.assignment.strategy"] = strategy
        if instance_id is not None:
            conf["group.instance.id"] = instance_id
        self.cooperative = strategy == "cooperative-sticky"
        self.c = ck.Consumer(conf)
        self.c.subscribe(
            [TOPIC], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )

    def _on_assign(self, c: Any, tps: list[Any]) -> None:
        if self.cooperative:
            c.incremental_assign(tps)
        else:
            c.assign(tps)
        self._assigned_cb({tp.partition for tp in tps})

    def _on_revoke(self, c: Any, tps: list[Any]) -> None:
        revoked = {tp.partition for tp in tps}
        self._revoked_cb(revoked)
        # Hand the partitions over at the offsets consumed: their next owner resumes there.
        self._commit(revoked)
        if self.cooperative:
            c.incremental_unassign(tps)
        else:
            c.unassign()

    def _on_lost(self, c: Any, tps: list[Any]) -> None:
        self.lost.append({tp.partition for tp in tps})
        if self.cooperative:
            c.incremental_unassign(tps)
        else:
            c.unassign()

    def assigned(self) -> set[int]:
        return {tp.partition for tp in self.c.assignment()}

    def pump(self, sink: list[int]) -> None:
        msg = self.c.poll(0.05)
        if msg is not None and msg.error() is None:
            self.next_offset[msg.partition()] = msg.offset() + 1
            sink.append(int(msg.value()))

    def _commit(self, partitions: set[int]) -> None:
        offsets = self._offsets_to_commit(partitions)
        if offsets:
            tps = [ck.TopicPartition(TOPIC, p, o) for p, o in sorted(offsets.items())]
            for tp in self.c.commit(offsets=tps, asynchronous=False):
                assert tp.error is None, tp

    def commit(self) -> None:
        self._commit(self.assigned())

    def close(self) -> None:
        self.c.close()


class _KpListener(KpListenerBase):  # type: ignore[misc]
    """Records only: kafka-python 3 runs listeners on its IO thread, where a blocking commit
    is refused, so the tests using it rebalance only with everything consumed committed."""

    def __init__(self, member: KafkaPythonMember) -> None:
        self.member = member

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.member._revoked_cb({tp.partition for tp in revoked})

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.member._assigned_cb({tp.partition for tp in assigned})


class KafkaPythonMember(Member):
    def __init__(self, bootstrap: str, group: str, *, instance_id: str | None = None) -> None:
        super().__init__()
        self.name = f"kafka-python[{instance_id or 'range'}]"
        self.c = kafka.KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            group_instance_id=instance_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=SESSION_MS,
            heartbeat_interval_ms=HEARTBEAT_MS,
            max_poll_interval_ms=REBALANCE_MS,
            metadata_max_age_ms=1000,
            partition_assignment_strategy=[KpRange],
        )
        self.c.subscribe([TOPIC], listener=_KpListener(self))
        # Know the subscribed topic before joining (the join happens in the first poll), or a
        # leader assigns from a stale metadata snapshot and rejoins once the metadata arrives:
        # an extra rebalance (a restarted static leader would cause one), and kafka-python
        # 3.0.12 can then drop its own SyncGroup reply when a poll times out mid-join
        # (join_group_async stops awaiting the join task once need_rejoin() turns false), so
        # the member never takes its partitions.
        assert self.c.partitions_for_topic(TOPIC) == set(range(PARTITIONS))

    def assigned(self) -> set[int]:
        return {tp.partition for tp in self.c.assignment()}

    def pump(self, sink: list[int]) -> None:
        for tp, records in self.c.poll(timeout_ms=50).items():
            for r in records:
                self.next_offset[tp.partition] = r.offset + 1
                sink.append(int(r.value))

    def _commit(self, partitions: set[int]) -> None:
        offsets = self._offsets_to_commit(partitions)
        if offsets:
            self.c.commit(
                {
                    kafka.TopicPartition(TOPIC, p): OffsetAndMetadata(o, "", -1)
                    for p, o in offsets.items()
                }
            )

    def commit(self) -> None:
        self._commit(self.assigned())

    def close(self) -> None:
        self.c.close()


class _AioListener(AioListener):  # type: ignore[misc]
    def __init__(self, member: AioMember) -> None:
        self.member = member

    async def on_partitions_revoked(self, revoked: Any) -> None:
        parts = {tp.partition for tp in revoked}
        self.member._revoked_cb(parts)
        await self.member._commit(parts)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.member._assigned_cb({tp.partition for tp in assigned})


class AioMember(Member):
    """An aiokafka consumer on its own event loop in its own thread. The test thread reads
    snapshots (under a lock) and sends commands (commit, stop) through a queue."""

    name = "aiokafka[range]"

    def __init__(self, bootstrap: str, group: str) -> None:
        super().__init__()
        self._bootstrap = bootstrap
        self._group = group
        self._lock = threading.Lock()
        self._owned: set[int] = set()
        self._consumed: list[int] = []
        self._commands: queue.Queue[tuple[str, threading.Event]] = queue.Queue()
        self._consumer: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="aiokafka-member", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced to the test thread by _check
            self.error = exc

    async def _main(self) -> None:
        c = aiokafka.AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=self._group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=SESSION_MS,
            heartbeat_interval_ms=HEARTBEAT_MS,
            max_poll_interval_ms=REBALANCE_MS,
            metadata_max_age_ms=1000,
            partition_assignment_strategy=(AioRange,),
        )
        self._consumer = c
        c.subscribe([TOPIC], listener=_AioListener(self))
        await c.start()
        stop: threading.Event | None = None
        try:
            while stop is None:
                try:
                    command, done = self._commands.get_nowait()
                except queue.Empty:
                    pass
                else:
                    if command == "stop":
                        stop = done
                        break
                    try:
                        await self._commit({tp.partition for tp in c.assignment()})
                    finally:
                        done.set()
                batches = await c.getmany(timeout_ms=50)
                with self._lock:
                    for tp, records in batches.items():
                        for r in records:
                            self.next_offset[tp.partition] = r.offset + 1
                            self._consumed.append(int(r.value))
                    self._owned = {tp.partition for tp in c.assignment()}
        finally:
            await c.stop()
            if stop is not None:
                stop.set()

    async def _commit(self, partitions: set[int]) -> None:
        with self._lock:
            offsets = self._offsets_to_commit(partitions)
        if offsets:
            await self._consumer.commit(
                {aiokafka.TopicPartition(TOPIC, p): o for p, o in offsets.items()}
            )

    def _check(self) -> None:
        if self.error is not None:
            raise AssertionError(f"the aiokafka member failed: {self.error!r}") from self.error

    def _command(self, command: str) -> None:
        self._check()
        done = threading.Event()
        self._commands.put((command, done))
        assert done.wait(DEADLINE_S), f"aiokafka member: {command} timed out"
        self._check()

    def assigned(self) -> set[int]:
        self._check()
        with self._lock:
            return set(self._owned)

    def pump(self, sink: list[int]) -> None:
        self._check()
        with self._lock:
            sink.extend(self._consumed)
            self._consumed.clear()

    def commit(self) -> None:
        self._command("commit")

    def close(self) -> None:
        if self._thread.is_alive():
            self._command("stop")
            self._thread.join(DEADLINE_S)
            assert not self._thread.is_alive(), "aiokafka member did not stop"
        self._check()


# --- driving -------------------------------------------------------------------------------


def poll_until(
    members: list[Member],
    done: Callable[[], bool],
    *,
    sink: list[int] | None = None,
    timeout_s: float = DEADLINE_S,
) -> None:
    into: list[int] = sink if sink is not None else []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for m in members:
            m.pump(into)
        if done():
            return
    raise AssertionError(f"condition not reached in {timeout_s} s: {members}")


def partitioned(members: list[Member]) -> bool:
    """Every partition owned by exactly one member, every member owning some."""
    sets = [m.assigned() for m in members]
    return (
        all(sets)
        and sum(len(s) for s in sets) == PARTITIONS
        and set().union(*sets) == set(range(PARTITIONS))
    )


def converged(b: InProcessBroker, group: str, members: list[Member]) -> bool:
    state, _, count = group_view(b, group)
    return state == GroupState.STABLE and count == len(members) and partitioned(members)


def close_all(members: list[Member]) -> None:
    errors: list[BaseException] = []
    for m in members:
        try:
            m.close()
        except BaseException as exc:  # close the rest, then report
            errors.append(exc)
    if errors:
        raise errors[0]


# --- 1. cooperative-sticky -----------------------------------------------------------------


def test_cooperative_sticky_moves_only_what_it_must(broker: InProcessBroker) -> None:
    group = "g-coop"
    seen: list[int] = []
    produce(broker.bootstrap, 0, 60)
    members: list[Member] = [
        ConfluentMember(broker.bootstrap, group, strategy="cooperative-sticky") for _ in range(3)
    ]
    try:
        poll_until(
            members,
            lambda: converged(broker, group, members) and len(set(seen)) >= 60,
            sink=seen,
        )
        assert group_protocol(broker, group) == "cooperative-sticky"
        before = [m.assigned() for m in members]
        for m in members:
            m.assigns.clear()
            m.revokes.clear()

        # A fourth member joins while messages keep coming.
        produce(broker.bootstrap, 60, 60)
        newcomer = ConfluentMember(broker.bootstrap, group, strategy="cooperative-sticky")
        members.append(newcomer)
        poll_until(
            members,
            lambda: converged(broker, group, members) and len(set(seen)) >= 120,
            sink=seen,
        )
        after = [m.assigned() for m in members]
        moved = after[3]
        assert 0 < len(moved) < PARTITIONS
        for i in range(3):
            # Nobody but the newcomer gained; only what moved was revoked, once.
            assert after[i] <= before[i], (before, after)
            revoked = set().union(*members[i].revokes)
            assert revoked == before[i] - after[i], (i, members[i].revokes, before, after)
            assert sum(len(r) for r in members[i].revokes) == len(revoked)
            assert members[i].assigns == []
        assert set().union(*newcomer.assigns) == moved
        kept = sum(len(before[i] & after[i]) for i in range(3))
        assert kept == PARTITIONS - len(moved)

        # One of the original members leaves: its partitions go to the others, nobody else
        # gives anything up.
        for m in members:
            m.assigns.clear()
            m.revokes.clear()
        leaver = members.pop(0)
        leaver_owned = leaver.assigned()
        leaver.commit()
        leaver.close()
        produce(broker.bootstrap, 120, 30)
        rest_before = [m.assigned() for m in members]
        poll_until(
            members,
            lambda: converged(broker, group, members) and len(set(seen)) >= 150,
            sink=seen,
        )
        for i, m in enumerate(members):
            assert m.revokes == [], (m, m.revokes)
            assert m.assigned() == rest_before[i] | set().union(*m.assigns)
        assert set().union(*(set().union(*m.assigns) for m in members)) == leaver_owned
        for m in members:
            m.commit()
        assert all(not m.lost for m in members)
    finally:
        close_all(members)
    # Exactly once, by committed-offset accounting: every value once, and the committed
    # offsets are the log end offsets (25 per partition).
    assert sorted(seen) == list(range(150))
    assert committed(broker, group) == dict.fromkeys(range(PARTITIONS), 25)


# --- 2. static member restart --------------------------------------------------------------


def _static_member(lib: str, bootstrap: str, group: str, instance: str) -> Member:
    if lib == "confluent":
        return ConfluentMember(bootstrap, group, instance_id=instance)
    return KafkaPythonMember(bootstrap, group, instance_id=instance)


@pytest.mark.parametrize("lib", ["confluent", "kafka-python"])
def test_static_member_restart_within_session_timeout_causes_no_rebalance(
    broker: InProcessBroker, lib: str
) -> None:
    group = f"g-static-{lib}"
    seen: list[int] = []
    members = [_static_member(lib, broker.bootstrap, group, f"w-{i}") for i in range(2)]
    try:
        poll_until(members, lambda: converged(broker, group, members))
        produce(broker.bootstrap, 0, 60)
        poll_until(members, lambda: len(set(seen)) >= 60, sink=seen)
        for m in members:
            m.commit()
        state, generation, _ = group_view(broker, group)
        assert state == GroupState.STABLE
        before = [m.assigned() for m in members]
        survivor = members[1]
        survivor.assigns.clear()
        survivor.revokes.clear()

        restarting = members.pop(0)
        restarting.close()  # a static member sends no LeaveGroup
        closed_at = time.monotonic()
        assert group_view(broker, group) == (GroupState.STABLE, generation, 2)

        produce(broker.bootstrap, 60, 30)
        restarted = _static_member(lib, broker.bootstrap, group, "w-0")
        members.insert(0, restarted)
        poll_until(
            members,
            lambda: restarted.assigned() == before[0] and len(set(seen)) >= 90,
            sink=seen,
        )
        assert time.monotonic() - closed_at < SESSION_MS / 1000  # within the session timeout
        # Several heartbeats later still nothing happened to the group or the other member.
        watch_until = time.monotonic() + 3 * HEARTBEAT_MS / 1000
        poll_until(members, lambda: time.monotonic() >= watch_until, sink=seen)
        assert group_view(broker, group) == (GroupState.STABLE, generation, 2)
        assert survivor.assigns == [] and survivor.revokes == []
        assert [m.assigned() for m in members] == before
        for m in members:
            m.commit()
    finally:
        close_all(members)
    assert sorted(seen) == list(range(90))
    assert committed(broker, group) == dict.fromkeys(range(PARTITIONS), 15)


# --- 3. three client libraries in one group ------------------------------------------------


def test_three_client_libraries_join_one_group_at_once(broker: InProcessBroker) -> None:
    group = "g-mixed"
    seen: list[int] = []
    members: list[Member] = []
    try:
        # All three subscribe at once; kafka-python joins on its first poll, which follows.
        members.append(AioMember(broker.bootstrap, group))
        members.append(ConfluentMember(broker.bootstrap, group, strategy="range"))
        members.append(KafkaPythonMember(broker.bootstrap, group))
        poll_until(members, lambda: converged(broker, group, members), sink=seen)
        assert seen == []
        _, generation, _ = group_view(broker, group)

        produce(broker.bootstrap, 0, 60)
        poll_until(members, lambda: len(set(seen)) >= 60, sink=seen)
        for m in members:
            m.commit()
        assert group_view(broker, group)[1] == generation  # no rebalance while consuming
        by_member = {m.name: m.assigned() for m in members}
        assert sorted(len(s) for s in by_member.values()) == [2, 2, 2], by_member

        leaver = members.pop(2)  # kafka-python leaves (LeaveGroup)
        leaver.close()
        poll_until(members, lambda: converged(broker, group, members), sink=seen)
        assert group_view(broker, group)[1] > generation
        assert sorted(len(m.assigned()) for m in members) == [3, 3]
        produce(broker.bootstrap, 60, 30)
        poll_until(members, lambda: len(set(seen)) >= 90, sink=seen)
        for m in members:
            m.commit()
    finally:
        close_all(members)
    assert sorted(seen) == list(range(90))
    assert committed(broker, group) == dict.fromkeys(range(PARTITIONS), 15)
