"""Values the group coordinator takes and returns: requests, results, records, config.

Everything here is a plain, typed value: no kio, no I/O. The broker's handlers translate the
wire entities of each API version into these and back (see broker/handlers/*).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from seriatim.errors import ErrorCode

#: Identifies one waiting request. The driver makes one per call; results come back under it,
#: in the call's own output or, for JoinGroup/SyncGroup, in a later one.
Token = Hashable

INT32_MAX = 2**31 - 1


class GroupState(StrEnum):
    """Kafka's classic group states (the names DescribeGroups and ListGroups return)."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(frozen=True, slots=True)
class CoordinatorConfig:
    """Kafka's group and offset settings (broker config names in the comments)."""

    initial_rebalance_delay_ms: int = 3000  # group.initial.rebalance.delay.ms
    min_session_timeout_ms: int = 6000  # group.min.session.timeout.ms
    max_session_timeout_ms: int = 1_800_000  # group.max.session.timeout.ms
    max_group_size: int = INT32_MAX  # group.max.size
    offsets_retention_ms: int = 7 * 24 * 3600 * 1000  # offsets.retention.minutes
    offsets_retention_check_interval_ms: int = 600_000  # offsets.retention.check.interval.ms
    offset_metadata_max_bytes: int = 4096  # offset.metadata.max.bytes
    new_member_join_timeout_ms: int = 300_000  # GroupCoordinator.NewMemberJoinTimeoutMs


@dataclass(frozen=True, slots=True)
class LogRecord:
    """A record for ``__consumer_offsets``; ``group_id`` picks the partition."""

    group_id: str
    key: bytes
    value: bytes | None  # None: a tombstone
    # A transactional offset commit (TxnOffsetCommit): written in a transactional batch of this
    # producer, visible only once the transaction's COMMIT marker reaches the partition.
    producer_id: int = -1
    producer_epoch: int = -1


@dataclass(slots=True)
class Output:
    """What one call decided: records to append (then replay) and replies to send.

    The driver appends ``records``, replays them, and sends ``replies`` only once those records
    are durable (a reply never promises what a crash could take back)."""

    records: list[LogRecord] = field(default_factory=list)
    replies: list[tuple[Token, Any]] = field(default_factory=list)

    def reply(self, token: Token, result: Any) -> None:
        self.replies.append((token, result))


# --- requests -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JoinRequest:
    group_id: str
    member_id: str
    group_instance_id: str | None
    protocol_type: str
    protocols: tuple[tuple[str, bytes], ...]
    session_timeout_ms: int
    rebalance_timeout_ms: int
    client_id: str
    client_host: str
    require_known_member_id: bool  # JoinGroup v4+: MEMBER_ID_REQUIRED round trip


@dataclass(frozen=True, slots=True)
class SyncRequest:
    group_id: str
    generation_id: int
    member_id: str
    group_instance_id: str | None
    protocol_type: str | None
    protocol_name: str | None
    assignments: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class CommitRequest:
    group_id: str
    generation_id: int  # -1: a "simple" commit from outside group management
    member_id: str
    group_instance_id: str | None
    offsets: tuple[tuple[str, int, int, int, str | None], ...]  # topic, p, offset, epoch, meta


# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JoinMember:
    member_id: str
    group_instance_id: str | None
    metadata: bytes


@dataclass(frozen=True, slots=True)
class JoinResult:
    error: ErrorCode
    member_id: str = ""
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    members: tuple[JoinMember, ...] = ()
    skip_assignment: bool = False


@dataclass(frozen=True, slots=True)
class SyncResult:
    error: ErrorCode
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""


@dataclass(frozen=True, slots=True)
class LeaveResult:
    error: ErrorCode  # top level
    members: tuple[tuple[str, str | None, ErrorCode], ...] = ()  # member, instance, error


@dataclass(frozen=True, slots=True)
class PartitionErrors:
    """A per-partition answer (OffsetCommit, OffsetDelete), with a top-level error."""

    error: ErrorCode
    partitions: dict[tuple[str, int], ErrorCode] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CommittedOffset:
    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp_ms: int
    expire_timestamp_ms: int = -1


@dataclass(frozen=True, slots=True)
class MemberSummary:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class GroupSummary:
    group_id: str
    state: GroupState
    protocol_type: str
    protocol: str
    members: tuple[MemberSummary, ...]


def failed(result: Any, error: ErrorCode) -> Any:
    """``result`` turned into a failure with ``error`` (when its records could not be stored)."""
    if isinstance(result, PartitionErrors):
        return PartitionErrors(result.error, {tp: error for tp in result.partitions})
    if isinstance(result, dict):
        return {k: error for k in result}
    if isinstance(result, ErrorCode):
        return error
    return replace(result, error=error)
