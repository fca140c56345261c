"""The aborted-transaction index of one partition (Kafka's TransactionIndex, ``.txnindex``).

Theory of operation
-------------------
A read_committed consumer must skip the data of aborted transactions. Fetch therefore returns,
with the records, the aborted transactions that overlap them: ``(producer_id, first_offset)``
of each; the client drops that producer's batches from ``first_offset`` until it reads the
producer's ABORT marker. This module keeps every aborted transaction of the partition as an
:class:`AbortedTxn` ``(producer_id, first_offset, last_offset = the marker's offset,
last_stable_offset)``, in marker order (so sorted by ``last_offset``).

On disk an entry is appended (34 bytes, Kafka's layout; byte table in docs/formats.md) to
``<base>.txnindex`` of the segment that received the ABORT marker. The files are a cache of
the log: entries at or beyond the producer-state snapshot the log recovers from are dropped at
load and rebuilt by the replay that follows, and a segment's file is fsynced before a snapshot
past it is written (at roll), so the files plus the replay always give every abort. A file
whose segment was merged away by compaction stays, and is still read: its entries are still
true. Files whose entries all lie below the log start offset are deleted.

Invariants: ``entries`` is sorted by ``last_offset``; ``first_offset <= last_offset``.
"""

from __future__ import annotations

import bisect
import os
import struct
from dataclasses import dataclass

from seriatim.errors import invariant
from seriatim.storage.fileops import REAL_FILE_OPS, FileOps, write_all

TXNINDEX_SUFFIX = ".txnindex"
ENTRY = struct.Struct(">hqqqq")  # version, producer id, first, last, last stable offset
ENTRY_VERSION = 0


@dataclass(frozen=True, slots=True)
class AbortedTxn:
    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int


def txnindex_name(base_offset: int) -> str:
    return f"{base_offset:020d}{TXNINDEX_SUFFIX}"


def parse_txnindex_name(name: str) -> int | None:
    stem, _, suffix = name.partition(".")
    if "." + suffix != TXNINDEX_SUFFIX or len(stem) != 20 or not stem.isdigit():
        return None
    return int(stem)


class TxnIndex:
    """Aborted transactions of one partition, in memory and in per-segment files."""

    def __init__(self, directory: str, fs: FileOps = REAL_FILE_OPS) -> None:
        self._dir = directory
        self._fs = fs
        self.entries: list[AbortedTxn] = []
        self._lasts: list[int] = []  # last_offset of each entry (bisect)
        self._files: dict[int, int] = {}  # file base -> largest last_offset in it
        self._fds: dict[int, int] = {}

    def load(self, below: int) -> None:
        """Read every ``.txnindex`` file, keeping entries with ``last_offset < below`` (the
        replay from the snapshot at ``below`` recreates the rest); files are cut to match."""
        found: list[tuple[int, AbortedTxn]] = []
        for name in os.listdir(self._dir):
            base = parse_txnindex_name(name)
            if base is None:
                continue
            path = os.path.join(self._dir, name)
            with open(path, "rb") as f:
                data = f.read()
            keep = 0
            for pos in range(0, len(data) - ENTRY.size + 1, ENTRY.size):
                version, pid, first, last, lso = ENTRY.unpack_from(data, pos)
                if version != ENTRY_VERSION or first > last or last >= below:
                    break
                found.append((base, AbortedTxn(pid, first, last, lso)))
                keep = pos + ENTRY.size
            if keep != len(data):
                with open(path, "rb+") as f:
                    f.truncate(keep)
            self._files[base] = max((t.last_offset for b, t in found if b == base), default=-1)
        found.sort(key=lambda bt: bt[1].last_offset)
        self.entries = [t for _, t in found]
        self._lasts = [t.last_offset for t in self.entries]

    def append(self, txn: AbortedTxn, segment_base: int) -> None:
        invariant(not self._lasts or txn.last_offset > self._lasts[-1],
                  f"aborted transaction at {txn.last_offset} is not after {self._lasts[-1:]}")
        fd = self._fds.get(segment_base)
        if fd is None:
            path = os.path.join(self._dir, txnindex_name(segment_base))
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self._fds[segment_base] = fd
        write_all(self._fs, fd, ENTRY.pack(ENTRY_VERSION, txn.producer_id, txn.first_offset,
                                           txn.last_offset, txn.last_stable_offset))
        self.entries.append(txn)
        self._lasts.append(txn.last_offset)
        self._files[segment_base] = txn.last_offset

    def sync(self, segment_base: int | None = None) -> None:
        for base, fd in list(self._fds.items()):
            if segment_base is None or base == segment_base:
                self._fs.fdatasync(fd)

    def close_file(self, segment_base: int) -> None:
        fd = self._fds.pop(segment_base, None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def collect(self, fetch_offset: int, upper_offset: int) -> list[AbortedTxn]:
        """Aborted transactions overlapping ``[fetch_offset, upper_offset)``."""
        i = bisect.bisect_left(self._lasts, fetch_offset)
        return [t for t in self.entries[i:] if t.first_offset < upper_offset]

    def truncate_from(self, offset: int) -> None:
        """Forget aborts whose marker is at or after ``offset`` (the log was truncated)."""
        i = bisect.bisect_left(self._lasts, offset)
        if i == len(self.entries):
            return
        del self.entries[i:]
        del self._lasts[i:]
        self.close()
        for base in list(self._files):
            path = os.path.join(self._dir, txnindex_name(base))
            with open(path, "rb") as f:
                data = f.read()
            n = 0
            for pos in range(0, len(data) - ENTRY.size + 1, ENTRY.size):
                if ENTRY.unpack_from(data, pos)[3] >= offset:
                    break
                n = pos + ENTRY.size
            if n != len(data):
                with open(path, "rb+") as f:
                    f.truncate(n)
            self._files[base] = min(self._files[base], offset - 1)

    def drop_below(self, log_start: int) -> None:
        """Delete entries and files wholly below the log start offset."""
        i = bisect.bisect_left(self._lasts, log_start)
        if i:
            del self.entries[:i]
            del self._lasts[:i]
        for base, largest in list(self._files.items()):
            if largest < log_start and base < log_start:
                self.close_file(base)
                try:
                    os.unlink(os.path.join(self._dir, txnindex_name(base)))
                except FileNotFoundError:
                    pass
                del self._files[base]
