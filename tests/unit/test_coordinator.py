"""The pure group coordinator under a ManualClock: no event loop, no sockets, no files.

A :class:`Harness` plays the driver: it replays every emitted record (keeping them as "the
log"), collects the replies by token, and checks the coordinator's invariants after each step.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from seriatim.coordinator import (
    CommitRequest,
    CoordinatorConfig,
    GroupCoordinator,
    GroupState,
    JoinRequest,
    JoinResult,
    LeaveResult,
    LogRecord,
    Output,
    PartitionErrors,
    SyncRequest,
    SyncResult,
)
from seriatim.coordinator.schema import (
    GroupValue,
    OffsetValue,
    StoredMember,
    decode_group_value,
    decode_offset_value,
    encode_group_value,
    encode_offset_value,
    subscribed_topics,
)
from seriatim.errors import ErrorCode
from seriatim.testing import ManualClock

G = "g"
RANGE = (("range", b"sub-range"),)
SESSION_MS = 10_000


class Harness:
    def __init__(self, **config: Any) -> None:
        config.setdefault("initial_rebalance_delay_ms", 0)
        self.config = CoordinatorConfig(**config)
        self.clock = ManualClock()
        self.core = GroupCoordinator(self.config, self.clock, random.Random(1234))
        self.log: list[LogRecord] = []
        self.replies: dict[int, Any] = {}
        self._tokens = itertools.count()

    def run(self, out: Output) -> None:
        for record in out.records:
            self.log.append(record)
            self.core.replay(record.key, record.value)
        for token, result in out.replies:
            assert token not in self.replies, f"token {token} answered twice"
            self.replies[token] = result
        self.core.check_invariants()

    def call(self, method: Any, *args: Any) -> int:
        token = next(self._tokens)
        self.run(method(token, *args))
        return token

    def tick(self, advance_ms: int = 0) -> None:
        self.clock.advance(advance_ms)
        self.run(self.core.tick())

    def join(
        self,
        member_id: str = "",
        *,
        instance: str | None = None,
        protocols: tuple[tuple[str, bytes], ...] = RANGE,
        session_ms: int = SESSION_MS,
        rebalance_ms: int = 20_000,
        client_id: str = "client",
    ) -> int:
        req = JoinRequest(
            G, member_id, instance, "consumer", protocols, session_ms, rebalance_ms,
            client_id, "/127.0.0.1", True,
        )  # fmt: skip
        return self.call(self.core.join, req)

    def join_new(self, **kwargs: Any) -> int:
        """The v4+ round trip: MEMBER_ID_REQUIRED, then the join with the given id."""
        if kwargs.get("instance") is not None:
            return self.join(**kwargs)
        first = self.replies[self.join(**kwargs)]
        assert first.error == ErrorCode.MEMBER_ID_REQUIRED and first.member_id
        return self.join(first.member_id, **kwargs)

    def sync(self, member_id: str, generation: int, assignments: dict[str, bytes] | None = None,
             instance: str | None = None) -> int:  # fmt: skip
        req = SyncRequest(
            G, generation, member_id, instance, "consumer", None,
            tuple((assignments or {}).items()),
        )  # fmt: skip
        return self.call(self.core.sync, req)

    def heartbeat(self, member_id: str, generation: int, instance: str | None = None) -> ErrorCode:
        return self.core.heartbeat(G, member_id, instance, generation)

    def commit(self, member_id: str, generation: int, offsets: dict[tuple[str, int], int],
               metadata: str = "") -> PartitionErrors:  # fmt: skip
        req = CommitRequest(
            G, generation, member_id, None,
            tuple((t, p, o, -1, metadata) for (t, p), o in offsets.items()),
        )  # fmt: skip
        result: PartitionErrors = self.replies[self.call(self.core.commit, req)]
        return result

    def rebuilt(self) -> GroupCoordinator:
        fresh = GroupCoordinator(self.config, self.clock, random.Random(0))
        for record in self.log:
            fresh.replay(record.key, record.value)
        fresh.finish_loading()
        fresh.check_invariants()
        return fresh

    def stable_group(self, n: int) -> list[JoinResult]:
        """n members joined and synced; returns their join results (leader first)."""
        tokens = [self.join_new(client_id=f"c{i}") for i in range(n)]
        self.tick()  # the initial delay (0) expires: the first generation forms
        results = [self.replies.get(t) for t in tokens]
        if any(r is None for r in results):  # members that joined after: rejoin all
            pending = [t for t in tokens if t not in self.replies]
            assert not pending, "joins still pending"
        res = [self.replies[t] for t in tokens]
        generation = res[-1].generation_id
        leader = res[0].leader
        ids = [r.member_id for r in res]
        self.sync(leader, generation, {m: f"assign-{m}".encode() for m in ids})
        for r in res:
            if r.member_id != leader:
                self.sync(r.member_id, generation)
        assert self.core.state_of(G) == GroupState.STABLE
        return res


def test_first_join_needs_a_member_id_then_forms_generation_one() -> None:
    h = Harness()
    first = h.replies[h.join()]
    assert first.error == ErrorCode.MEMBER_ID_REQUIRED
    assert first.member_id.startswith("client-")
    token = h.join(first.member_id)
    assert token not in h.replies  # waits for the (zero) initial delay
    h.tick()
    result = h.replies[token]
    assert result.error == ErrorCode.NONE
    assert (result.generation_id, result.leader, result.protocol_name) == (
        1,
        first.member_id,
        "range",
    )
    assert [m.member_id for m in result.members] == [first.member_id]
    assert h.core.state_of(G) == GroupState.COMPLETING_REBALANCE


def test_sync_stores_the_assignment_and_answers_the_waiting_follower() -> None:
    h = Harness()
    a = h.join_new(client_id="a")
    h.tick()
    leader = h.replies[a].member_id
    b = h.join_new(client_id="b")  # a second member: the group rebalances
    assert h.heartbeat(leader, 1) == ErrorCode.REBALANCE_IN_PROGRESS
    a2 = h.join(leader)  # the leader rejoins: everyone is in
    res_a, res_b = h.replies[a2], h.replies[b]
    assert res_a.generation_id == res_b.generation_id == 2
    assert len(res_a.members) == 2 and res_b.members == ()
    follower_sync = h.sync(res_b.member_id, 2)
    assert follower_sync not in h.replies  # waits for the leader's assignment
    leader_sync = h.sync(leader, 2, {leader: b"A", res_b.member_id: b"B"})
    assert h.replies[leader_sync] == SyncResult(ErrorCode.NONE, "consumer", "range", b"A")
    assert h.replies[follower_sync].assignment == b"B"
    assert h.core.state_of(G) == GroupState.STABLE
    assert h.heartbeat(leader, 2) == ErrorCode.NONE
    assert h.rebuilt().snapshot() == h.core.snapshot()


def test_heartbeat_errors() -> None:
    h = Harness()
    res = h.stable_group(1)[0]
    assert h.heartbeat("nobody", res.generation_id) == ErrorCode.UNKNOWN_MEMBER_ID
    assert h.heartbeat(res.member_id, res.generation_id + 1) == ErrorCode.ILLEGAL_GENERATION
    assert h.core.heartbeat("other-group", res.member_id, None, 1) == ErrorCode.UNKNOWN_MEMBER_ID
    assert h.heartbeat(res.member_id, res.generation_id) == ErrorCode.NONE


def test_session_expiry_removes_the_member_and_rebalances_the_rest() -> None:
    h = Harness()
    a, b = h.stable_group(2)
    gen = a.generation_id
    h.clock.advance(SESSION_MS - 1000)
    assert h.heartbeat(a.member_id, gen) == ErrorCode.NONE  # a stays alive, b goes silent
    h.tick(1001)
    assert h.core.state_of(G) == GroupState.PREPARING_REBALANCE
    assert h.heartbeat(b.member_id, gen) == ErrorCode.UNKNOWN_MEMBER_ID
    assert h.heartbeat(a.member_id, gen) == ErrorCode.REBALANCE_IN_PROGRESS
    rejoin = h.join(a.member_id)
    result = h.replies[rejoin]
    assert result.generation_id == gen + 1 and [m.member_id for m in result.members] == [
        a.member_id
    ]
    assert h.core.next_deadline_ns() > h.clock.monotonic_ns()


def test_a_member_that_does_not_rejoin_in_the_rebalance_timeout_is_dropped() -> None:
    h = Harness()
    a, b = h.stable_group(2)
    c = h.join_new(client_id="c", rebalance_ms=5000)
    assert c not in h.replies
    rejoin_a = h.join(a.member_id, rebalance_ms=5000)
    for _ in range(3):  # b heartbeats (so its session lives) but never rejoins
        h.tick(5000)
        assert h.heartbeat(b.member_id, a.generation_id) == ErrorCode.REBALANCE_IN_PROGRESS
    h.tick(4_999)
    assert rejoin_a not in h.replies
    h.tick(1)  # the rebalance timeout (max over members: 20 s for b)
    assert h.replies[rejoin_a].generation_id == a.generation_id + 1
    assert {m.member_id for m in h.replies[rejoin_a].members} == {
        a.member_id, h.replies[c].member_id,
    }  # fmt: skip
    assert h.heartbeat(b.member_id, a.generation_id + 1) == ErrorCode.UNKNOWN_MEMBER_ID


def test_leave_rebalances_and_unknown_members_get_an_error() -> None:
    h = Harness()
    a, b = h.stable_group(2)
    result: LeaveResult = h.replies[h.call(h.core.leave, G, [(b.member_id, None), ("ghost", None)])]
    assert [e for _, _, e in result.members] == [ErrorCode.NONE, ErrorCode.UNKNOWN_MEMBER_ID]
    assert h.core.state_of(G) == GroupState.PREPARING_REBALANCE
    rejoin = h.join(a.member_id)
    gen = a.generation_id + 1
    assert h.replies[rejoin].generation_id == gen
    h.sync(a.member_id, gen, {a.member_id: b"all"})
    h.call(h.core.leave, G, [(a.member_id, None)])
    h.tick(1)
    assert h.core.state_of(G) == GroupState.EMPTY  # the last member left: a new, Empty gen
    assert h.core.generation_of(G) == gen + 1
    assert h.rebuilt().snapshot() == h.core.snapshot()


def test_a_restarted_static_member_replaces_its_old_id_without_a_rebalance() -> None:
    h = Harness()
    t = h.join(instance="worker-1", client_id="w1")
    h.tick()
    old = h.replies[t]
    assert old.error == ErrorCode.NONE  # static members skip MEMBER_ID_REQUIRED
    h.sync(old.member_id, 1, {old.member_id: b"P0-5"}, instance="worker-1")
    again = h.replies[h.join(instance="worker-1", client_id="w1")]
    assert again.error == ErrorCode.NONE and again.member_id != old.member_id
    assert again.generation_id == 1 and again.skip_assignment  # no rebalance
    assert h.core.state_of(G) == GroupState.STABLE
    assert h.heartbeat(old.member_id, 1, "worker-1") == ErrorCode.FENCED_INSTANCE_ID
    sync = h.replies[h.sync(again.member_id, 1, instance="worker-1")]
    assert sync.assignment == b"P0-5"  # the old assignment carries over
    assert h.rebuilt().snapshot() == h.core.snapshot()


def test_static_membership_survives_a_restart() -> None:
    h = Harness()
    t = h.join(instance="worker-1")
    h.tick()
    res = h.replies[t]
    h.sync(res.member_id, 1, {res.member_id: b"all"}, instance="worker-1")
    fresh = h.rebuilt()
    assert fresh.state_of(G) == GroupState.STABLE
    assert fresh.heartbeat(G, res.member_id, "worker-1", 1) == ErrorCode.NONE
    summary = fresh.describe(G)
    assert [(m.member_id, m.group_instance_id, m.assignment) for m in summary.members] == [
        (res.member_id, "worker-1", b"all")
    ]


def test_offset_commit_generation_checks() -> None:
    h = Harness()
    simple = h.commit("", -1, {("t", 0): 5})  # no group yet: a simple commit creates it
    assert simple.partitions == {("t", 0): ErrorCode.NONE}
    assert h.core.fetch_offsets(G, [("t", [0, 1])])[("t", 0)].offset == 5  # type: ignore[union-attr]
    assert h.core.fetch_offsets(G, [("t", [0, 1])])[("t", 1)] is None
    a = h.stable_group(1)[0]
    gen = a.generation_id
    assert h.commit(a.member_id, gen, {("t", 0): 7}).partitions[("t", 0)] == ErrorCode.NONE
    assert h.commit(a.member_id, gen - 1, {("t", 0): 8}).partitions[("t", 0)] == (
        ErrorCode.ILLEGAL_GENERATION
    )
    assert h.commit("ghost", gen, {("t", 0): 8}).partitions[("t", 0)] == ErrorCode.UNKNOWN_MEMBER_ID
    too_big = h.commit(a.member_id, gen, {("t", 1): 1}, metadata="x" * 5000)
    assert too_big.partitions[("t", 1)] == ErrorCode.OFFSET_METADATA_TOO_LARGE
    h.join_new(client_id="b")  # PreparingRebalance: the old generation may still commit
    assert h.commit(a.member_id, gen, {("t", 0): 9}).partitions[("t", 0)] == ErrorCode.NONE
    h.join(a.member_id)  # CompletingRebalance: commits wait for the new assignment
    assert h.commit(a.member_id, gen + 1, {("t", 0): 10}).partitions[("t", 0)] == (
        ErrorCode.REBALANCE_IN_PROGRESS
    )
    assert h.core.fetch_offsets(G, None)[("t", 0)].offset == 9  # type: ignore[union-attr]
    assert h.rebuilt().snapshot()[G]["offsets"] == h.core.snapshot()[G]["offsets"]  # type: ignore[index]


def test_protocol_selection_and_inconsistent_protocols() -> None:
    h = Harness()
    both = (("range", b"r"), ("roundrobin", b"rr"))
    t1 = h.join_new(protocols=both)
    t2 = h.join_new(protocols=(("roundrobin", b"rr2"),))
    h.tick()
    assert h.replies[t1].protocol_name == h.replies[t2].protocol_name == "roundrobin"
    bad = h.replies[h.join(protocols=(("sticky", b""),))]
    assert bad.error == ErrorCode.INCONSISTENT_GROUP_PROTOCOL


def test_the_initial_rebalance_delay_waits_for_more_members() -> None:
    h = Harness(initial_rebalance_delay_ms=3000)
    t1 = h.join_new(client_id="a")
    h.tick(2000)
    t2 = h.join_new(client_id="b")
    h.tick(1000)  # first delay over, but a member arrived: wait another delay
    assert t1 not in h.replies
    h.tick(3000)
    assert h.replies[t1].generation_id == h.replies[t2].generation_id == 1
    assert len(h.replies[t1].members) == 2


def test_session_timeout_bounds_are_enforced() -> None:
    h = Harness()
    assert h.replies[h.join(session_ms=10)].error == ErrorCode.INVALID_SESSION_TIMEOUT


def test_pending_member_ids_expire() -> None:
    h = Harness()
    first = h.replies[h.join()]
    h.tick(SESSION_MS + 1)
    assert h.core.group_ids() == []  # nothing joined: the group is forgotten
    assert h.replies[h.join(first.member_id)].error == ErrorCode.UNKNOWN_MEMBER_ID


def test_delete_groups_and_offsets() -> None:
    h = Harness()
    h.commit("", -1, {("t", 0): 1, ("t", 1): 2})
    a = h.stable_group(1)[0]
    result = h.replies[h.call(h.core.delete_groups, [G, "missing"])]
    assert result == {G: ErrorCode.NON_EMPTY_GROUP, "missing": ErrorCode.GROUP_ID_NOT_FOUND}
    h.call(h.core.leave, G, [(a.member_id, None)])
    h.tick()
    deleted = h.replies[h.call(h.core.delete_offsets, G, [("t", 1)])]
    assert deleted.partitions == {("t", 1): ErrorCode.NONE}
    assert set(h.core.fetch_offsets(G, None)) == {("t", 0)}
    assert h.replies[h.call(h.core.delete_groups, [G])] == {G: ErrorCode.NONE}
    assert h.core.group_ids() == [] and h.core.fetch_offsets(G, None) == {}
    assert h.rebuilt().group_ids() == []


def test_offset_delete_refuses_subscribed_topics() -> None:
    h = Harness()
    subscription = b"\x00\x00" + b"\x00\x00\x00\x01" + b"\x00\x01t" + b"\x00\x00\x00\x00"
    t = h.join_new(protocols=(("range", subscription),))
    h.tick()
    h.sync(h.replies[t].member_id, 1, {})
    h.commit(h.replies[t].member_id, 1, {("t", 0): 1, ("u", 0): 1})
    result = h.replies[h.call(h.core.delete_offsets, G, [("t", 0), ("u", 0)])]
    assert result.partitions == {
        ("t", 0): ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC, ("u", 0): ErrorCode.NONE,
    }  # fmt: skip


def test_offsets_of_an_empty_group_expire_after_the_retention() -> None:
    h = Harness(offsets_retention_ms=60_000, offsets_retention_check_interval_ms=1000)
    h.commit("", -1, {("t", 0): 1})
    h.tick(30_000)
    assert h.core.fetch_offsets(G, None)
    h.tick(31_000)
    assert h.core.fetch_offsets(G, None) == {}
    assert h.core.group_ids() == []
    assert h.rebuilt().group_ids() == []


def test_replay_rebuilds_the_live_state_after_a_random_history() -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    h = Harness()
    members: dict[str, int] = {}
    for _ in range(60):
        op = rng.choice(["join", "leave", "commit", "expire", "sync"])
        if op == "join" and len(members) < 4:
            h.join_new(client_id=f"c{rng.randrange(100)}")
        elif op == "leave" and members:
            h.call(h.core.leave, G, [(rng.choice(sorted(members)), None)])
        elif op == "commit":
            h.commit("", -1, {("t", rng.randrange(3)): rng.randrange(1000)})
        elif op == "expire":
            h.tick(rng.choice([0, 1000, SESSION_MS + 1]))
        h.tick()
        # Everyone waiting to join rejoins; the leader syncs; the rest sync.
        members = {}
        for r in list(h.replies.values()):
            if isinstance(r, JoinResult) and r.error == ErrorCode.NONE:
                members[r.member_id] = r.generation_id
        gen = h.core.generation_of(G)
        state = h.core.state_of(G)
        if state == GroupState.COMPLETING_REBALANCE:
            summary = h.core.describe(G)
            for m in summary.members:
                h.sync(m.member_id, gen, {x.member_id: b"a" for x in summary.members})
        elif state == GroupState.PREPARING_REBALANCE:
            for m in h.core.describe(G).members:
                h.join(m.member_id)
            h.tick()
            if h.core.state_of(G) == GroupState.COMPLETING_REBALANCE:
                summary = h.core.describe(G)
                for m in summary.members:
                    h.sync(
                        m.member_id,
                        h.core.generation_of(G),
                        {x.member_id: b"b" for x in summary.members},
                    )
        if h.core.state_of(G) in (GroupState.STABLE, GroupState.EMPTY, None):
            assert h.rebuilt().snapshot() == h.core.snapshot(), f"seed {seed}"


def test_record_schemas_round_trip_and_read_old_versions() -> None:
    value = OffsetValue(42, 3, "meta", 1_700_000_000_000)
    assert decode_offset_value(encode_offset_value(value)) == value
    v1 = (
        b"\x00\x01"
        + (42).to_bytes(8, "big")
        + b"\x00\x01m"
        + (7).to_bytes(8, "big")
        + (9).to_bytes(8, "big")
    )
    assert decode_offset_value(v1) == OffsetValue(42, -1, "m", 7, 9)
    group = GroupValue(
        "consumer", 3, "range", "m1", 5,
        (StoredMember("m1", "i1", "c", "/h", 300, 10, b"sub", b"asg"),),
    )  # fmt: skip
    assert decode_group_value(encode_group_value(group)) == group
    with pytest.raises(ValueError):
        decode_group_value(encode_group_value(group)[:-3])
    sub = b"\x00\x01" + b"\x00\x00\x00\x02" + b"\x00\x01a" + b"\x00\x02bc"
    assert subscribed_topics(sub) == frozenset({"a", "bc"})
    assert subscribed_topics(b"\x00") is None
