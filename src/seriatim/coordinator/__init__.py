"""PURE cores that run on replayed logs: the consumer-group coordinator (classic protocol,
``groups.py``) and the transaction coordinator (``transactions.py``).

No asyncio, no storage, no sockets: calls in, outputs (records to append, replies to send) out.
The drivers that append and time live in ``broker/groups.py`` and ``broker/transactions.py``.
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
