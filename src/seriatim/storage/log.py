"""PartitionLog: one partition directory of segments, its recovery, retention and durability.

Theory of operation
-------------------
Files in a partition directory (byte tables in docs/formats.md)::

    00000000000000000000.log / .index / .timeindex   segments, named by base offset
    recovery-point-checkpoint      offset below which every byte and index entry was fsynced
    log-start-offset-checkpoint    the first offset a reader may see (delete_records_before)
    leader-epoch-checkpoint        the leader-epoch cache (epoch -> start offset)
    <offset>.snapshot              producer state after every batch below offset (roll, close)
    <base>.txnindex                aborted transactions whose marker is in that segment
    .clean-shutdown                written last by close(), deleted first by open()
    .lock                          flock'ed by the one writer

**Appending.** ``append_batch`` validates the batch at the gateway
(:func:`seriatim.records.validate_batch` with ``max.message.bytes``), rolls the active segment
if the batch would overflow ``segment.bytes``, ``segment.ms`` elapsed, an index is full or the
relative offset would overflow, then writes the batch with its baseOffset (and, when given,
partitionLeaderEpoch) rewritten: both are outside the CRC, so the batch is not re-checksummed.
LogAppendTime topics set attribute bit 3 and maxTimestamp = now, which *are* covered by the
CRC, so only then is the CRC recomputed. One ``writev`` per batch, looping on short writes.

**Durability.** ``flush.policy``: ``always`` fdatasyncs before ``append_batch`` returns;
``interval``/``never`` never fsync on append: the owner calls :meth:`flush` (group commit),
which may run in another thread while appends continue; it fsyncs everything written before
it was called and then advances ``flushed_offset`` (the recovery point). Two locks make that
safe: ``_lock`` guards the in-memory state (held briefly by appends, reads and flush's
snapshot), ``_flush_lock`` is held for the duration of the fsyncs and by every operation that
closes or truncates files (truncate, retention, close), so no descriptor is closed under a
running fsync. Segment creation and deletion fsync the directory. Any ``OSError`` from a
write or fsync takes the log **offline**: every later call raises ``StorageError`` (fail-stop;
a retried fsync may "succeed" after the kernel dropped the dirty pages). One exception: a
batch *write* that fails with ENOSPC/EDQUOT (no fsync involved, nothing acknowledged) is cut
back off the segment and only that append is refused, so writes resume once space is freed.

**Recovery** (``open`` without a valid clean-shutdown marker). Segments wholly below the
recovery point are trusted (their index files are sanity-checked and rebuilt if damaged); the
segment holding the recovery point and every later one are scanned batch by batch: length
bounds, magic, CRC-32C, offsets increasing. Indexes are rebuilt from the scan. At the first bad
batch (position *p* in segment *S*) we decide between a torn tail and mid-log corruption:

    **Rule:** search every byte position after *p* in *S*, and all of every later segment, for a
    batch whose header is plausible (magic 2, length >= 61 and inside the file) and whose
    CRC-32C matches. If one exists, the damage is in the middle of the log: open() raises
    CorruptLogError(S, p) and changes nothing. If none exists, the bytes from *p* on are a torn
    tail (a partial write, zeros, garbage): *S* is cut at *p*, later segments are deleted, and
    ``recovery_report.bytes_truncated`` says how much was cut.

A torn write leaves at most one incomplete batch at the end and nothing valid after it, so it
is never refused; a flipped bit in an older batch leaves valid batches after it, so it is
never silently dropped. (A record value that itself embeds a complete, valid v2 batch inside
a torn last batch would make a torn tail look like mid-log damage: refusing is the safe side.)
After recovery everything is fsynced and the recovery point checkpointed, so recovery is
idempotent.

**Producer state** (storage/producer_state.py, storage/txnindex.py). A writer keeps, per
producer id, the last 5 batches' sequences (idempotence) and open transactions (the last stable
offset), and the aborted-transaction index. ``append_batch`` checks a producer's batch under the
lock: a duplicate is answered with the original offsets (``AppendInfo.duplicate``) and not
written; a sequence or epoch error raises ProducerStateError. After ``open`` (clean or not) the
state is the newest snapshot at or below the end plus a replay of the batch headers after it;
``truncate_to`` rebuilds it the same way.

**Readers.** A readonly log takes no lock, never writes, and stops quietly at an incomplete tail
(the writer may be mid-write); :meth:`refresh` picks up growth of the last segment and new
segments (the next segment is named by the current end offset).

Invariants: segments are sorted by base offset and do not overlap; only the last (active)
segment is appended to; ``start_offset <= end_offset``; ``flushed_offset <= end_offset``.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import struct
import threading
from bisect import bisect_right
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType

import crc32c

from seriatim import limits
from seriatim.clock import SYSTEM_CLOCK, Clock
from seriatim.errors import (
    CorruptLogError,
    InvalidRecordError,
    LogClosedError,
    OffsetOutOfRangeError,
    StorageError,
)
from seriatim.records import BatchHeader, Record, iter_records, validate_batch
from seriatim.storage import cleaner as _cleaner
from seriatim.storage.checkpoint import CheckpointError, read_checkpoint, write_checkpoint
from seriatim.storage.config import LogConfig
from seriatim.storage.epoch import LeaderEpochCache
from seriatim.storage.fileops import REAL_FILE_OPS, FileOps, pread_exact, writev_all
from seriatim.storage.lock import DirLock
from seriatim.storage.producer_state import (
    ProducerEntry,
    ProducerStateManager,
    control_marker,
    load_latest_snapshot,
)
from seriatim.storage.segment import (
    HEADER_BYTES,
    INDEX_SUFFIX,
    LOG_SUFFIX,
    LOOKUP_BLOCK_BYTES,
    MAX_RELATIVE_OFFSET,
    TIMEINDEX_SUFFIX,
    BatchInfo,
    Scan,
    Segment,
    find_valid_batch,
    parse_segment_name,
    segment_name,
)
from seriatim.storage.txnindex import AbortedTxn, TxnIndex

RECOVERY_POINT_FILE = "recovery-point-checkpoint"
LOG_START_FILE = "log-start-offset-checkpoint"
CLEAN_SHUTDOWN_FILE = ".clean-shutdown"
READ_CHUNK_BYTES = 1 << 20
LATEST_TIMESTAMP = -1  # ListOffsets special timestamps
EARLIEST_TIMESTAMP = -2
MAX_TIMESTAMP = -3

_ATTR_LOG_APPEND_TIME = 0x08
_ATTR_TXN = 0x10
_ATTR_CONTROL = 0x20
_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")
_I16 = struct.Struct(">h")
_U32 = struct.Struct(">I")
_BASE_LEN = struct.Struct(">qi11xi")  # baseOffset, batchLength, .., lastOffsetDelta

log = logging.getLogger("seriatim.storage")

#: errnos of a write that failed for lack of space: refuse the append, stay online
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


@dataclass(frozen=True, slots=True)
class AppendInfo:
    base_offset: int
    last_offset: int
    log_append_time_ms: int  # -1 unless the topic uses LogAppendTime
    max_timestamp_ms: int
    size_bytes: int
    duplicate: bool = False  # a producer's retry: nothing written, the original offsets


@dataclass(frozen=True, slots=True)
class FlushTicket:
    """What one flush covers (see PartitionLog.flush_begin)."""

    target: int  # flushed_offset once done
    active: Segment
    todo: list[Segment]
    pending_messages: int


@dataclass(frozen=True, slots=True)
class FileSlice:
    """``size`` bytes of whole batches at ``position`` in a segment file (for sendfile)."""

    path: str
    fd: int
    position: int
    size: int

    def read(self) -> bytes:
        return pread_exact(self.fd, self.size, self.position)


@dataclass(frozen=True, slots=True)
class ReadResult:
    slices: tuple[FileSlice, ...] = ()

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self.slices)

    def bytes(self) -> bytes:
        return b"".join(s.read() for s in self.slices)


@dataclass(slots=True)
class RecoveryReport:
    """What ``open`` found and did; ``bytes_truncated > 0`` means a torn tail was cut."""

    clean_shutdown: bool = False
    segments_recovered: int = 0
    indexes_rebuilt: int = 0
    bytes_truncated: int = 0
    segments_deleted: int = 0
    truncated_at: tuple[str, int] | None = None
    reason: str | None = None
    notes: list[str] = field(default_factory=list)


def _filter(records: Iterator[Record], start: int, stop: int) -> Iterator[Record]:
    for rec in records:
        if rec.offset >= stop:
            return
        if rec.offset >= start:
            yield rec


class PartitionLog:
    """One partition directory; one writer (``flock``), any number of readonly readers."""

    # --- opening ------------------------------------------------------------------------------

    def __init__(self, path: str, config: LogConfig, *, clock: Clock, readonly: bool,
                 fs: FileOps, group_commit: bool = False) -> None:
        # Use PartitionLog.open(): the constructor neither locks nor loads.
        self._dir = os.path.abspath(path)
        # group_commit: under flush.policy=always the owner (the broker) calls flush() for many
        # appends at once and acknowledges after it; append_batch itself does not fsync.
        self._group_commit = group_commit
        self._config = config
        self._clock = clock
        self._readonly = readonly
        self._fs = fs
        self._lock = threading.RLock()
        self._flush_lock = threading.Lock()
        self._segments: list[Segment] = []
        self._bases: list[int] = []
        self._log_start = 0
        self._flushed = 0
        self._unflushed_messages = 0
        self._last_flush_ms = clock.wall_ms()
        self._offline: str | None = None
        self._closed = False
        self._dir_lock: DirLock | None = None
        # Compaction (seriatim.storage.cleaner): one cleaner at a time; close() aborts it.
        self._cleaning_lock = threading.Lock()
        self._cleaner_abort = threading.Event()
        self._retired: list[tuple[int, Segment]] = []  # (retired at, monotonic ms), fd open
        # When the oldest tombstone the cleaner kept passes delete.retention.ms (0: unknown).
        self.tombstones_expire_ms = 0
        self._compacted_before: bool | None = None  # cached by _strict_offsets
        self._epochs = LeaderEpochCache(self._dir, fs, persist=not readonly)
        # Producer state (writers only): idempotence, open transactions, aborted index.
        self._producers = ProducerStateManager()
        self._txn = TxnIndex(self._dir, fs)
        self.recovery_report = RecoveryReport()

    @classmethod
    def open(cls, path: str | os.PathLike[str], config: LogConfig | None = None, *,
             clock: Clock = SYSTEM_CLOCK, readonly: bool = False, create: bool = True,
             fs: FileOps | None = None, group_commit: bool = False) -> PartitionLog:
        """Open (creating if allowed) and recover the log in directory ``path``.

        With ``group_commit``, appends under ``flush.policy=always`` do not fsync by
        themselves: the caller must call :meth:`flush` before acknowledging them.

        Raises LogLockedError if another writer holds it, CorruptLogError on mid-log damage.
        """
        directory = os.fspath(path)
        if not os.path.isdir(directory):
            if readonly or not create:
                raise FileNotFoundError(f"no log directory at {directory}")
            os.makedirs(directory, exist_ok=True)
            (fs or REAL_FILE_OPS).fsync_dir(os.path.dirname(os.path.abspath(directory)))
        dir_lock = None if readonly else DirLock(directory)
        try:
            self = cls(directory, config or LogConfig(), clock=clock, readonly=readonly,
                       fs=fs or REAL_FILE_OPS, group_commit=group_commit)
            self._dir_lock = dir_lock
            if readonly:
                self._load_readonly()
            else:
                self._load_writer()
        except BaseException:
            if dir_lock is not None:
                dir_lock.release()
            raise
        return self

    def _load_writer(self) -> None:
        marker = os.path.join(self._dir, CLEAN_SHUTDOWN_FILE)
        clean_end = self._read_int_checkpoint(marker)
        if os.path.exists(marker):
            # Deleted first: a crash from here on must look unclean.
            os.unlink(marker)
            self._fs.fsync_dir(self._dir)
        # An interrupted compaction first (.cleaned / .swap / .deleted), then temp files.
        cleaner_notes = _cleaner.recover_cleaner_files(self._dir, self._fs)
        if cleaner_notes:
            clean_end = None  # a completed swap changed files the marker vouched for
        self._remove_strays()
        ok = self._load_segments(clean_end=clean_end)
        if not ok:
            log.warning("%s: clean-shutdown marker disagrees with the log; recovering",
                        self._dir)
            self._close_segments()
            self._load_segments(clean_end=None)
        self.recovery_report.notes.extend(cleaner_notes)
        self._load_producer_state()

    def _load_segments(self, *, clean_end: int | None) -> bool:
        cfg = self._config
        report = RecoveryReport(clean_shutdown=clean_end is not None)
        self.recovery_report = report
        recovery_point = self._read_int_checkpoint(
            os.path.join(self._dir, RECOVERY_POINT_FILE)) or 0
        log_start = self._read_int_checkpoint(os.path.join(self._dir, LOG_START_FILE))
        segs = [Segment.open_existing(self._dir, b, readonly=False) for b in self._list_bases()]
        self._segments = segs
        if not segs:
            self._add_segment(Segment.create(self._dir, log_start or 0))
            self._fs.fsync_dir(self._dir)
            segs = self._segments
        recovered: list[Segment] = []
        found_epochs: list[tuple[int, int]] = []
        i = 0
        while i < len(segs):
            seg = segs[i]
            next_base = segs[i + 1].base_offset if i + 1 < len(segs) else None
            trusted = clean_end is not None or (next_base is not None
                                                and next_base <= recovery_point)
            if trusted and seg.load_trusted(cfg.index_interval_bytes):
                i += 1
                continue
            if trusted:
                report.indexes_rebuilt += 1
                log.info("%s: index damaged or stale, rebuilding from the log", seg.log_path)
            self._recover_segment(i, report, found_epochs)
            recovered.append(seg)
            i += 1
        self._check_segment_order()
        self._bases = [s.base_offset for s in segs]
        now_ms = self._clock.wall_ms()
        for seg in segs:
            seg.created_ms = now_ms
        end = segs[-1].next_offset
        if clean_end is not None and clean_end != end:
            return False
        for epoch, start in found_epochs:
            self._epochs.assign(epoch, start, flush=False)
        self._epochs.truncate_from_end(end)
        if found_epochs:
            self._epochs.flush()
        self._log_start = min(max(log_start or 0, segs[0].base_offset), end)
        self._delete_segments_below_start()
        if recovered:
            # Make what recovery accepted durable, then move the recovery point past it.
            for seg in recovered:
                if seg.fd >= 0:
                    self._fs.fdatasync(seg.fd)
                    seg.persist_indexes(self._fs, sync=True)
        self._flushed = end
        if recovered or recovery_point != end:
            self._write_recovery_point(end)
        if report.bytes_truncated:
            log.warning(
                "%s: cut a torn tail of %d bytes at %s byte %d (%s); %d later segment(s) "
                "deleted", self._dir, report.bytes_truncated, *(report.truncated_at or ("?", 0)),
                report.reason, report.segments_deleted)
        return True

    def _recover_segment(self, i: int, report: RecoveryReport,
                         found_epochs: list[tuple[int, int]]) -> None:
        segs = self._segments
        seg = segs[i]
        file_size = seg.size
        seg.reset_state()
        if i > 0:
            seg.next_offset = max(seg.base_offset, segs[i - 1].next_offset)
        scan = seg.scan_into_state(0, file_size, verify_crc=True,
                                   index_interval_bytes=self._config.index_interval_bytes,
                                   epochs=found_epochs, exact=self._strict_offsets)
        report.segments_recovered += 1
        if scan.stop_reason is not None:
            bad = scan.stop_position
            later = self._find_later_valid_batch(i, bad)
            if later is not None:
                raise CorruptLogError(
                    seg.log_path, bad,
                    f"{scan.stop_reason}; a valid batch follows at {later[0]} byte {later[1]}, "
                    "so this is mid-log corruption, not a torn tail (nothing was cut)")
            cut = (file_size - bad) + sum(s.size for s in segs[i + 1:])
            seg.truncate_to_position(bad)
            for later_seg in segs[i + 1:]:
                later_seg.delete_files()
            report.segments_deleted += len(segs) - i - 1
            del segs[i + 1:]
            self._fs.fdatasync(seg.fd)
            self._fs.fsync_dir(self._dir)
            report.bytes_truncated += cut
            report.truncated_at = (seg.log_path, bad)
            report.reason = scan.stop_reason
        seg.persist_indexes(self._fs, sync=False, rewrite=True)
        seg.rolling_timestamp = seg._first_batch_max_timestamp()

    def _find_later_valid_batch(self, i: int, bad: int) -> tuple[str, int] | None:
        seg = self._segments[i]
        pos = find_valid_batch(seg.fd, bad + 1, os.fstat(seg.fd).st_size)
        if pos is not None:
            return seg.log_path, pos
        for later in self._segments[i + 1:]:
            pos = find_valid_batch(later.fd, 0, later.size)
            if pos is not None:
                return later.log_path, pos
        return None

    @property
    def _strict_offsets(self) -> bool:
        # Without compaction every batch starts exactly where the previous one ended. A log
        # compacted once keeps its gaps after cleanup.policy goes back to delete: the cleaner's
        # checkpoint file marks it.
        if "compact" in self._config.cleanup_policy:
            return False
        if self._compacted_before is None:
            self._compacted_before = os.path.exists(
                os.path.join(self._dir, _cleaner.CLEANER_CHECKPOINT_FILE))
        return not self._compacted_before

    def _check_segment_order(self) -> None:
        segs = self._segments
        for prev, cur in itertools.pairwise(segs):
            if prev.next_offset > cur.base_offset:
                raise CorruptLogError(
                    cur.log_path, 0,
                    f"segment starts at offset {cur.base_offset} but the previous one ends at "
                    f"{prev.next_offset - 1}")

    def _load_readonly(self) -> None:
        self._segments = []
        bases = self._list_bases()
        if not bases:
            raise FileNotFoundError(f"no segments in {self._dir}")
        for n, base in enumerate(bases):
            seg = Segment.open_existing(self._dir, base, readonly=True)
            self._segments.append(seg)
            self._load_reader_segment(seg, last=n == len(bases) - 1)
        self._bases = bases
        self._check_segment_order()
        self._refresh_log_start()
        self._flushed = self.end_offset

    def _load_reader_segment(self, seg: Segment, *, last: bool) -> None:
        interval = self._config.index_interval_bytes
        if not last and seg.load_trusted(interval):
            return
        # The active segment's index files lag (written on roll/close): rebuild in memory.
        seg.reset_state()
        file_size = seg.size
        scan = seg.scan_into_state(0, file_size, verify_crc=True, index_interval_bytes=interval,
                                   exact=self._strict_offsets)
        if scan.stop_reason is not None and not last:
            raise CorruptLogError(seg.log_path, scan.stop_position, scan.stop_reason)
        seg.rolling_timestamp = seg._first_batch_max_timestamp()

    def _refresh_log_start(self) -> None:
        start = self._read_int_checkpoint(os.path.join(self._dir, LOG_START_FILE)) or 0
        self._log_start = min(max(start, self._segments[0].base_offset), self.end_offset)

    def _list_bases(self) -> list[int]:
        bases = []
        for name in os.listdir(self._dir):
            base = parse_segment_name(name)
            if base is not None:
                bases.append(base)
        return sorted(bases)

    def _remove_strays(self) -> None:
        """Leftovers of interrupted operations: checkpoint temp files, orphan indexes."""
        names = set(os.listdir(self._dir))
        removed = False
        for name in names:
            stem, _, suffix = name.partition(".")
            orphan = ("." + suffix in (INDEX_SUFFIX, TIMEINDEX_SUFFIX)
                      and stem + LOG_SUFFIX not in names and len(stem) == 20)
            if name.endswith(".tmp") or orphan:
                os.unlink(os.path.join(self._dir, name))
                removed = True
        if removed:
            self._fs.fsync_dir(self._dir)

    def _read_int_checkpoint(self, path: str) -> int | None:
        try:
            entries = read_checkpoint(path, 1)
        except CheckpointError as exc:
            log.warning("%s: %s; ignoring it (falling back to full recovery)", path, exc)
            return None
        return entries[0][0] if entries else None

    # --- properties -----------------------------------------------------------------------------

    @property
    def path(self) -> str:
        return self._dir

    @property
    def config(self) -> LogConfig:
        return self._config

    def update_config(self, config: LogConfig) -> None:
        """New settings apply to the next append/roll/retention run."""
        self._config = config

    @property
    def readonly(self) -> bool:
        return self._readonly

    @property
    def start_offset(self) -> int:
        return self._log_start

    @property
    def end_offset(self) -> int:
        return self._segments[-1].next_offset

    @property
    def flushed_offset(self) -> int:
        """The recovery point: every offset below it is on stable storage."""
        return self._flushed

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self._segments)

    @property
    def offline_reason(self) -> str | None:
        return self._offline

    @property
    def closed(self) -> bool:
        return self._closed

    def segment_base_offsets(self) -> list[int]:
        return list(self._bases)

    def segment_paths(self) -> list[str]:
        return [s.log_path for s in self._segments]

    # --- appending ------------------------------------------------------------------------------

    def append_batch(self, batch: bytearray | memoryview | bytes, *,
                     leader_epoch: int = -1,
                     validated: BatchHeader | None = None) -> AppendInfo:
        """Validate, assign offsets, write (and with flush.policy=always, fdatasync).

        ``validated``: the header :func:`~seriatim.records.validate_batch` returned for exactly
        these bytes with this log's ``max_message_bytes``; the log then trusts it and skips its
        own validation (a second CRC-32C pass over every byte: the Produce handler validates
        each batch once). The caller owns that promise; without it the batch is validated here.
        ``batch`` is only read and written during the call (the header is rewritten in place
        when it is writable); no reference to it or to its bytes is kept afterwards.
        """
        self._check_writable()
        cfg = self._config
        hdr = (validate_batch(batch, 0, max_bytes=cfg.max_message_bytes)
               if validated is None else validated)
        size = hdr.size
        if size != len(batch):
            raise InvalidRecordError(
                f"expected exactly one record batch of {size} bytes, got {len(batch)} bytes")
        view = memoryview(batch)
        marker = control_marker(view) if hdr.is_control and hdr.producer_id >= 0 else None
        with self._lock:
            self._check_writable()
            if hdr.producer_id >= 0:
                if marker is not None:
                    self._producers.check_marker(hdr.producer_id, hdr.producer_epoch, marker[1])
                else:
                    dup = self._producers.check(hdr.producer_id, hdr.producer_epoch,
                                                hdr.base_sequence, hdr.last_offset_delta,
                                                hdr.is_transactional)
                    if dup is not None:
                        return AppendInfo(dup.first_offset, dup.last_offset, -1, -1, 0,
                                          duplicate=True)
            seg = self._segments[-1]
            base = seg.next_offset
            last = base + hdr.last_offset_delta
            now_ms = self._clock.wall_ms()
            msg_ts = now_ms if cfg.log_append_time else hdr.max_timestamp
            if seg.size and self._should_roll(seg, size, last, msg_ts, now_ms):
                seg = self._roll(base)
            head = bytearray(view[:HEADER_BYTES])
            _I64.pack_into(head, 0, base)
            epoch = hdr.partition_leader_epoch
            if leader_epoch >= 0:
                _I32.pack_into(head, 12, leader_epoch)
                epoch = leader_epoch
            max_ts, append_time = hdr.max_timestamp, -1
            if cfg.log_append_time:
                max_ts = append_time = now_ms
                _I16.pack_into(head, 21, hdr.attributes | _ATTR_LOG_APPEND_TIME)
                _I64.pack_into(head, 35, now_ms)
                crc = crc32c.crc32c(view[HEADER_BYTES:size], crc32c.crc32c(head[21:]))
                _U32.pack_into(head, 17, crc)
            position = seg.size
            try:
                writev_all(self._fs, seg.fd, (head, view[HEADER_BYTES:size]))
            except OSError as exc:
                if exc.errno in _NO_SPACE:
                    self._refuse_append(seg, position, exc)  # raises; the log stays online
                self._fail(f"write to {seg.log_path} failed", exc, truncate=(seg, position))
            if not view.readonly:
                view[:HEADER_BYTES] = head  # the contract: offsets are rewritten in place
            seg.on_append(position, size, last, max_ts, cfg.index_interval_bytes)
            self._unflushed_messages += hdr.record_count
            if hdr.producer_id >= 0:
                self._apply_producer_batch(seg, hdr.producer_id, hdr.producer_epoch,
                                           hdr.base_sequence, base, last, max_ts,
                                           hdr.is_transactional, marker)
            if epoch >= 0 and epoch > self._epochs.latest_epoch:
                self._assign_epoch_locked(epoch, base)
            if cfg.flush_policy == "always" and not self._group_commit:
                try:
                    self._fs.fdatasync(seg.fd)
                except OSError as exc:
                    self._fail(f"fdatasync of {seg.log_path} failed", exc)
                self._flushed = last + 1
                self._unflushed_messages = 0
        return AppendInfo(base, last, append_time, max_ts, size)

    def _should_roll(self, seg: Segment, size: int, last_offset: int, message_ts: int,
                     now_ms: int) -> bool:
        # segment.ms compares record time with record time, as Kafka's timeWaitedForRoll does,
        # so old timestamps in a fresh segment do not roll on every append.
        cfg = self._config
        if seg.rolling_timestamp is not None and seg.rolling_timestamp >= 0:
            waited = message_ts - seg.rolling_timestamp
        else:
            waited = now_ms - seg.created_ms
        return (
            seg.size + size > cfg.segment_bytes
            or waited > cfg.segment_ms
            or seg.index_full(cfg.segment_index_bytes)
            or last_offset - seg.base_offset > MAX_RELATIVE_OFFSET
        )

    def roll(self) -> None:
        """Start a new segment at the end offset (if the active one holds anything)."""
        with self._lock:
            self._check_writable()
            if self._segments[-1].size:
                self._roll(self.end_offset)

    def _roll(self, base: int) -> Segment:
        old = self._segments[-1]
        always = self._config.flush_policy == "always"
        try:
            old.seal_time_index()
            old.persist_indexes(self._fs, sync=always)
            old.index_synced = always
            # Producer state as of the new segment's base (its aborts file synced first).
            self._txn.sync(old.base_offset)
            self._txn.close_file(old.base_offset)
            self._producers.write_snapshot(self._dir, base, self._fs)
            new = Segment.create(self._dir, base)
            new.created_ms = self._clock.wall_ms()
            self._add_segment(new)
            self._fs.fsync_dir(self._dir)
            if always:
                self._write_recovery_point(base)
        except OSError as exc:
            self._fail(f"rolling to a new segment at offset {base} failed", exc)
        log.debug("%s: rolled to segment %s", self._dir, segment_name(base))
        return new

    def _add_segment(self, seg: Segment) -> None:
        self._segments.append(seg)
        self._bases.append(seg.base_offset)

    # --- durability ---------------------------------------------------------------------------

    def flush(self) -> None:
        """fsync everything appended before this call; then advance ``flushed_offset``.

        Thread-safe: may run in an executor thread while another thread appends.
        """
        ticket = self.flush_begin()
        if ticket is not None:
            self.flush_end(ticket, data_synced=False)

    def flush_begin(self) -> FlushTicket | None:
        """Phase one of a flush: what an fsync must cover now (None: nothing to do).

        Holds the flush lock (segments stay open) until :meth:`flush_end`, which must follow.
        Split so that a caller flushing many logs can make all their data durable with one
        ``syncfs`` between the two phases (``flush_end(ticket, data_synced=True)``).
        """
        self._flush_lock.acquire()
        try:
            with self._lock:
                self._check_usable()
                if self._readonly:
                    ticket = None
                else:
                    flushed = self._flushed
                    todo = [s for s in self._segments
                            if s.next_offset > flushed or not s.index_synced]
                    ticket = FlushTicket(self.end_offset, self._segments[-1], todo,
                                         self._unflushed_messages) if todo else None
        except BaseException:
            self._flush_lock.release()
            raise
        if ticket is None:
            self._flush_lock.release()
        return ticket

    def flush_end(self, ticket: FlushTicket, *, data_synced: bool) -> None:
        """Phase two: fdatasync the ticket's segments (unless ``data_synced``: the caller made
        every byte written before :meth:`flush_begin` durable, e.g. by ``syncfs`` of this log's
        file system), persist rolled segments' indexes, advance ``flushed_offset``."""
        try:
            active = ticket.active
            try:
                for seg in ticket.todo:
                    if not data_synced:
                        self._fs.fdatasync(seg.fd)
                    if seg is not active and not seg.index_synced:
                        seg.persist_indexes(self._fs, sync=True)
                        seg.index_synced = True
            except OSError as exc:
                with self._lock:
                    self._fail("flush failed", exc)
            with self._lock:
                self._flushed = max(self._flushed, ticket.target)
                self._unflushed_messages = max(
                    0, self._unflushed_messages - ticket.pending_messages)
                self._last_flush_ms = self._clock.wall_ms()
            if any(seg is not active for seg in ticket.todo):
                # A rolled segment is now durable with its indexes: checkpoint past it.
                self._write_recovery_point(ticket.target)
        finally:
            self._flush_lock.release()

    def flush_due(self, now_ms: int | None = None) -> bool:
        """True when flush.messages or flush.ms says the 'interval' policy should flush."""
        if self._unflushed_messages == 0:
            return False
        cfg = self._config
        now = self._clock.wall_ms() if now_ms is None else now_ms
        return (self._unflushed_messages >= cfg.flush_messages
                or now - self._last_flush_ms >= cfg.flush_interval_ms)

    def _write_recovery_point(self, offset: int) -> None:
        try:
            write_checkpoint(os.path.join(self._dir, RECOVERY_POINT_FILE), [(offset,)],
                             self._fs)
        except OSError as exc:
            self._fail("writing the recovery-point checkpoint failed", exc)

    def _fail(self, what: str, exc: OSError,
              truncate: tuple[Segment, int] | None = None) -> None:
        """Fail-stop: the log goes offline and never acknowledges again."""
        reason = f"{what}: {exc}"
        if self._offline is None:
            self._offline = reason
            log.error("%s: going offline: %s", self._dir, reason)
        if truncate is not None:
            seg, position = truncate
            try:
                os.ftruncate(seg.fd, position)  # don't leave a half batch for readers
            except OSError:
                pass
        raise StorageError(f"{self._dir} is offline: {reason}") from exc

    def _refuse_append(self, seg: Segment, position: int, exc: OSError) -> None:
        """A write that failed for lack of space (ENOSPC, EDQUOT) refuses only this append.

        Nothing of it was acknowledged and no fsync failed, so there is no fsyncgate hazard:
        cut the partial batch away (the segment and its in-memory state then agree again, and
        the next append lands at ``position``) and raise StorageError with the log online, so
        appends succeed again once space is freed. If the cut itself fails, fail-stop.
        """
        try:
            os.ftruncate(seg.fd, position)
        except OSError as cut_exc:
            self._fail(f"write to {seg.log_path} failed ({exc}); cutting it back failed",
                       cut_exc)
        log.warning("%s: append refused, no space left: %s", self._dir, exc)
        raise StorageError(f"{self._dir}: append refused: {exc}") from exc

    def _check_usable(self) -> None:
        if self._closed:
            raise LogClosedError(f"{self._dir}: log is closed")
        if self._offline is not None:
            raise StorageError(f"{self._dir} is offline: {self._offline}")

    def _check_writable(self) -> None:
        self._check_usable()
        if self._readonly:
            raise StorageError(f"{self._dir}: log is open readonly")

    # --- reading -----------------------------------------------------------------------------

    def _check_range(self, offset: int) -> None:
        if not self._log_start <= offset <= self.end_offset:
            raise OffsetOutOfRangeError(
                f"offset {offset} is outside the log's range "
                f"[{self._log_start}, {self.end_offset}]")

    def _segment_index(self, offset: int) -> int:
        return max(0, bisect_right(self._bases, offset) - 1)

    def read(self, offset: int, max_bytes: int, *, max_offset: int | None = None,
             min_one_batch: bool = True) -> ReadResult:
        """Whole batches from the one containing ``offset``, at most ``max_bytes`` of them
        (but at least one batch with ``min_one_batch``), excluding batches whose base offset is
        >= ``max_offset``. ``offset == end_offset`` gives an empty result."""
        with self._lock:
            self._check_usable()
            self._check_range(offset)
            if offset == self.end_offset or (max_offset is not None and offset >= max_offset):
                return ReadResult()
            segs = self._segments
            idx = self._segment_index(offset)
            first = segs[idx].find_batch(offset)
            while first is None and idx + 1 < len(segs):
                idx += 1
                first = segs[idx].find_batch(offset)
            if first is None:
                return ReadResult()
            slices: list[FileSlice] = []
            remaining = max_bytes
            pos = first.position
            while idx < len(segs):
                seg = segs[idx]
                end, stop = self._slice_end(seg, pos, remaining, max_offset,
                                            min_one=min_one_batch and not slices)
                if end > pos:
                    slices.append(FileSlice(seg.log_path, seg.fd, pos, end - pos))
                    remaining -= end - pos
                if stop or end < seg.size or remaining <= 0:
                    break
                idx += 1
                pos = 0
            return ReadResult(tuple(slices))

    def _slice_end(self, seg: Segment, pos: int, budget: int, max_offset: int | None, *,
                   min_one: bool) -> tuple[int, bool]:
        """End of the run of whole batches starting at ``pos`` that fits ``budget``."""
        limit, stop = seg.size, False
        if max_offset is not None and max_offset < seg.next_offset:
            stop = True
            mb = seg.find_batch(max_offset)
            if mb is not None:
                limit = mb.position if mb.base_offset >= max_offset else mb.position + mb.size
        hard = min(limit, pos + max(budget, 0))
        # Index entries are batch starts: jump to the last one that fits, then walk headers.
        end = max(pos, seg.index.last_position_at_most(hard)) if hard > pos else pos
        scan = Scan(seg.fd, end, limit, verify_crc=False, block=LOOKUP_BLOCK_BYTES)
        for b in scan:
            if b.position + b.size > hard:
                if min_one and end == pos:
                    end = b.position + b.size
                stop = True
                break
            end = b.position + b.size
        else:
            if scan.stop_reason is not None:
                raise CorruptLogError(seg.log_path, scan.stop_position, scan.stop_reason)
        return end, stop

    def read_records(self, offset: int | None = None, *, max_offset: int | None = None
                     ) -> Iterator[Record]:
        """Decode records from ``offset`` (default: the start) up to the end as of this call
        (or ``max_offset``, exclusive)."""
        with self._lock:
            self._check_usable()
            start = self._log_start if offset is None else offset
            self._check_range(start)
            stop = self.end_offset if max_offset is None else min(max_offset, self.end_offset)
            segs = list(self._segments)
            idx = self._segment_index(start)
        return self._iter_records(segs, idx, start, stop)

    def _iter_records(self, segs: list[Segment], idx: int, start: int, stop: int
                      ) -> Iterator[Record]:
        if start >= stop:
            return
        first = True
        for seg in segs[idx:]:
            if seg.base_offset >= stop:
                return
            pos = 0
            if first:
                b = seg.find_batch(start)
                if b is None:
                    continue
                pos = b.position
                first = False
            end = seg.size
            while pos < end:
                buf = os.pread(seg.fd, min(READ_CHUNK_BYTES, end - pos), pos)
                p, n = 0, len(buf)
                while p + HEADER_BYTES <= n:
                    base, size, lod = _BASE_LEN.unpack_from(buf, p)
                    size += 12
                    if p + size > n:
                        break
                    records = iter_records(buf[p : p + size])
                    if base >= start and base + lod < stop:
                        yield from records  # the common case: no per-record filtering
                    else:
                        yield from _filter(records, start, stop)
                        if base + lod >= stop:
                            return
                    p += size
                if p == 0:
                    # A batch larger than the chunk: read it whole.
                    head = os.pread(seg.fd, 12, pos)
                    size = int.from_bytes(head[8:12], "big") + 12
                    buf = pread_exact(seg.fd, size, pos)
                    if len(buf) < size or size < HEADER_BYTES:
                        raise CorruptLogError(seg.log_path, pos, "batch extends past the file")
                    yield from _filter(iter_records(buf), start, stop)
                    p = size
                pos += p

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record with timestamp >= ``timestamp_ms``.

        Kafka's special values: -2 earliest, -1 latest, -3 the max timestamp.
        """
        with self._lock:
            self._check_usable()
            if timestamp_ms == EARLIEST_TIMESTAMP:
                return self._log_start, -1
            if timestamp_ms == LATEST_TIMESTAMP:
                return self.end_offset, -1
            if timestamp_ms == MAX_TIMESTAMP:
                ts, off = self.max_timestamp()
                return None if off < 0 else (off, ts)
            segs = list(self._segments)
        for seg in segs:
            if seg.max_timestamp < timestamp_ms or seg.next_offset <= self._log_start:
                continue
            rel = seg.time_index.lookup(timestamp_ms)
            start = max(seg.base_offset + max(rel, 0), self._log_start)
            b = seg.find_batch(start)
            if b is None:
                continue
            scan = Scan(seg.fd, b.position, seg.size, verify_crc=False)
            for info in scan:
                if info.max_timestamp < timestamp_ms:
                    continue
                batch = pread_exact(seg.fd, info.size, info.position)
                for rec in iter_records(batch):
                    if rec.offset >= self._log_start and rec.timestamp_ms >= timestamp_ms:
                        return rec.offset, rec.timestamp_ms
        return None

    def max_timestamp(self) -> tuple[int, int]:
        """(largest timestamp, offset of the batch carrying it); (-1, -1) if empty."""
        best = (-1, -1)
        for seg in self._segments:
            if seg.max_timestamp > best[0] and seg.next_offset > self._log_start:
                best = (seg.max_timestamp, seg.offset_of_max_timestamp)
        return best

    # --- producer state -----------------------------------------------------------------------

    def _apply_producer_batch(self, seg: Segment, pid: int, epoch: int, first_seq: int,
                              first: int, last: int, timestamp_ms: int, transactional: bool,
                              marker: tuple[bool, int] | None) -> None:
        ps = self._producers
        if marker is None:
            ps.apply(pid, epoch, first_seq, first, last, timestamp_ms, transactional)
            return
        done = ps.apply_marker(pid, epoch, marker[1], marker[0], last, timestamp_ms)
        if done is not None and done.aborted:
            lso = ps.first_unstable_offset()
            try:
                self._txn.append(AbortedTxn(pid, done.first_offset, done.last_offset,
                                            last + 1 if lso is None else lso), seg.base_offset)
            except OSError as exc:
                self._fail("writing the transaction index failed", exc)

    def _load_producer_state(self) -> None:
        """Newest snapshot at or below the end, then replay every batch header after it."""
        end = self.end_offset
        snap_offset, ps = load_latest_snapshot(self._dir, end, self._fs)
        self._producers = ps
        self._txn.close()
        self._txn = TxnIndex(self._dir, self._fs)
        start = max(snap_offset, self._log_start)
        self._txn.load(start)
        self._txn.drop_below(self._log_start)
        replayed = 0
        for seg in self._segments[self._segment_index(start):]:
            first = seg.find_batch(start) if seg.base_offset < start else None
            pos = first.position if first is not None else 0
            for b in Scan(seg.fd, pos, seg.size, verify_crc=False):
                if b.producer_id < 0 or b.last_offset < start:
                    continue
                marker = None
                if b.attributes & _ATTR_CONTROL:
                    marker = control_marker(pread_exact(seg.fd, b.size, b.position))
                    if marker is None:
                        continue
                self._apply_producer_batch(seg, b.producer_id, b.producer_epoch,
                                           b.base_sequence, b.base_offset, b.last_offset,
                                           b.max_timestamp, bool(b.attributes & _ATTR_TXN),
                                           marker)
                replayed += 1
        if replayed:
            log.info("%s: producer state: snapshot at %d + %d batch(es) replayed", self._dir,
                     snap_offset, replayed)

    def first_unstable_offset(self) -> int | None:
        """First offset of the oldest open transaction (None: no transaction is open)."""
        with self._lock:
            return self._producers.first_unstable_offset()

    def aborted_transactions(self, fetch_offset: int, upper_offset: int) -> list[AbortedTxn]:
        """Aborted transactions overlapping ``[fetch_offset, upper_offset)``."""
        with self._lock:
            return self._txn.collect(fetch_offset, upper_offset)

    def expire_producers(self, now_ms: int, expiration_ms: int) -> int:
        """Forget idle producers (see ProducerStateManager.expire); the next producer-state
        snapshot no longer holds them. Returns how many were removed."""
        with self._lock:
            self._check_usable()
            return len(self._producers.expire(now_ms, expiration_ms))

    def producer_entries(self) -> list[ProducerEntry]:
        """Every producer this partition knows (DescribeProducers); copies."""
        with self._lock:
            return [ProducerEntry(e.producer_id, e.epoch, list(e.batches), e.coordinator_epoch,
                                  e.txn_first_offset, e.last_timestamp_ms)
                    for e in self._producers.producers.values()]

    def iter_batches(self, offset: int | None = None) -> Iterator[tuple[BatchInfo, bytes]]:
        """Whole batches (header and bytes) from the one containing ``offset`` to the end as
        of this call (coordinators replaying an internal topic need the batch headers)."""
        with self._lock:
            self._check_usable()
            start = self._log_start if offset is None else offset
            self._check_range(start)
            segs = list(self._segments)
            stop = self.end_offset
            idx = self._segment_index(start)
        for seg in segs[idx:]:
            first = seg.find_batch(start) if seg.base_offset < start else None
            pos = first.position if first is not None else 0
            for b in Scan(seg.fd, pos, seg.size, verify_crc=False):
                if b.base_offset >= stop:
                    return
                if b.last_offset >= start:
                    yield b, pread_exact(seg.fd, b.size, b.position)

    # --- leader epochs ------------------------------------------------------------------------

    def assign_epoch(self, epoch: int, start_offset: int) -> None:
        with self._lock:
            self._check_writable()
            self._assign_epoch_locked(epoch, start_offset)

    def _assign_epoch_locked(self, epoch: int, start_offset: int) -> None:
        try:
            self._epochs.assign(epoch, start_offset)
        except OSError as exc:
            self._fail("writing the leader-epoch checkpoint failed", exc)

    def epoch_entries(self) -> list[tuple[int, int]]:
        return self._epochs.entries()

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        return self._epochs.end_offset_for(epoch, self.end_offset)

    # --- truncation, deletion, retention ---------------------------------------------------------

    def truncate_to(self, offset: int) -> None:
        """Remove every batch whose last offset is >= ``offset`` (a batch is never split, so the
        new end is the base offset of the first removed batch)."""
        with self._flush_lock, self._lock:
            self._check_writable()
            if offset >= self.end_offset:
                return
            try:
                self._truncate_locked(offset)
            except OSError as exc:
                self._fail(f"truncating to offset {offset} failed", exc)

    def _truncate_locked(self, offset: int) -> None:
        segs = self._segments
        if offset <= segs[0].base_offset:
            for seg in segs:
                seg.delete_files()
            segs.clear()
            self._bases.clear()
            self._add_segment(Segment.create(self._dir, offset))
            self._fs.fsync_dir(self._dir)
            self._log_start = offset
            self._write_log_start()
        else:
            idx = self._segment_index(offset)
            doomed = segs[idx + 1:]
            for seg in doomed:
                seg.delete_files()
            del segs[idx + 1:]
            del self._bases[idx + 1:]
            seg = segs[idx]
            b = seg.find_batch(offset)
            if b is not None:
                seg.truncate_to_position(b.position)
                end = b.position
                seg.reset_state()
                seg.scan_into_state(0, end, verify_crc=False,
                                    index_interval_bytes=self._config.index_interval_bytes)
                seg.rolling_timestamp = seg._first_batch_max_timestamp()
                seg.persist_indexes(self._fs, sync=True, rewrite=True)
                self._fs.fdatasync(seg.fd)
            if doomed:
                self._fs.fsync_dir(self._dir)
            if self._log_start > self.end_offset:
                # The cut batch straddled the log start: the (empty) log now starts at its end.
                self._log_start = self.end_offset
                self._write_log_start()
        end = self.end_offset
        self._epochs.truncate_from_end(end)
        self._txn.truncate_from(end)
        self._load_producer_state()
        self._flushed = min(self._flushed, end)
        self._write_recovery_point(min(self._flushed, end))
        first_dirty = _cleaner.read_first_dirty(self._dir)
        if first_dirty is not None and first_dirty > offset:
            # Re-appended offsets must count as dirty (Kafka resets its cleaner checkpoint).
            _cleaner.write_first_dirty(self._dir, offset, self._fs)

    def delete_records_before(self, offset: int) -> int:
        """Advance the log start offset to ``offset`` and delete segments wholly below it."""
        with self._flush_lock, self._lock:
            self._check_writable()
            if offset > self.end_offset or offset < 0:
                raise OffsetOutOfRangeError(
                    f"cannot delete records before {offset}: the log ends at {self.end_offset}")
            if offset > self._log_start:
                self._log_start = offset
                try:
                    self._write_log_start()
                    self._epochs.truncate_from_start(offset)
                    self._delete_segments_below_start()
                    self._txn.drop_below(self._log_start)
                except OSError as exc:
                    self._fail("deleting records failed", exc)
            return self._log_start

    def _write_log_start(self) -> None:
        write_checkpoint(os.path.join(self._dir, LOG_START_FILE), [(self._log_start,)],
                         self._fs)

    def _delete_segments_below_start(self) -> int:
        segs = self._segments
        n = 0
        while len(segs) > 1 and segs[1].base_offset <= self._log_start:
            segs.pop(0).delete_files()
            self._bases.pop(0)
            n += 1
        if n:
            self._fs.fsync_dir(self._dir)
        return n

    def apply_retention(self, now_ms: int | None = None) -> int:
        """Delete whole segments past retention.ms / retention.bytes (never the active one),
        if cleanup.policy includes ``delete``.

        Returns the number of segments deleted.
        """
        now = self._clock.wall_ms() if now_ms is None else now_ms
        cfg = self._config
        with self._flush_lock, self._lock:
            self._check_writable()
            if not cfg.delete:
                return 0  # cleanup.policy=compact: the cleaner alone removes records
            segs = self._segments
            doomed = 0
            if cfg.retention_ms >= 0:
                while doomed < len(segs) - 1 and now - self._segment_time(segs[doomed]) \
                        > cfg.retention_ms:
                    doomed += 1
            if cfg.retention_bytes >= 0:
                diff = sum(s.size for s in segs[doomed:]) - cfg.retention_bytes
                while doomed < len(segs) - 1 and diff - segs[doomed].size >= 0:
                    diff -= segs[doomed].size
                    doomed += 1
            if not doomed:
                return 0
            try:
                new_start = max(self._log_start, segs[doomed].base_offset)
                if new_start != self._log_start:
                    self._log_start = new_start
                    self._write_log_start()
                for _ in range(doomed):
                    segs.pop(0).delete_files()
                    self._bases.pop(0)
                self._fs.fsync_dir(self._dir)
                self._epochs.truncate_from_start(self._log_start)
                self._txn.drop_below(self._log_start)
            except OSError as exc:
                self._fail("retention failed", exc)
            log.info("%s: retention deleted %d segment(s); log starts at %d", self._dir,
                     doomed, self._log_start)
            return doomed

    @staticmethod
    def _segment_time(seg: Segment) -> int:
        if seg.max_timestamp >= 0:
            return seg.max_timestamp
        return int(os.stat(seg.log_path).st_mtime * 1000)

    # --- readers ------------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Readonly logs: pick up what the writer appended since; True if the end moved."""
        if not self._readonly:
            return False
        with self._lock:
            self._check_usable()
            before = self.end_offset
            while True:
                seg = self._segments[-1]
                size = os.fstat(seg.fd).st_size
                if size < seg.size:
                    self._reload_readonly()
                    break
                if size > seg.size:
                    seg.scan_into_state(seg.size, size, verify_crc=True,
                                        index_interval_bytes=self._config.index_interval_bytes,
                                        exact=self._strict_offsets)
                nxt = os.path.join(self._dir, segment_name(seg.next_offset) + LOG_SUFFIX)
                if seg.size != size or seg.size == 0 or not os.path.exists(nxt):
                    break
                if os.fstat(seg.fd).st_size != size:
                    continue  # the writer finished the old segment after our fstat
                new = Segment.open_existing(self._dir, seg.next_offset, readonly=True)
                self._add_segment(new)
                self._load_reader_segment(new, last=True)
            self._refresh_log_start()
            while len(self._segments) > 1 and self._segments[1].base_offset <= self._log_start:
                self._segments.pop(0).close()
                self._bases.pop(0)
            self._flushed = self.end_offset
            return self.end_offset != before

    def _reload_readonly(self) -> None:
        self._close_segments()
        self._load_readonly()

    # --- compaction (the algorithm and swap protocol: seriatim.storage.cleaner) ---------------

    def compact(self, now_ms: int | None = None, *, force: bool = True,
                cleaner: _cleaner.Cleaner | None = None,
                fault: _cleaner.FaultHook | None = None) -> _cleaner.CleanStats:
        """Run the log cleaner on this log now (a no-op unless cleanup.policy has compact).

        ``force`` ignores min.cleanable.dirty.ratio (min.compaction.lag.ms still applies);
        ``now_ms`` is the clock for delete.retention.ms and the compaction lags; ``fault`` is
        called after each swap step (tests: crash injection).
        """
        self._check_writable()
        return (cleaner or _cleaner.Cleaner()).clean(self, now_ms, force=force, fault=fault)

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def fs(self) -> FileOps:
        return self._fs

    @contextmanager
    def cleaning(self) -> Iterator[None]:
        """Held by the cleaner for a whole clean (one cleaner per log at a time)."""
        with self._cleaning_lock:
            self.check_cleaning_allowed()
            yield

    def check_cleaning_allowed(self) -> None:
        """Raise CleaningAborted once close() asked the cleaner to stop."""
        if self._cleaner_abort.is_set() or self._closed or self._offline is not None:
            raise _cleaner.CleaningAborted(f"{self._dir} is closing or offline")

    def cleaner_view(self) -> tuple[list[Segment], int]:
        """(a copy of the segment list, the log start offset), taken under the lock."""
        with self._lock:
            self._check_writable()
            return list(self._segments), self._log_start

    def open_for_cleaning(self, count: int) -> list[_cleaner._Source]:
        """The first ``count`` segments with private descriptors (never the active one)."""
        with self._lock:
            self._check_writable()
            segs = self._segments[: min(count, len(self._segments) - 1)]
            return [_cleaner.source_of(seg) for seg in segs]

    def replace_segments(self, old: list[Segment], sizes: list[int], new: Segment,
                         fault: _cleaner.FaultHook | None = None) -> bool:
        """Swap ``new`` (written as ``<base>.log.cleaned``) in for the run ``old``.

        False (nothing changed) if ``old`` is no longer a run of sealed segments of this log
        with the sizes the cleaner read. An OSError during the swap takes the log offline:
        reopening completes or undoes it (cleaner.recover_cleaner_files).
        """
        with self._flush_lock, self._lock:
            if self._closed or self._offline is not None or self._cleaner_abort.is_set():
                return False
            segs = self._segments
            try:
                i = next(k for k, seg in enumerate(segs) if seg is old[0])
            except StopIteration:
                return False
            run = segs[i : i + len(old)]
            if i + len(old) >= len(segs) or len(run) != len(old) \
                    or any(a is not b for a, b in zip(run, old, strict=True)) \
                    or any(seg.size != n for seg, n in zip(old, sizes, strict=True)):
                return False
            try:
                _cleaner.swap_in(self._dir, old, new, self._fs, fault)
            except OSError as exc:
                self._fail(f"swapping in the cleaned segment {new.log_path} failed", exc)
            segs[i : i + len(old)] = [new]
            self._bases[i : i + len(old)] = [new.base_offset]
            self._check_segment_order()
            now = self._clock.monotonic_ns() // 1_000_000
            keep: list[tuple[int, Segment]] = []
            for when, seg in self._retired:
                if now - when > limits.LOG_CLEANER_RETIRED_FD_GRACE_MS:
                    seg.close()
                else:
                    keep.append((when, seg))
            self._retired = keep + [(now, seg) for seg in old]
            return True

    # --- closing ------------------------------------------------------------------------------

    def close(self) -> None:
        """Flush everything, checkpoint, write the clean-shutdown marker last, unlock."""
        self._cleaner_abort.set()  # a running cleaner stops at its next batch
        with self._cleaning_lock, self._flush_lock, self._lock:
            if self._closed:
                return
            try:
                if not self._readonly and self._offline is None:
                    self._close_cleanly()
            finally:
                self._closed = True
                self._txn.close()
                self._close_segments()
                for _, seg in self._retired:
                    seg.close()
                self._retired.clear()
                if self._dir_lock is not None:
                    self._dir_lock.release()
                    self._dir_lock = None

    def _close_cleanly(self) -> None:
        try:
            for seg in self._segments:
                if seg.next_offset > self._flushed or not seg.index_synced or \
                        seg.index.written < len(seg.index) or \
                        seg.time_index.written < len(seg.time_index):
                    self._fs.fdatasync(seg.fd)
                    seg.persist_indexes(self._fs, sync=True)
            end = self.end_offset
            self._flushed = end
            self._txn.sync()
            self._producers.write_snapshot(self._dir, end, self._fs)
            write_checkpoint(os.path.join(self._dir, RECOVERY_POINT_FILE), [(end,)], self._fs)
            write_checkpoint(os.path.join(self._dir, CLEAN_SHUTDOWN_FILE), [(end,)], self._fs)
        except OSError as exc:
            self._offline = f"close failed: {exc}"
            log.error("%s: close failed, no clean-shutdown marker: %s", self._dir, exc)
            raise StorageError(f"{self._dir}: close failed: {exc}") from exc

    def _close_segments(self) -> None:
        for seg in self._segments:
            seg.close()

    def __enter__(self) -> PartitionLog:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"PartitionLog({self._dir!r}, start={self._log_start}, "
                f"end={self.end_offset if self._segments else '?'})")
