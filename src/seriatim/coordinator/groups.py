"""The classic consumer-group coordinator, as a pure state machine.

Theory of operation
-------------------
:class:`GroupCoordinator` owns every group of the broker: membership (who is in, who must
rejoin), the rebalance protocol (JoinGroup/SyncGroup/Heartbeat/LeaveGroup) and the committed
offsets. It does no I/O and never reads a clock on its own initiative: each public method takes
a request, reads the injected clock once, and returns an :class:`Output` -- the records to
append to ``__consumer_offsets`` and the replies to send, keyed by the caller's token. A reply
may come later than its call: a JoinGroup waits for the rebalance to complete and a follower's
SyncGroup for the leader's assignment, so their replies appear in the output of whatever call
(or :meth:`tick`) completes them. The driver in ``broker/groups.py`` appends the records,
replays them, waits until they are durable, then sends the replies; it calls :meth:`tick` at
:meth:`next_deadline_ns`.

Two kinds of state, two rules:

* **Stored state** -- committed offsets and each group's last GroupMetadata record
  (generation, protocol, leader, members with assignments) -- changes *only* in :meth:`replay`.
  Handlers decide and emit records; loading after a restart is the same replay followed by
  :meth:`finish_loading`. So the stored state after a restart equals the state before it.
* **Live membership** -- pending joins, heartbeats, who awaits what -- lives in memory only
  and is changed by the handlers directly, exactly as Kafka's GroupCoordinator does: it is
  rebuilt by the clients, not by the log (after a restart, members are loaded from the last
  GroupMetadata record and must heartbeat within their session timeout).

Transactional offset commits (TxnOffsetCommit) are written in transactional batches of the
producer; :meth:`replay_pending` holds them per producer id and :meth:`replay_marker` applies
them (COMMIT) or drops them (ABORT) when the transaction's marker reaches the partition, as
Kafka's pendingTransactionalOffsetCommits do. Pending offsets are stored state too: replayed
from the batch headers at load.

States (Kafka's): Empty -> PreparingRebalance (a member joined/left, or the leader rejoined)
-> CompletingRebalance (every member rejoined, or the rebalance timeout removed those that did
not; generation + 1, protocol chosen, leader gets the member list) -> Stable (the leader's
SyncGroup stored the assignment) -> PreparingRebalance ... ; Dead once deleted.

Invariants (checked by :meth:`check_invariants`, which the tests run after every step):
a group's leader is one of its members (or None when it has none); every static member's
instance id maps to it and only it; members awaiting a join exist only while PreparingRebalance;
members awaiting a sync only while CompletingRebalance; an Empty group has no members.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from seriatim.clock import Clock
from seriatim.coordinator.model import (
    CommitRequest,
    CommittedOffset,
    CoordinatorConfig,
    GroupState,
    GroupSummary,
    JoinMember,
    JoinRequest,
    JoinResult,
    LeaveResult,
    LogRecord,
    MemberSummary,
    Output,
    PartitionErrors,
    SyncRequest,
    SyncResult,
    Token,
)
from seriatim.coordinator.schema import (
    GroupKey,
    GroupValue,
    OffsetKey,
    OffsetValue,
    StoredMember,
    decode_group_value,
    decode_key,
    decode_offset_value,
    encode_group_key,
    encode_group_value,
    encode_offset_key,
    encode_offset_value,
    subscribed_topics,
)
from seriatim.errors import ErrorCode, invariant

_NS_PER_MS = 1_000_000
CONSUMER_PROTOCOL = "consumer"

__all__ = ["GroupCoordinator"]


@dataclass(slots=True)
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocol_type: str
    protocols: tuple[tuple[str, bytes], ...]
    assignment: bytes = b""
    join_token: Token | None = None
    sync_token: Token | None = None
    awaiting_join: bool = False
    awaiting_sync: bool = False
    is_new: bool = False
    last_heartbeat_ns: int = 0

    def metadata(self, protocol: str | None) -> bytes:
        for name, data in self.protocols:
            if name == protocol:
                return data
        return b""

    def matches(self, protocols: tuple[tuple[str, bytes], ...]) -> bool:
        return self.protocols == protocols


@dataclass(slots=True)
class Group:
    group_id: str
    state: GroupState = GroupState.EMPTY
    state_timestamp_ms: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    generation: int = 0
    leader_id: str | None = None
    members: dict[str, Member] = field(default_factory=dict)
    pending_members: dict[str, int] = field(default_factory=dict)  # member id -> deadline ns
    static_members: dict[str, str] = field(default_factory=dict)  # instance id -> member id
    join_deadline_ns: int | None = None
    initial_join: bool = False
    initial_join_remaining_ms: int = 0
    new_member_added: bool = False
    offsets: dict[tuple[str, int], CommittedOffset] = field(default_factory=dict)
    stored: GroupValue | None = None  # the last GroupMetadata record replayed

    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def all_joined(self) -> bool:
        return not self.pending_members and all(m.awaiting_join for m in self.members.values())

    def candidate_protocols(self) -> set[str]:
        sets = [{name for name, _ in m.protocols} for m in self.members.values()]
        return set.intersection(*sets) if sets else set()

    def supports(self, protocol_type: str, protocols: tuple[tuple[str, bytes], ...]) -> bool:
        names = {name for name, _ in protocols}
        if not self.members:
            return bool(protocol_type) and bool(names)
        return protocol_type == self.protocol_type and bool(names & self.candidate_protocols())

    def select_protocol(self) -> str:
        """Each member votes for its most preferred protocol that every member supports."""
        candidates = self.candidate_protocols()
        invariant(bool(candidates), f"group {self.group_id}: no protocol common to all members")
        votes: dict[str, int] = {}
        for m in self.members.values():
            choice = next(name for name, _ in m.protocols if name in candidates)
            votes[choice] = votes.get(choice, 0) + 1
        return max(votes, key=lambda name: votes[name])  # ties: the first voted wins

    def subscribed(self) -> frozenset[str] | None:
        """Topics the members subscribe to (consumer protocol), None when not knowable."""
        if self.protocol_type != CONSUMER_PROTOCOL or self.protocol_name is None:
            return None
        topics: set[str] = set()
        for m in self.members.values():
            found = subscribed_topics(m.metadata(self.protocol_name))
            if found is None:
                return None
            topics |= found
        return frozenset(topics)


class GroupCoordinator:
    """Every group of one broker. Single-threaded: one owner (the driver) calls it."""

    def __init__(
        self, config: CoordinatorConfig, clock: Clock, rng: random.Random | None = None
    ) -> None:
        self.config = config
        self.clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._groups: dict[str, Group] = {}
        # producer id -> transactional offset commits awaiting the transaction's marker
        self._pending_txn: dict[int, list[tuple[bytes, bytes | None]]] = {}
        self._next_retention_check_ns = (
            clock.monotonic_ns() + config.offsets_retention_check_interval_ms * _NS_PER_MS
        )

    # --- replay (the only path that changes stored state) ---------------------------------------

    def replay(self, key: bytes, value: bytes | None) -> None:
        """Apply one ``__consumer_offsets`` record (live, just appended, or at load)."""
        decoded = decode_key(key)
        if isinstance(decoded, OffsetKey):
            tp = (decoded.topic, decoded.partition)
            if value is None:
                group = self._groups.get(decoded.group_id)
                if group is not None:
                    group.offsets.pop(tp, None)
                    self._forget_if_unused(group)
                return
            v = decode_offset_value(value)
            group = self._groups.setdefault(decoded.group_id, Group(decoded.group_id))
            group.offsets[tp] = CommittedOffset(
                v.offset, v.leader_epoch, v.metadata, v.commit_timestamp_ms, v.expire_timestamp_ms
            )
        elif isinstance(decoded, GroupKey):
            if value is None:
                group = self._groups.get(decoded.group_id)
                if group is not None:
                    group.stored = None
                    if group.state == GroupState.DEAD or not group.members:
                        group.state = GroupState.DEAD
                        self._forget_if_unused(group)
                return
            group = self._groups.setdefault(decoded.group_id, Group(decoded.group_id))
            group.stored = decode_group_value(value)

    def replay_pending(self, producer_id: int, key: bytes, value: bytes | None) -> None:
        """A transactional offset commit was appended: hold it until the marker."""
        self._pending_txn.setdefault(producer_id, []).append((key, value))

    def replay_marker(self, producer_id: int, commit: bool) -> None:
        """A COMMIT/ABORT marker of ``producer_id`` reached ``__consumer_offsets``."""
        pending = self._pending_txn.pop(producer_id, [])
        if commit:
            for key, value in pending:
                self.replay(key, value)

    def finish_loading(self) -> None:
        """After replaying the whole log at start: groups take their stored membership.

        A loaded member must heartbeat within its session timeout from now (as in Kafka)."""
        now_ns = self.clock.monotonic_ns()
        for group in self._groups.values():
            stored = group.stored
            if stored is None or group.members:
                continue
            group.generation = stored.generation
            group.protocol_type = stored.protocol_type or None
            group.protocol_name = stored.protocol
            group.state_timestamp_ms = stored.current_state_timestamp_ms
            for sm in stored.members:
                member = Member(
                    sm.member_id,
                    sm.group_instance_id,
                    sm.client_id,
                    sm.client_host,
                    sm.rebalance_timeout_ms,
                    sm.session_timeout_ms,
                    stored.protocol_type,
                    ((stored.protocol or "", sm.subscription),),
                    assignment=sm.assignment,
                    last_heartbeat_ns=now_ns,
                )
                group.members[sm.member_id] = member
                if sm.group_instance_id is not None:
                    group.static_members[sm.group_instance_id] = sm.member_id
            group.leader_id = stored.leader if stored.leader in group.members else None
            if group.members and group.leader_id is None:
                group.leader_id = next(iter(group.members))
            group.state = GroupState.STABLE if group.members else GroupState.EMPTY

    def _forget_if_unused(self, group: Group) -> None:
        if (
            not group.offsets
            and group.stored is None
            and not group.members
            and not group.pending_members
            and group.state in (GroupState.EMPTY, GroupState.DEAD)
        ):
            self._groups.pop(group.group_id, None)

    # --- JoinGroup ------------------------------------------------------------------------------

    def join(self, token: Token, req: JoinRequest) -> Output:
        out = Output()
        error = self._join_precheck(req)
        if error is not None:
            out.reply(token, JoinResult(error, member_id=req.member_id))
            return out
        group = self._groups.get(req.group_id)
        if group is None:
            if req.member_id:
                out.reply(token, JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, req.member_id))
                return out
            group = self._groups[req.group_id] = Group(req.group_id)
        if group.state == GroupState.DEAD:
            out.reply(token, JoinResult(ErrorCode.COORDINATOR_NOT_AVAILABLE, req.member_id))
        elif not group.supports(req.protocol_type, req.protocols):
            out.reply(token, JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, req.member_id))
        elif not req.member_id:
            self._join_new_member(out, token, group, req)
        else:
            self._join_known_member(out, token, group, req)
        if not group.members and not group.pending_members and group.state == GroupState.EMPTY:
            self._forget_if_unused(group)
        return out

    def _join_precheck(self, req: JoinRequest) -> ErrorCode | None:
        if not req.group_id:
            return ErrorCode.INVALID_GROUP_ID
        if not (
            self.config.min_session_timeout_ms
            <= req.session_timeout_ms
            <= self.config.max_session_timeout_ms
        ):
            return ErrorCode.INVALID_SESSION_TIMEOUT
        return None

    def _new_member_id(self, prefix: str) -> str:
        return f"{prefix}-{uuid.UUID(int=self._rng.getrandbits(128), version=4)}"

    def _join_new_member(self, out: Output, token: Token, group: Group, req: JoinRequest) -> None:
        is_static = req.group_instance_id is not None
        if len(group.members) + len(group.pending_members) >= self.config.max_group_size and not (
            is_static and req.group_instance_id in group.static_members
        ):
            out.reply(token, JoinResult(ErrorCode.GROUP_MAX_SIZE_REACHED))
            return
        member_id = self._new_member_id(req.group_instance_id or req.client_id)
        now_ns = self.clock.monotonic_ns()
        if req.group_instance_id is not None:
            old_id = group.static_members.get(req.group_instance_id)
            if old_id is not None and old_id in group.members:
                self._replace_static_member(out, token, group, old_id, member_id, req)
            else:
                self._add_member_and_rebalance(out, token, group, member_id, req)
        elif req.require_known_member_id:
            group.pending_members[member_id] = now_ns + req.session_timeout_ms * _NS_PER_MS
            out.reply(token, JoinResult(ErrorCode.MEMBER_ID_REQUIRED, member_id=member_id))
        else:
            self._add_member_and_rebalance(out, token, group, member_id, req)

    def _join_known_member(self, out: Output, token: Token, group: Group, req: JoinRequest) -> None:
        member_id = req.member_id
        if member_id in group.pending_members:
            del group.pending_members[member_id]
            self._add_member_and_rebalance(out, token, group, member_id, req)
            return
        fenced = self._fenced(group, member_id, req.group_instance_id)
        if fenced is not None:
            out.reply(token, JoinResult(fenced, member_id))
            return
        member = group.members[member_id]
        state = group.state
        if state == GroupState.PREPARING_REBALANCE:
            self._update_member_and_rebalance(out, token, group, member, req)
        elif state == GroupState.COMPLETING_REBALANCE:
            if member.matches(req.protocols):
                # The member's join response was lost; send it again.
                out.reply(token, self._join_result(group, member))
            else:
                self._update_member_and_rebalance(out, token, group, member, req)
        elif state == GroupState.STABLE:
            if member_id == group.leader_id or not member.matches(req.protocols):
                self._update_member_and_rebalance(out, token, group, member, req)
            else:
                out.reply(token, self._join_result(group, member))
        else:  # Empty (no members) or Dead
            out.reply(token, JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id))

    def _fenced(self, group: Group, member_id: str, instance_id: str | None) -> ErrorCode | None:
        """UNKNOWN_MEMBER_ID / FENCED_INSTANCE_ID for a member id that is not (or no longer)
        the one this caller may use; None when it is a member in good standing."""
        if instance_id is not None:
            current = group.static_members.get(instance_id)
            if current is not None and current != member_id:
                return ErrorCode.FENCED_INSTANCE_ID
        if member_id not in group.members:
            return ErrorCode.UNKNOWN_MEMBER_ID
        return None

    def _add_member_and_rebalance(
        self, out: Output, token: Token, group: Group, member_id: str, req: JoinRequest
    ) -> None:
        member = Member(
            member_id,
            req.group_instance_id,
            req.client_id,
            req.client_host,
            req.rebalance_timeout_ms,
            req.session_timeout_ms,
            req.protocol_type,
            req.protocols,
            join_token=token,
            awaiting_join=True,
            is_new=True,
            last_heartbeat_ns=self.clock.monotonic_ns(),
        )
        if not group.members:
            group.protocol_type = req.protocol_type
        group.members[member_id] = member
        if group.leader_id is None:
            group.leader_id = member_id
        if req.group_instance_id is not None:
            group.static_members[req.group_instance_id] = member_id
        if group.state == GroupState.PREPARING_REBALANCE and group.initial_join:
            group.new_member_added = True
        self._maybe_prepare_rebalance(out, group)
        self._try_complete_join(out, group)

    def _update_member_and_rebalance(
        self, out: Output, token: Token, group: Group, member: Member, req: JoinRequest
    ) -> None:
        if member.join_token is not None and member.join_token != token:
            superseded = JoinResult(ErrorCode.REBALANCE_IN_PROGRESS, member.member_id)
            out.reply(member.join_token, superseded)
        member.protocols = req.protocols
        member.rebalance_timeout_ms = req.rebalance_timeout_ms
        member.session_timeout_ms = req.session_timeout_ms
        member.join_token = token
        member.awaiting_join = True
        member.last_heartbeat_ns = self.clock.monotonic_ns()
        self._maybe_prepare_rebalance(out, group)
        self._try_complete_join(out, group)

    def _replace_static_member(
        self,
        out: Output,
        token: Token,
        group: Group,
        old_id: str,
        new_id: str,
        req: JoinRequest,
    ) -> None:
        """A static member rejoined without its member id (it restarted): the new id replaces
        the old one; the old id's waiting calls are fenced. No rebalance when the group is
        Stable and its protocol would not change."""
        old = group.members.pop(old_id)
        if old.join_token is not None:
            out.reply(old.join_token, JoinResult(ErrorCode.FENCED_INSTANCE_ID, old_id))
        if old.sync_token is not None:
            out.reply(old.sync_token, SyncResult(ErrorCode.FENCED_INSTANCE_ID))
        member = Member(
            new_id,
            req.group_instance_id,
            req.client_id,
            req.client_host,
            req.rebalance_timeout_ms,
            req.session_timeout_ms,
            req.protocol_type,
            req.protocols,
            assignment=old.assignment,
            awaiting_join=old.awaiting_join,
            join_token=None,
            last_heartbeat_ns=self.clock.monotonic_ns(),
        )
        group.members[new_id] = member
        if req.group_instance_id is not None:
            group.static_members[req.group_instance_id] = new_id
        if group.leader_id == old_id:
            group.leader_id = new_id
        if group.state == GroupState.STABLE:
            if group.select_protocol() == group.protocol_name:
                out.records.append(self._group_record(group))
                out.reply(token, self._join_result(group, member, skip_assignment=True))
            else:
                member.join_token, member.awaiting_join = token, True
                self._prepare_rebalance(out, group)
        elif group.state == GroupState.COMPLETING_REBALANCE:
            member.join_token, member.awaiting_join = token, True
            self._prepare_rebalance(out, group)
        else:  # PreparingRebalance: it waits for the join to complete like everyone else
            member.join_token, member.awaiting_join = token, True
            self._try_complete_join(out, group)

    def _join_result(
        self, group: Group, member: Member, *, skip_assignment: bool = False
    ) -> JoinResult:
        members: tuple[JoinMember, ...] = ()
        if member.member_id == group.leader_id:
            members = tuple(
                JoinMember(m.member_id, m.group_instance_id, m.metadata(group.protocol_name))
                for m in group.members.values()
            )
        return JoinResult(
            ErrorCode.NONE,
            member_id=member.member_id,
            generation_id=group.generation,
            protocol_type=group.protocol_type,
            protocol_name=group.protocol_name,
            leader=group.leader_id or "",
            members=members,
            skip_assignment=skip_assignment,
        )

    # --- rebalance ------------------------------------------------------------------------------

    def _maybe_prepare_rebalance(self, out: Output, group: Group) -> None:
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE, GroupState.EMPTY):
            self._prepare_rebalance(out, group)

    def _prepare_rebalance(self, out: Output, group: Group) -> None:
        if group.state == GroupState.COMPLETING_REBALANCE:
            self._reset_syncs(out, group, ErrorCode.REBALANCE_IN_PROGRESS)
        now_ns = self.clock.monotonic_ns()
        timeout_ms = group.rebalance_timeout_ms()
        if group.state == GroupState.EMPTY:
            delay_ms = min(self.config.initial_rebalance_delay_ms, timeout_ms)
            group.initial_join = True
            group.new_member_added = False
            group.initial_join_remaining_ms = max(timeout_ms - delay_ms, 0)
        else:
            delay_ms = timeout_ms
            group.initial_join = False
        group.join_deadline_ns = now_ns + delay_ms * _NS_PER_MS
        self._transition(group, GroupState.PREPARING_REBALANCE)

    def _reset_syncs(self, out: Output, group: Group, error: ErrorCode) -> None:
        for m in group.members.values():
            if m.sync_token is not None:
                out.reply(m.sync_token, SyncResult(error))
            m.sync_token = None
            m.awaiting_sync = False
            m.assignment = b""

    def _try_complete_join(self, out: Output, group: Group) -> None:
        if (
            group.state == GroupState.PREPARING_REBALANCE
            and not group.initial_join
            and group.all_joined()
        ):
            self._complete_join(out, group)

    def _complete_join(self, out: Output, group: Group) -> None:
        """The rebalance's join phase ends: drop who did not rejoin, start a generation."""
        group.join_deadline_ns = None
        group.initial_join = False
        for m in [m for m in group.members.values() if not m.awaiting_join]:
            self._remove_member(out, group, m.member_id, ErrorCode.UNKNOWN_MEMBER_ID)
        if group.leader_id is not None and group.leader_id not in group.members:
            group.leader_id = next(iter(group.members), None)
        group.generation += 1
        now_ns = self.clock.monotonic_ns()
        if not group.members:
            group.protocol_name = None
            self._transition(group, GroupState.EMPTY)
            out.records.append(self._group_record(group))
            return
        group.protocol_name = group.select_protocol()
        self._transition(group, GroupState.COMPLETING_REBALANCE)
        for m in group.members.values():
            result = self._join_result(group, m)
            if m.join_token is not None:
                out.reply(m.join_token, result)
            m.join_token = None
            m.awaiting_join = False
            m.is_new = False
            m.last_heartbeat_ns = now_ns

    def _remove_member(self, out: Output, group: Group, member_id: str, error: ErrorCode) -> None:
        member = group.members.pop(member_id)
        if member.join_token is not None:
            out.reply(member.join_token, JoinResult(error, member_id))
        if member.sync_token is not None:
            out.reply(member.sync_token, SyncResult(error))
        if (
            member.group_instance_id is not None
            and group.static_members.get(member.group_instance_id) == member_id
        ):
            del group.static_members[member.group_instance_id]
        if group.leader_id == member_id:
            group.leader_id = next(iter(group.members), None)

    def _member_gone(self, out: Output, group: Group, member_id: str) -> None:
        """A member left or its session expired: remove it and rebalance the rest."""
        self._remove_member(out, group, member_id, ErrorCode.UNKNOWN_MEMBER_ID)
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(out, group)
        elif group.state == GroupState.PREPARING_REBALANCE:
            self._try_complete_join(out, group)

    def _transition(self, group: Group, state: GroupState) -> None:
        group.state = state
        group.state_timestamp_ms = self.clock.wall_ms()

    def _group_record(self, group: Group) -> LogRecord:
        value = GroupValue(
            protocol_type=group.protocol_type or "",
            generation=group.generation,
            protocol=group.protocol_name,
            leader=group.leader_id,
            current_state_timestamp_ms=group.state_timestamp_ms,
            members=tuple(
                StoredMember(
                    m.member_id,
                    m.group_instance_id,
                    m.client_id,
                    m.client_host,
                    m.rebalance_timeout_ms,
                    m.session_timeout_ms,
                    m.metadata(group.protocol_name),
                    m.assignment,
                )
                for m in group.members.values()
            ),
        )
        return LogRecord(
            group.group_id, encode_group_key(GroupKey(group.group_id)), encode_group_value(value)
        )

    # --- SyncGroup ------------------------------------------------------------------------------

    def sync(self, token: Token, req: SyncRequest) -> Output:
        out = Output()
        group = self._groups.get(req.group_id)
        if group is None or group.state == GroupState.DEAD:
            out.reply(token, SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
            return out
        fenced = self._fenced(group, req.member_id, req.group_instance_id)
        if fenced is not None:
            out.reply(token, SyncResult(fenced))
            return out
        if req.generation_id != group.generation:
            out.reply(token, SyncResult(ErrorCode.ILLEGAL_GENERATION))
            return out
        if (req.protocol_type is not None and req.protocol_type != group.protocol_type) or (
            req.protocol_name is not None and req.protocol_name != group.protocol_name
        ):
            out.reply(token, SyncResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL))
            return out
        member = group.members[req.member_id]
        if group.state == GroupState.PREPARING_REBALANCE:
            out.reply(token, SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
        elif group.state == GroupState.STABLE:
            member.last_heartbeat_ns = self.clock.monotonic_ns()
            out.reply(token, self._sync_result(group, member))
        elif group.state == GroupState.COMPLETING_REBALANCE:
            if member.sync_token is not None and member.sync_token != token:
                out.reply(member.sync_token, SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
            member.sync_token = token
            member.awaiting_sync = True
            member.last_heartbeat_ns = self.clock.monotonic_ns()
            if req.member_id == group.leader_id:
                given = dict(req.assignments)
                for m in group.members.values():
                    m.assignment = given.get(m.member_id, b"")
                self._transition(group, GroupState.STABLE)
                out.records.append(self._group_record(group))
                for m in group.members.values():
                    if m.sync_token is not None:
                        out.reply(m.sync_token, self._sync_result(group, m))
                    m.sync_token = None
                    m.awaiting_sync = False
        else:  # Empty
            out.reply(token, SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
        return out

    @staticmethod
    def _sync_result(group: Group, member: Member) -> SyncResult:
        return SyncResult(
            ErrorCode.NONE, group.protocol_type, group.protocol_name, member.assignment
        )

    # --- Heartbeat / LeaveGroup -----------------------------------------------------------------

    def heartbeat(
        self, group_id: str, member_id: str, instance_id: str | None, generation_id: int
    ) -> ErrorCode:
        group = self._groups.get(group_id)
        if group is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if group.state == GroupState.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        fenced = self._fenced(group, member_id, instance_id)
        if fenced is not None:
            return fenced
        if group.state == GroupState.EMPTY:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if generation_id != group.generation:
            return ErrorCode.ILLEGAL_GENERATION
        group.members[member_id].last_heartbeat_ns = self.clock.monotonic_ns()
        if group.state == GroupState.PREPARING_REBALANCE:
            return ErrorCode.REBALANCE_IN_PROGRESS
        return ErrorCode.NONE

    def leave(
        self, token: Token, group_id: str, members: Iterable[tuple[str, str | None]]
    ) -> Output:
        """LeaveGroup for ``members`` = (member id, group instance id); v0-v2 send one."""
        out = Output()
        group = self._groups.get(group_id)
        requested = list(members)
        if group is None or group.state == GroupState.DEAD:
            errors = tuple((m, i, ErrorCode.UNKNOWN_MEMBER_ID) for m, i in requested)
            out.reply(token, LeaveResult(ErrorCode.NONE, errors))
            return out
        results = []
        for given_id, instance_id in requested:
            error = ErrorCode.NONE
            member_id = given_id
            if instance_id is not None:
                current = group.static_members.get(instance_id)
                if current is None:
                    error = ErrorCode.UNKNOWN_MEMBER_ID
                elif given_id and given_id != current:
                    error = ErrorCode.FENCED_INSTANCE_ID
                else:
                    member_id = current
            if error == ErrorCode.NONE:
                if member_id in group.pending_members:
                    del group.pending_members[member_id]
                    self._try_complete_join(out, group)
                elif member_id in group.members:
                    self._member_gone(out, group, member_id)
                else:
                    error = ErrorCode.UNKNOWN_MEMBER_ID
            results.append((member_id, instance_id, error))
        out.reply(token, LeaveResult(ErrorCode.NONE, tuple(results)))
        return out

    # --- offsets --------------------------------------------------------------------------------

    def commit(self, token: Token, req: CommitRequest) -> Output:
        out = Output()
        tps = [(t, p) for t, p, _, _, _ in req.offsets]
        error = self._commit_error(req)
        if error != ErrorCode.NONE:
            out.reply(token, PartitionErrors(ErrorCode.NONE, dict.fromkeys(tps, error)))
            return out
        group = self._groups.get(req.group_id)
        if group is not None and req.member_id in group.members:
            group.members[req.member_id].last_heartbeat_ns = self.clock.monotonic_ns()
        now_ms = self.clock.wall_ms()
        results: dict[tuple[str, int], ErrorCode] = {}
        for topic, partition, offset, epoch, metadata in req.offsets:
            meta = metadata or ""
            if len(meta.encode()) > self.config.offset_metadata_max_bytes:
                results[(topic, partition)] = ErrorCode.OFFSET_METADATA_TOO_LARGE
                continue
            results[(topic, partition)] = ErrorCode.NONE
            key = encode_offset_key(OffsetKey(req.group_id, topic, partition))
            value = encode_offset_value(OffsetValue(offset, epoch, meta, now_ms))
            out.records.append(LogRecord(req.group_id, key, value))
        out.reply(token, PartitionErrors(ErrorCode.NONE, results))
        return out

    def txn_commit(self, token: Token, req: CommitRequest, producer_id: int,
                   producer_epoch: int) -> Output:
        """TxnOffsetCommit: offsets recorded under the producer's transaction (pending)."""
        out = Output()
        tps = [(t, p) for t, p, _, _, _ in req.offsets]
        error = self._txn_commit_error(req)
        if error != ErrorCode.NONE:
            out.reply(token, PartitionErrors(ErrorCode.NONE, dict.fromkeys(tps, error)))
            return out
        now_ms = self.clock.wall_ms()
        results: dict[tuple[str, int], ErrorCode] = {}
        for topic, partition, offset, epoch, metadata in req.offsets:
            meta = metadata or ""
            if len(meta.encode()) > self.config.offset_metadata_max_bytes:
                results[(topic, partition)] = ErrorCode.OFFSET_METADATA_TOO_LARGE
                continue
            results[(topic, partition)] = ErrorCode.NONE
            key = encode_offset_key(OffsetKey(req.group_id, topic, partition))
            value = encode_offset_value(OffsetValue(offset, epoch, meta, now_ms))
            out.records.append(LogRecord(req.group_id, key, value, producer_id, producer_epoch))
        out.reply(token, PartitionErrors(ErrorCode.NONE, results))
        return out

    def _txn_commit_error(self, req: CommitRequest) -> ErrorCode:
        """Kafka's doTxnCommitOffsets checks: members are checked only when named (v3+)."""
        if not req.group_id:
            return ErrorCode.INVALID_GROUP_ID
        group = self._groups.get(req.group_id)
        if group is None:
            return ErrorCode.NONE
        if group.state == GroupState.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if req.member_id and req.member_id not in group.members:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if req.generation_id >= 0 and req.generation_id != group.generation:
            return ErrorCode.ILLEGAL_GENERATION
        return ErrorCode.NONE

    def _commit_error(self, req: CommitRequest) -> ErrorCode:
        """Kafka's doCommitOffsets checks, in its order."""
        if not req.group_id:
            return ErrorCode.INVALID_GROUP_ID
        group = self._groups.get(req.group_id)
        if group is None:
            # Unknown group: a simple commit (no group management) may create it (by replay).
            return ErrorCode.NONE if req.generation_id < 0 else ErrorCode.ILLEGAL_GENERATION
        if group.state == GroupState.DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if req.group_instance_id is not None:
            current = group.static_members.get(req.group_instance_id)
            if current is not None and current != req.member_id:
                return ErrorCode.FENCED_INSTANCE_ID
        if req.generation_id < 0 and group.state == GroupState.EMPTY:
            return ErrorCode.NONE
        if group.state == GroupState.COMPLETING_REBALANCE:
            return ErrorCode.REBALANCE_IN_PROGRESS
        if req.member_id not in group.members:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if req.generation_id != group.generation:
            return ErrorCode.ILLEGAL_GENERATION
        return ErrorCode.NONE

    def unstable_offsets(self, group_id: str) -> set[tuple[str, int]]:
        """Partitions of ``group_id`` with a transactional offset commit still awaiting its
        transaction's marker: OffsetFetch with ``require_stable`` (KIP-447) answers
        UNSTABLE_OFFSET_COMMIT for them, so a read_committed consumer taking over waits for
        the outcome instead of starting from an offset the transaction is about to move."""
        out: set[tuple[str, int]] = set()
        for pending in self._pending_txn.values():
            for key, _ in pending:
                decoded = decode_key(key)
                if isinstance(decoded, OffsetKey) and decoded.group_id == group_id:
                    out.add((decoded.topic, decoded.partition))
        return out

    def fetch_offsets(
        self, group_id: str, topics: Iterable[tuple[str, Iterable[int]]] | None
    ) -> dict[tuple[str, int], CommittedOffset | None]:
        """Committed offsets of ``group_id`` (all of them when ``topics`` is None)."""
        group = self._groups.get(group_id)
        offsets = group.offsets if group is not None else {}
        if topics is None:
            return {tp: offsets[tp] for tp in sorted(offsets)}
        return {(t, p): offsets.get((t, p)) for t, ps in topics for p in ps}

    def delete_offsets(
        self, token: Token, group_id: str, partitions: Iterable[tuple[str, int]]
    ) -> Output:
        """OffsetDelete: refused per partition for topics an active consumer group reads."""
        out = Output()
        tps = list(partitions)
        group = self._groups.get(group_id)
        if not group_id:
            out.reply(token, PartitionErrors(ErrorCode.INVALID_GROUP_ID))
            return out
        if group is None or group.state == GroupState.DEAD:
            out.reply(token, PartitionErrors(ErrorCode.GROUP_ID_NOT_FOUND))
            return out
        if group.state != GroupState.EMPTY and group.protocol_type != CONSUMER_PROTOCOL:
            out.reply(token, PartitionErrors(ErrorCode.NON_EMPTY_GROUP))
            return out
        subscribed = group.subscribed() if group.state != GroupState.EMPTY else frozenset()
        results: dict[tuple[str, int], ErrorCode] = {}
        for topic, partition in tps:
            if subscribed is None or topic in subscribed:
                results[(topic, partition)] = ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC
                continue
            results[(topic, partition)] = ErrorCode.NONE
            if (topic, partition) in group.offsets:
                key = encode_offset_key(OffsetKey(group_id, topic, partition))
                out.records.append(LogRecord(group_id, key, None))
        out.reply(token, PartitionErrors(ErrorCode.NONE, results))
        return out

    # --- admin ----------------------------------------------------------------------------------

    def list_groups(self) -> list[tuple[str, str, GroupState]]:
        """(group id, protocol type, state) of every live group."""
        return [
            (g.group_id, g.protocol_type or "", g.state)
            for g in sorted(self._groups.values(), key=lambda g: g.group_id)
            if g.state != GroupState.DEAD
        ]

    def describe(self, group_id: str) -> GroupSummary:
        group = self._groups.get(group_id)
        if group is None:
            return GroupSummary(group_id, GroupState.DEAD, "", "", ())
        stable = group.state == GroupState.STABLE
        members = tuple(
            MemberSummary(
                m.member_id,
                m.group_instance_id,
                m.client_id,
                m.client_host,
                m.metadata(group.protocol_name) if stable else b"",
                m.assignment if stable else b"",
            )
            for m in group.members.values()
        )
        protocol = (group.protocol_name or "") if stable else ""
        return GroupSummary(group_id, group.state, group.protocol_type or "", protocol, members)

    def delete_groups(self, token: Token, group_ids: Iterable[str]) -> Output:
        out = Output()
        results: dict[str, ErrorCode] = {}
        for group_id in group_ids:
            group = self._groups.get(group_id)
            if not group_id:
                results[group_id] = ErrorCode.INVALID_GROUP_ID
            elif group is None or group.state == GroupState.DEAD:
                results[group_id] = ErrorCode.GROUP_ID_NOT_FOUND
            elif group.state != GroupState.EMPTY:
                results[group_id] = ErrorCode.NON_EMPTY_GROUP
            else:
                results[group_id] = ErrorCode.NONE
                for topic, partition in sorted(group.offsets):
                    key = encode_offset_key(OffsetKey(group_id, topic, partition))
                    out.records.append(LogRecord(group_id, key, None))
                out.records.append(LogRecord(group_id, encode_group_key(GroupKey(group_id)), None))
                self._transition(group, GroupState.DEAD)
        out.reply(token, results)
        return out

    # --- timers ---------------------------------------------------------------------------------

    def next_deadline_ns(self) -> int:
        """When :meth:`tick` next has work (monotonic ns); a bound, never too late."""
        deadline = self._next_retention_check_ns
        for group in self._groups.values():
            if group.join_deadline_ns is not None:
                deadline = min(deadline, group.join_deadline_ns)
            for pending_deadline in group.pending_members.values():
                deadline = min(deadline, pending_deadline)
            for m in group.members.values():
                expiry = self._expiry_ns(m)
                if expiry is not None:
                    deadline = min(deadline, expiry)
        return deadline

    def _expiry_ns(self, m: Member) -> int | None:
        if m.awaiting_join:
            if not m.is_new:
                return None
            return m.last_heartbeat_ns + self.config.new_member_join_timeout_ms * _NS_PER_MS
        if m.awaiting_sync:
            return None
        return m.last_heartbeat_ns + m.session_timeout_ms * _NS_PER_MS

    def tick(self) -> Output:
        """Run every timer that is due: delayed joins, session and pending-member expiry,
        offset retention."""
        out = Output()
        now_ns = self.clock.monotonic_ns()
        for group in list(self._groups.values()):
            for member_id, deadline in list(group.pending_members.items()):
                if deadline <= now_ns:
                    del group.pending_members[member_id]
                    self._try_complete_join(out, group)
            for m in list(group.members.values()):
                expiry = self._expiry_ns(m)
                if expiry is not None and expiry <= now_ns and m.member_id in group.members:
                    self._member_gone(out, group, m.member_id)
            if group.join_deadline_ns is not None and group.join_deadline_ns <= now_ns:
                self._join_deadline(out, group, now_ns)
            self._forget_if_unused(group)
        if self._next_retention_check_ns <= now_ns:
            self._next_retention_check_ns = (
                now_ns + self.config.offsets_retention_check_interval_ms * _NS_PER_MS
            )
            out.records.extend(self.expired_offsets())
        return out

    def _join_deadline(self, out: Output, group: Group, now_ns: int) -> None:
        if group.state != GroupState.PREPARING_REBALANCE:
            group.join_deadline_ns = None
            return
        delay_ms = min(self.config.initial_rebalance_delay_ms, group.initial_join_remaining_ms)
        if group.initial_join and group.new_member_added and delay_ms > 0:
            # group.initial.rebalance.delay.ms: wait again while members keep arriving.
            group.initial_join_remaining_ms -= delay_ms
            group.new_member_added = False
            group.join_deadline_ns = now_ns + delay_ms * _NS_PER_MS
            return
        self._complete_join(out, group)

    def expired_offsets(self) -> list[LogRecord]:
        """Tombstones for offsets past ``offsets.retention.minutes`` (Kafka 2.1+ rules): an
        Empty group's offsets expire that long after it became empty; a Stable consumer
        group's offsets of topics it no longer reads, and a group's simple commits, that long
        after their commit. An Empty group left with no offsets is deleted too."""
        now_ms = self.clock.wall_ms()
        retention = self.config.offsets_retention_ms
        records: list[LogRecord] = []
        for group in list(self._groups.values()):
            expired: list[tuple[str, int]] = []
            if group.state == GroupState.EMPTY and group.protocol_type is not None:
                base = group.state_timestamp_ms
                expired = [
                    tp for tp, o in group.offsets.items()
                    if max(base, o.commit_timestamp_ms) + retention <= now_ms
                ]  # fmt: skip
            elif group.state in (GroupState.EMPTY, GroupState.STABLE):
                subscribed = group.subscribed() if group.state == GroupState.STABLE else None
                if group.state == GroupState.STABLE and subscribed is None:
                    continue
                expired = [
                    tp for tp, o in group.offsets.items()
                    if (subscribed is None or tp[0] not in subscribed)
                    and o.commit_timestamp_ms + retention <= now_ms
                ]  # fmt: skip
            for topic, partition in sorted(expired):
                key = encode_offset_key(OffsetKey(group.group_id, topic, partition))
                records.append(LogRecord(group.group_id, key, None))
            if (
                group.state == GroupState.EMPTY
                and not group.members
                and len(expired) == len(group.offsets)
                and (expired or group.stored is not None)
            ):
                key = encode_group_key(GroupKey(group.group_id))
                records.append(LogRecord(group.group_id, key, None))
                self._transition(group, GroupState.DEAD)
        return records

    # --- introspection (tests, CLI) -------------------------------------------------------------

    def group_ids(self) -> list[str]:
        return sorted(self._groups)

    def state_of(self, group_id: str) -> GroupState | None:
        group = self._groups.get(group_id)
        return None if group is None else group.state

    def generation_of(self, group_id: str) -> int:
        group = self._groups.get(group_id)
        return -1 if group is None else group.generation

    def snapshot(self) -> dict[str, object]:
        """The stored view of every group as the live state has it: what a restart must
        reproduce. Groups between rebalances (Empty or Stable) only; offsets always."""
        snap: dict[str, object] = {}
        for g in sorted(self._groups.values(), key=lambda g: g.group_id):
            entry: dict[str, object] = {"offsets": dict(sorted(g.offsets.items()))}
            if g.state in (GroupState.EMPTY, GroupState.STABLE) and (g.members or g.generation > 0):
                entry["group"] = (
                    g.state,
                    g.protocol_type or "",
                    g.generation,
                    g.protocol_name,
                    g.leader_id,
                    tuple(
                        (m.member_id, m.group_instance_id, m.client_id, m.client_host,
                         m.session_timeout_ms, m.metadata(g.protocol_name), m.assignment)
                        for m in g.members.values()
                    ),
                )  # fmt: skip
            snap[g.group_id] = entry
        return snap

    def check_invariants(self) -> None:
        for g in self._groups.values():
            gid = g.group_id
            if g.members:
                invariant(g.leader_id in g.members, f"{gid}: leader {g.leader_id} not a member")
            elif g.state != GroupState.DEAD:
                invariant(g.state in (GroupState.EMPTY, GroupState.PREPARING_REBALANCE),
                          f"{gid}: no members in state {g.state}")  # fmt: skip
            for instance, member_id in g.static_members.items():
                m = g.members.get(member_id)
                invariant(
                    m is not None and m.group_instance_id == instance,
                    f"{gid}: static member {instance} -> {member_id} is not a member",
                )
            for m in g.members.values():
                if m.awaiting_join:
                    invariant(g.state == GroupState.PREPARING_REBALANCE,
                              f"{gid}: {m.member_id} awaits a join in {g.state}")  # fmt: skip
                if m.awaiting_sync:
                    invariant(g.state == GroupState.COMPLETING_REBALANCE,
                              f"{gid}: {m.member_id} awaits a sync in {g.state}")  # fmt: skip
            if g.state == GroupState.EMPTY:
                invariant(not g.members, f"{gid}: Empty with members")
