"""The embedded API: ``seriatim.open(path)`` returns a :class:`Log` over one partition directory.

Theory of operation: a thin, typed convenience layer over :class:`PartitionLog`. ``append`` and
``append_many`` build one record batch (:func:`seriatim.records.build_batch`) stamped with the
clock's wall time and append it; the returned offset is final and, under the default
``flush_policy="always"``, durable when the call returns (the embedded default is the safe
one, as SQLite's is; pass ``flush_policy="interval"`` or ``"never"`` for throughput and call
``flush()`` yourself). Under ``interval``, ``append`` also flushes inline once ``flush.ms`` or
``flush.messages`` is reached, since an embedded log has no background thread.

One writer per directory (``LogLockedError`` names the locked path); any number of
``readonly=True`` readers, in this or other processes, which see the writer's progress through
``follow()`` (or ``refresh()``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import TracebackType

from seriatim.clock import SYSTEM_CLOCK, Clock
from seriatim.errors import OffsetOutOfRangeError
from seriatim.records import Record, RecordInput, build_batch
from seriatim.storage.cleaner import CleanStats
from seriatim.storage.config import LogConfig
from seriatim.storage.fileops import FileOps
from seriatim.storage.log import AppendInfo, PartitionLog

__all__ = ["Log", "open"]



class Log:
    """One partition log opened for embedding. Use :func:`open` to create one."""

    __slots__ = ("_clock", "_interval", "_log")

    def __init__(self, partition_log: PartitionLog, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._log = partition_log
        self._clock = clock
        self._interval = partition_log.config.flush_policy == "interval"

    # --- properties -------------------------------------------------------------------------

    @property
    def path(self) -> str:
        return self._log.path

    @property
    def readonly(self) -> bool:
        return self._log.readonly

    @property
    def config(self) -> LogConfig:
        return self._log.config

    @property
    def partition_log(self) -> PartitionLog:
        """The underlying engine, for what this facade does not cover."""
        return self._log

    @property
    def start_offset(self) -> int:
        return self._log.start_offset

    @property
    def end_offset(self) -> int:
        """The offset the next append gets."""
        return self._log.end_offset

    @property
    def flushed_offset(self) -> int:
        return self._log.flushed_offset

    # --- writing ------------------------------------------------------------------------------

    def append(self, value: bytes | None, *, key: bytes | None = None,
               headers: Sequence[tuple[str, bytes | None]] = (),
               timestamp_ms: int | None = None) -> int:
        """Append one record; return its offset."""
        ts = self._clock.wall_ms() if timestamp_ms is None else timestamp_ms
        batch = build_batch(((key, value, headers),), timestamp_ms=ts)
        return self._append(batch).base_offset

    def append_many(self, records: Iterable[RecordInput], *,
                    timestamp_ms: int | None = None) -> int:
        """Append records as one batch (atomically); return the first offset.

        Each record is ``(key, value)``, ``(key, value, headers)`` or ``(key, value, headers,
        timestamp_ms)``.
        """
        ts = self._clock.wall_ms() if timestamp_ms is None else timestamp_ms
        return self._append(build_batch(records, timestamp_ms=ts)).base_offset

    def append_batch(self, batch: bytes | bytearray | memoryview) -> AppendInfo:
        """Append an already-encoded v2 record batch (validated, offsets assigned)."""
        return self._append(batch)

    def _append(self, batch: bytes | bytearray | memoryview) -> AppendInfo:
        info = self._log.append_batch(batch)
        if self._interval and self._log.flush_due():
            self._log.flush()
        return info

    def flush(self) -> None:
        self._log.flush()

    def truncate_to(self, offset: int) -> None:
        self._log.truncate_to(offset)

    def delete_records_before(self, offset: int) -> int:
        return self._log.delete_records_before(offset)

    def apply_retention(self, now_ms: int | None = None) -> int:
        return self._log.apply_retention(now_ms)

    def compact(self, now_ms: int | None = None, *, force: bool = True) -> CleanStats:
        """Run the log cleaner now (``cleanup_policy`` must include ``compact``): keep the
        latest record per key, drop tombstones older than ``delete.retention.ms``. ``force``
        ignores ``min.cleanable.dirty.ratio``. Sealed segments only: call ``roll()`` first to
        include the newest records. Safe alongside readers; appends are never blocked."""
        return self._log.compact(now_ms, force=force)

    def roll(self) -> None:
        """Seal the active segment (the next append starts a new one)."""
        self._log.roll()

    # --- reading -----------------------------------------------------------------------------

    def read(self, from_offset: int | None = None, *, max_offset: int | None = None
             ) -> Iterator[Record]:
        """Records from ``from_offset`` (default: the start) to the end as of this call."""
        if self._log.readonly:
            self._log.refresh()
        return self._log.read_records(from_offset, max_offset=max_offset)

    def follow(self, from_offset: int | None = None, *, poll_interval_s: float = 0.05,
               stop: threading.Event | None = None) -> Iterator[Record]:
        """Yield records from ``from_offset`` on, waiting for new ones until ``stop`` is set.

        Works on the writer's own ``Log`` (from another thread) and on readonly logs, which
        poll the files (growth of the last segment, new segments).
        """
        log = self._log
        next_offset = log.start_offset if from_offset is None else from_offset
        while stop is None or not stop.is_set():
            if log.readonly:
                log.refresh()
            next_offset = max(next_offset, log.start_offset)
            got = False
            if next_offset < log.end_offset:
                try:
                    for rec in log.read_records(next_offset):
                        got = True
                        next_offset = rec.offset + 1
                        yield rec
                        if stop is not None and stop.is_set():
                            return
                except OffsetOutOfRangeError:
                    pass  # retention or truncation moved the range under us; re-check
            if not got:
                if stop is not None:
                    stop.wait(poll_interval_s)
                else:
                    time.sleep(poll_interval_s)

    def offset_for_time(self, timestamp_ms: int) -> int | None:
        """The first offset whose record timestamp is >= ``timestamp_ms`` (None if none)."""
        found = self._log.offset_for_timestamp(timestamp_ms)
        return None if found is None else found[0]

    def refresh(self) -> bool:
        return self._log.refresh()

    # --- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        self._log.close()

    def __enter__(self) -> Log:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"seriatim.Log({self.path!r}, readonly={self.readonly})"


def open(
    path: str | os.PathLike[str],
    *,
    readonly: bool = False,
    create: bool = True,
    config: Mapping[str, str] | None = None,
    flush_policy: str | None = None,
    segment_bytes: int | None = None,
    segment_ms: int | None = None,
    retention_ms: int | None = None,
    retention_bytes: int | None = None,
    max_message_bytes: int | None = None,
    message_timestamp_type: str | None = None,
    cleanup_policy: str | None = None,
    clock: Clock = SYSTEM_CLOCK,
    fs: FileOps | None = None,
) -> Log:
    """Open (and recover) the log in directory ``path``, creating it unless ``readonly``.

    ``config`` takes Kafka topic-config names (``{"segment.bytes": "1048576"}``); the keyword
    shortcuts override it. ``flush_policy`` defaults to ``"always"``: every append is on disk
    before it returns.
    """
    props: dict[str, str] = dict(config or {})
    shortcuts = {
        "flush.policy": flush_policy,
        "segment.bytes": segment_bytes,
        "segment.ms": segment_ms,
        "retention.ms": retention_ms,
        "retention.bytes": retention_bytes,
        "max.message.bytes": max_message_bytes,
        "message.timestamp.type": message_timestamp_type,
        "cleanup.policy": cleanup_policy,
    }
    props.update({k: str(v) for k, v in shortcuts.items() if v is not None})
    cfg = LogConfig.from_kafka(props)
    plog = PartitionLog.open(path, cfg, clock=clock, readonly=readonly, create=create, fs=fs)
    return Log(plog, clock=clock)
