"""Sparse offset and time indexes of one segment: in memory, persisted as Kafka lays them out.

Theory of operation
-------------------
* ``.index`` holds 8-byte entries ``(relative offset int32, position int32)``, big-endian: the
  *last* offset of a batch (relative to the segment's base offset) and the byte position where
  that batch starts. An entry is added when more than ``index.interval.bytes`` were appended
  since the previous one (Kafka's rule), so a lookup lands at most about one interval before
  the wanted batch and a short scan of batch headers finishes the job.
* ``.timeindex`` holds 12-byte entries ``(timestamp int64, relative offset int32)``: the largest
  timestamp seen so far in the segment and the offset of the batch that carried it; added at the
  same moments, only when the timestamp grew, plus a final entry when the segment is rolled or
  closed.

The indexes live in memory (``array`` columns, binary-searched with ``bisect``) and are written
to their files by appending the not-yet-written tail: on roll, on flush of an inactive segment
and on close. Nothing is memory-mapped (a writable mmap raises SIGBUS after a truncate or on
ENOSPC). Index files are caches: on load they are sanity-checked (size a multiple of the entry
size, strictly increasing offsets, non-decreasing positions/timestamps, everything inside the
segment) and rebuilt from the ``.log`` when they fail.

Invariants: ``rel`` strictly increasing; ``pos`` non-decreasing; ``ts`` non-decreasing;
``written <= len(entries)``.
"""

from __future__ import annotations

import os
import struct
from array import array
from bisect import bisect_right
from collections.abc import Callable

from seriatim.storage.fileops import FileOps, write_all

OFFSET_ENTRY = struct.Struct(">ii")
TIME_ENTRY = struct.Struct(">qi")
OFFSET_ENTRY_BYTES = OFFSET_ENTRY.size  # 8
TIME_ENTRY_BYTES = TIME_ENTRY.size  # 12


class IndexCorrupt(ValueError):
    """An index file failed a sanity check; the caller rebuilds it from the log."""


class OffsetIndex:
    __slots__ = ("path", "pos", "rel", "written")

    def __init__(self, path: str) -> None:
        self.path = path
        self.rel = array("i")
        self.pos = array("i")
        self.written = 0  # entries already in the file

    def __len__(self) -> int:
        return len(self.rel)

    def append(self, rel_offset: int, position: int) -> None:
        self.rel.append(rel_offset)
        self.pos.append(position)

    def lookup(self, rel_offset: int) -> tuple[int, int]:
        """The last entry with relative offset <= ``rel_offset``, or (-1, 0) if none."""
        i = bisect_right(self.rel, rel_offset) - 1
        if i < 0:
            return -1, 0
        return self.rel[i], self.pos[i]

    def last_position_at_most(self, position: int) -> int:
        """The largest indexed batch position <= ``position`` (0 if none)."""
        i = bisect_right(self.pos, position) - 1
        return self.pos[i] if i >= 0 else 0

    def last(self) -> tuple[int, int] | None:
        return (self.rel[-1], self.pos[-1]) if self.rel else None

    def truncate_to_position(self, position: int) -> None:
        """Drop entries for batches starting at or after ``position``."""
        keep = bisect_right(self.pos, position - 1) if position > 0 else 0
        del self.rel[keep:]
        del self.pos[keep:]
        self.written = min(self.written, keep)

    def clear(self) -> None:
        del self.rel[:]
        del self.pos[:]
        self.written = 0

    def load(self, log_size: int) -> None:
        """Read and sanity-check the file; raise :class:`IndexCorrupt` if it is damaged."""
        self.clear()
        data = _read_file(self.path)
        if len(data) % OFFSET_ENTRY_BYTES:
            raise IndexCorrupt(f"{self.path}: size {len(data)} is not a multiple of 8")
        prev_rel, prev_pos = -1, 0
        for rel, pos in OFFSET_ENTRY.iter_unpack(data):
            if rel <= prev_rel or pos < prev_pos or pos >= log_size:
                raise IndexCorrupt(f"{self.path}: entry ({rel}, {pos}) out of order or range")
            self.rel.append(rel)
            self.pos.append(pos)
            prev_rel, prev_pos = rel, pos
        self.written = len(self.rel)

    def persist(self, ops: FileOps, *, sync: bool, rewrite: bool = False) -> None:
        """Append the unwritten entries to the file (or rewrite it whole)."""
        _persist(self.path, ops, sync, rewrite, self.written, len(self.rel), self._encode)
        self.written = len(self.rel)

    def _encode(self, start: int, stop: int) -> bytes:
        pack = OFFSET_ENTRY.pack
        return b"".join(pack(self.rel[i], self.pos[i]) for i in range(start, stop))


class TimeIndex:
    __slots__ = ("path", "rel", "ts", "written")

    def __init__(self, path: str) -> None:
        self.path = path
        self.ts = array("q")
        self.rel = array("i")
        self.written = 0

    def __len__(self) -> int:
        return len(self.ts)

    def maybe_append(self, timestamp: int, rel_offset: int) -> None:
        """Add an entry only when the timestamp grew (Kafka's ``maybeAppend``)."""
        if not self.ts or timestamp > self.ts[-1]:
            if self.rel and rel_offset < self.rel[-1]:
                return
            self.ts.append(timestamp)
            self.rel.append(rel_offset)

    def lookup(self, timestamp: int) -> int:
        """Relative offset of the last entry with ts <= ``timestamp``; -1 if none."""
        i = bisect_right(self.ts, timestamp) - 1
        return self.rel[i] if i >= 0 else -1

    def last(self) -> tuple[int, int] | None:
        return (self.ts[-1], self.rel[-1]) if self.ts else None

    def clear(self) -> None:
        del self.ts[:]
        del self.rel[:]
        self.written = 0

    def load(self, max_rel_offset: int) -> None:
        self.clear()
        data = _read_file(self.path)
        if len(data) % TIME_ENTRY_BYTES:
            raise IndexCorrupt(f"{self.path}: size {len(data)} is not a multiple of 12")
        prev_ts, prev_rel = -(2**63), -1
        for ts, rel in TIME_ENTRY.iter_unpack(data):
            if ts < prev_ts or rel < prev_rel or rel < 0 or rel > max_rel_offset:
                raise IndexCorrupt(f"{self.path}: entry ({ts}, {rel}) out of order or range")
            self.ts.append(ts)
            self.rel.append(rel)
            prev_ts, prev_rel = ts, rel
        self.written = len(self.ts)

    def persist(self, ops: FileOps, *, sync: bool, rewrite: bool = False) -> None:
        _persist(self.path, ops, sync, rewrite, self.written, len(self.ts), self._encode)
        self.written = len(self.ts)

    def _encode(self, start: int, stop: int) -> bytes:
        pack = TIME_ENTRY.pack
        return b"".join(pack(self.ts[i], self.rel[i]) for i in range(start, stop))


def _read_file(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise IndexCorrupt(f"{path}: missing") from None


def _persist(path: str, ops: FileOps, sync: bool, rewrite: bool, written: int, count: int,
             encode: Callable[[int, int], bytes]) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if rewrite else os.O_APPEND)
    start = 0 if rewrite else written
    fd = os.open(path, flags, 0o644)
    try:
        if not rewrite:
            # The file may hold entries we dropped in memory (truncation): cut them first.
            entry = OFFSET_ENTRY_BYTES if path.endswith(".index") else TIME_ENTRY_BYTES
            if os.fstat(fd).st_size != written * entry:
                os.ftruncate(fd, written * entry)
        if count > start:
            write_all(ops, fd, encode(start, count))
        if sync:
            ops.fsync(fd)
    finally:
        os.close(fd)
