"""The storage layer: segments, indexes, partition logs, recovery, retention, the log manager
and the embedded ``Log``. Synchronous; never imports asyncio or the layers above."""

from seriatim.storage.config import LogConfig
from seriatim.storage.log import AppendInfo, FileSlice, PartitionLog, ReadResult, RecoveryReport
from seriatim.storage.manager import LogManager, TopicInfo

__all__ = [
    "AppendInfo",
    "FileSlice",
    "LogConfig",
    "LogManager",
    "PartitionLog",
    "ReadResult",
    "RecoveryReport",
    "TopicInfo",
]
