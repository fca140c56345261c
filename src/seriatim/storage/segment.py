"""One segment: ``<base offset>.log`` plus its ``.index`` and ``.timeindex``.

Theory of operation
-------------------
A segment owns one ``.log`` file of whole record batches, stored byte for byte as Kafka stores
them, and the two sparse indexes over it (:mod:`seriatim.storage.index`). The file descriptor
stays open for the segment's life: the writer appends with ``os.write`` on it and every reader
uses ``os.pread`` (no mmap: SIGBUS after truncate or ENOSPC). ``size`` and ``next_offset`` are
kept in memory so the append path needs no ``stat``.

Invariants: the file holds exactly ``size`` bytes of whole, valid batches whose offsets are
``>= base_offset`` and strictly increasing, the last ending at ``next_offset - 1``; index
entries point at batch starts below ``size``.

:class:`Scan` walks batch headers through a file in blocks (optionally checking CRCs) and
records where and why it stopped; recovery, index rebuilds, lookups and readers all use it.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import NamedTuple

import crc32c

from seriatim.errors import CorruptLogError
from seriatim.storage.fileops import FileOps
from seriatim.storage.index import IndexCorrupt, OffsetIndex, TimeIndex

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIMEINDEX_SUFFIX = ".timeindex"
HEADER = struct.Struct(">qiibIhiqqqhii")  # the 61-byte v2 batch header
HEADER_BYTES = HEADER.size
LOG_OVERHEAD = 12  # baseOffset + batchLength
MIN_BATCH_LENGTH = HEADER_BYTES - LOG_OVERHEAD  # 49
MAGIC_POSITION = 16
CRC_START = 21
MAX_RELATIVE_OFFSET = 2**31 - 1
SCAN_BLOCK_BYTES = 1 << 20
LOOKUP_BLOCK_BYTES = 16 * 1024


def segment_name(base_offset: int) -> str:
    return f"{base_offset:020d}"


def parse_segment_name(filename: str) -> int | None:
    """Base offset of ``<20 digits>.log``; None for any other name."""
    stem, dot, suffix = filename.partition(".")
    if dot and "." + suffix == LOG_SUFFIX and len(stem) == 20 and stem.isdigit():
        return int(stem)
    return None


class BatchInfo(NamedTuple):
    position: int
    base_offset: int
    last_offset: int
    size: int
    max_timestamp: int
    leader_epoch: int
    attributes: int
    record_count: int
    first_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    crc: int


class Scan:
    """Iterate the batches of ``fd`` in ``[start, end)``; afterwards ``stop_reason`` says why
    the walk ended early (``None`` when it reached ``end`` exactly) at ``stop_position``.

    Checks per batch: header present, batchLength >= 49, the batch fits before ``end``, magic 2,
    ``base_offset >= min_offset`` (offsets increase; with ``exact``, ``base_offset ==
    min_offset``: no gaps, which holds for every log that is not compacted and catches a flipped
    bit in baseOffset, the one header field besides the leader epoch that the CRC does not
    cover), lastOffsetDelta in [0, 2^31), and, with ``verify_crc``, the CRC-32C over
    attributes..end.
    """

    __slots__ = (
        "block",
        "end",
        "exact",
        "fd",
        "min_offset",
        "start",
        "stop_position",
        "stop_reason",
        "verify_crc",
    )

    def __init__(self, fd: int, start: int, end: int, *, verify_crc: bool, min_offset: int = 0,
                 block: int = SCAN_BLOCK_BYTES, exact: bool = False) -> None:
        self.fd = fd
        self.exact = exact
        self.start = start
        self.end = end
        self.verify_crc = verify_crc
        self.min_offset = min_offset
        self.block = block
        self.stop_position = start
        self.stop_reason: str | None = None

    def __iter__(self) -> Iterator[BatchInfo]:
        fd, end, verify = self.fd, self.end, self.verify_crc
        pos = self.start
        buf = b""
        buf_start = pos
        min_offset = self.min_offset
        exact = self.exact
        unpack = HEADER.unpack_from
        while pos < end:
            self.stop_position = pos
            off = pos - buf_start
            if off + HEADER_BYTES > len(buf):
                buf = os.pread(fd, min(max(self.block, HEADER_BYTES), end - pos), pos)
                buf_start, off = pos, 0
                if len(buf) < HEADER_BYTES:
                    self.stop_reason = f"partial batch header ({len(buf)} bytes)"
                    return
            (base, blen, ple, magic, crc, attrs, lod, fts, mts, pid, pep, bseq,
             count) = unpack(buf, off)
            size = blen + LOG_OVERHEAD
            if blen < MIN_BATCH_LENGTH:
                self.stop_reason = f"batch length {blen} below the minimum {MIN_BATCH_LENGTH}"
                return
            if pos + size > end:
                self.stop_reason = f"partial batch: declares {size} bytes, {end - pos} remain"
                return
            if magic != 2:
                self.stop_reason = f"magic byte {magic}, expected 2"
                return
            if base < min_offset or (exact and base != min_offset) \
                    or not 0 <= lod <= MAX_RELATIVE_OFFSET:
                self.stop_reason = (
                    f"unexpected offsets: base offset {base}, last offset delta {lod}, "
                    f"expected base offset {'==' if exact else '>='} {min_offset}"
                )
                return
            if verify:
                if off + size > len(buf):
                    buf = os.pread(fd, min(max(self.block, size), end - pos), pos)
                    buf_start, off = pos, 0
                    if len(buf) < size:
                        self.stop_reason = "file shrank while scanning"
                        return
                actual = crc32c.crc32c(memoryview(buf)[off + CRC_START : off + size])
                if actual != crc:
                    self.stop_reason = (
                        f"CRC-32C mismatch (stored {crc:#010x}, computed {actual:#010x})"
                    )
                    return
            yield BatchInfo(pos, base, base + lod, size, mts, ple, attrs, count, fts, pid, pep,
                            bseq, crc)
            min_offset = base + lod + 1
            pos += size
        self.stop_position = pos


def find_valid_batch(fd: int, start: int, end: int) -> int | None:
    """Position of the first batch in ``[start, end)`` whose header and CRC are valid.

    Used after a bad batch to tell a torn tail (nothing valid follows) from mid-log corruption.
    Every position where a magic byte 2 sits 16 bytes in is a candidate.
    """
    pos = start
    while pos + HEADER_BYTES <= end:
        block = os.pread(fd, min(SCAN_BLOCK_BYTES, end - pos), pos)
        if len(block) < HEADER_BYTES:
            return None
        i = block.find(b"\x02", MAGIC_POSITION)
        while i >= 0 and i - MAGIC_POSITION + HEADER_BYTES <= len(block):
            cand = pos + i - MAGIC_POSITION
            if _valid_at(fd, cand, end):
                return cand
            i = block.find(b"\x02", i + 1)
        # Advance so that candidates near the block's end are looked at again.
        pos += max(1, len(block) - HEADER_BYTES + 1)
    return None


def _valid_at(fd: int, pos: int, end: int) -> bool:
    head = os.pread(fd, HEADER_BYTES, pos)
    if len(head) < HEADER_BYTES:
        return False
    base, blen, _ple, magic, crc, *_ = HEADER.unpack_from(head)
    size = blen + LOG_OVERHEAD
    if magic != 2 or blen < MIN_BATCH_LENGTH or pos + size > end or base < 0:
        return False
    body = os.pread(fd, size - CRC_START, pos + CRC_START)
    return len(body) == size - CRC_START and bool(crc32c.crc32c(body) == crc)


class Segment:
    """The state of one segment; mutated only by its :class:`PartitionLog`."""

    __slots__ = (
        "base_offset",
        "bytes_since_index",
        "created_ms",
        "fd",
        "index",
        "index_synced",
        "log_path",
        "max_timestamp",
        "next_offset",
        "offset_of_max_timestamp",
        "rolling_timestamp",
        "size",
        "time_index",
    )

    def __init__(self, directory: str, base_offset: int, fd: int, size: int) -> None:
        stem = os.path.join(directory, segment_name(base_offset))
        self.base_offset = base_offset
        self.log_path = stem + LOG_SUFFIX
        self.fd = fd
        self.size = size
        self.next_offset = base_offset
        self.max_timestamp = -1
        self.offset_of_max_timestamp = -1
        self.rolling_timestamp: int | None = None  # max timestamp of the first batch
        self.index = OffsetIndex(stem + INDEX_SUFFIX)
        self.time_index = TimeIndex(stem + TIMEINDEX_SUFFIX)
        self.bytes_since_index = 0
        self.index_synced = True
        self.created_ms = 0  # wall time the segment was created or opened (for segment.ms)

    # --- life cycle -------------------------------------------------------------------------

    @classmethod
    def create(cls, directory: str, base_offset: int) -> Segment:
        """New empty segment files (the caller fsyncs the directory)."""
        stem = os.path.join(directory, segment_name(base_offset))
        fd = os.open(stem + LOG_SUFFIX, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC, 0o644)
        for suffix in (INDEX_SUFFIX, TIMEINDEX_SUFFIX):
            os.close(os.open(stem + suffix, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
        return cls(directory, base_offset, fd, 0)

    @classmethod
    def open_existing(cls, directory: str, base_offset: int, *, readonly: bool) -> Segment:
        path = os.path.join(directory, segment_name(base_offset) + LOG_SUFFIX)
        flags = os.O_RDONLY if readonly else os.O_RDWR | os.O_APPEND
        fd = os.open(path, flags)
        return cls(directory, base_offset, fd, os.fstat(fd).st_size)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def delete_files(self) -> None:
        self.close()
        for path in (self.log_path, self.index.path, self.time_index.path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    # --- appending ----------------------------------------------------------------------------

    def on_append(self, position: int, size: int, last_offset: int, max_timestamp: int,
                  index_interval_bytes: int) -> None:
        """Account for a batch written at ``position`` (Kafka's LogSegment.append)."""
        if self.rolling_timestamp is None:
            self.rolling_timestamp = max_timestamp
        if max_timestamp > self.max_timestamp:
            self.max_timestamp = max_timestamp
            self.offset_of_max_timestamp = last_offset
        if self.bytes_since_index > index_interval_bytes:
            base = self.base_offset
            self.index.append(last_offset - base, position)
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp - base)
            self.bytes_since_index = 0
        self.bytes_since_index += size
        self.size = position + size
        self.next_offset = last_offset + 1

    def index_full(self, segment_index_bytes: int) -> bool:
        return (
            len(self.index) >= segment_index_bytes // 8
            or len(self.time_index) >= segment_index_bytes // 12
        )

    def seal_time_index(self) -> None:
        """The final time-index entry Kafka adds when a segment stops being active."""
        if self.max_timestamp >= 0:
            self.time_index.maybe_append(
                self.max_timestamp, self.offset_of_max_timestamp - self.base_offset
            )

    def persist_indexes(self, ops: FileOps, *, sync: bool, rewrite: bool = False) -> None:
        self.index.persist(ops, sync=sync, rewrite=rewrite)
        self.time_index.persist(ops, sync=sync, rewrite=rewrite)

    # --- loading and recovery -------------------------------------------------------------------

    def reset_state(self) -> None:
        self.index.clear()
        self.time_index.clear()
        self.next_offset = self.base_offset
        self.max_timestamp = -1
        self.offset_of_max_timestamp = -1
        self.rolling_timestamp = None
        self.bytes_since_index = 0

    def scan_into_state(self, start: int, end: int, *, verify_crc: bool,
                        index_interval_bytes: int, epochs: list[tuple[int, int]] | None = None,
                        exact: bool = False) -> Scan:
        """Replay the batches in ``[start, end)`` into the in-memory state (no file changes)."""
        scan = Scan(self.fd, start, end, verify_crc=verify_crc,
                    min_offset=max(self.base_offset, self.next_offset), exact=exact)
        for b in scan:
            self.on_append(b.position, b.size, b.last_offset, b.max_timestamp,
                           index_interval_bytes)
            if epochs is not None and b.leader_epoch >= 0:
                epochs.append((b.leader_epoch, b.base_offset))
        self.size = scan.stop_position
        return scan

    def load_trusted(self, index_interval_bytes: int) -> bool:
        """Load the index files and walk the batch headers after the last offset entry.

        For segments known to be flushed (clean shutdown, or below the recovery point). Returns
        False if anything looks wrong (a damaged or stale index, a bad header); the caller then
        recovers the segment fully, which rebuilds both indexes.
        """
        file_size = self.size
        self.reset_state()
        try:
            self.index.load(file_size)
            self.time_index.load(MAX_RELATIVE_OFFSET)
        except IndexCorrupt:
            self.reset_state()
            return False
        last = self.index.last()
        start = last[1] if last is not None else 0
        ts_last = self.time_index.last()
        if ts_last is not None:
            self.max_timestamp = ts_last[0]
            self.offset_of_max_timestamp = self.base_offset + ts_last[1]
        self.size = start  # advanced by every batch the walk accepts
        scan = Scan(self.fd, start, file_size, verify_crc=False, min_offset=self.base_offset)
        first = last is not None
        for b in scan:
            if first and last is not None:
                # The indexed batch itself: it must be the one the entry names.
                first = False
                if b.last_offset != self.base_offset + last[0]:
                    break
                self.next_offset = b.last_offset + 1
                if b.max_timestamp > self.max_timestamp:
                    self.max_timestamp = b.max_timestamp
                    self.offset_of_max_timestamp = b.last_offset
                self.bytes_since_index = b.size
                self.size = b.position + b.size
                continue
            self.on_append(b.position, b.size, b.last_offset, b.max_timestamp,
                           index_interval_bytes)
        bad = (
            scan.stop_reason is not None
            or first
            or self.size != file_size
            or (ts_last is not None and self.base_offset + ts_last[1] >= self.next_offset)
        )
        if bad:
            self.reset_state()
            self.size = file_size
            return False
        self.rolling_timestamp = self._first_batch_max_timestamp()
        return True

    def _first_batch_max_timestamp(self) -> int | None:
        if self.size < HEADER_BYTES:
            return None
        head = os.pread(self.fd, HEADER_BYTES, 0)
        return int(HEADER.unpack_from(head)[8]) if len(head) == HEADER_BYTES else None

    # --- reading ----------------------------------------------------------------------------------

    def find_batch(self, offset: int) -> BatchInfo | None:
        """The first batch whose last offset is >= ``offset`` (None past the end)."""
        _, pos = self.index.lookup(offset - self.base_offset)
        scan = Scan(self.fd, pos, self.size, verify_crc=False, block=LOOKUP_BLOCK_BYTES)
        for b in scan:
            if b.last_offset >= offset:
                return b
        if scan.stop_reason is not None:
            raise CorruptLogError(self.log_path, scan.stop_position, scan.stop_reason)
        return None

    def truncate_to_position(self, position: int) -> None:
        """Cut the file and the offset index at a batch boundary ``position``. The time index
        is not cut here: both callers (recovery, truncate_to) rebuild the segment's indexes by
        rescanning it right after."""
        os.ftruncate(self.fd, position)
        self.size = position
        self.index.truncate_to_position(position)
