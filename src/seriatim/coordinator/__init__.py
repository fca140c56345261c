"""PURE cores that run on replayed logs: the consumer-group coordinator (classic protocol).

No asyncio, no storage, no sockets: calls in, :class:`Output` (records to append, replies to
send) out. The driver that appends and times lives in ``broker/groups.py``.
"""

from __future__ import annotations

from seriatim.coordinator.groups import GroupCoordinator
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
    failed,
)
from seriatim.coordinator.schema import RecordFormatError

__all__ = [
    "CommitRequest",
    "CommittedOffset",
    "CoordinatorConfig",
    "GroupCoordinator",
    "GroupState",
    "GroupSummary",
    "JoinMember",
    "JoinRequest",
    "JoinResult",
    "LeaveResult",
    "LogRecord",
    "MemberSummary",
    "Output",
    "PartitionErrors",
    "RecordFormatError",
    "SyncRequest",
    "SyncResult",
    "Token",
    "failed",
]
