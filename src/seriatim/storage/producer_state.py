"""Producer state of one partition: idempotence and transactions (Kafka's ProducerStateManager).

Theory of operation
-------------------
For every producer id that wrote to the partition, :class:`ProducerStateManager` keeps a
:class:`ProducerEntry`: its current epoch, the sequence ranges and offsets of its last
:data:`MAX_BATCHES` (5) batches, the coordinator epoch of the last transaction marker, and the
first offset of its ongoing transaction (if any). It is *derived state*: everything in it comes
from the batch headers (and control records) of the log, so it can always be rebuilt by
replaying them; snapshots only make that replay short.

Appending a batch from a producer (``producer_id >= 0``) takes two steps, both under the log's
lock: :meth:`check` decides (raises :class:`ProducerStateError` with Kafka's error code, or
returns the :class:`Duplicate` offsets of an identical earlier batch, or None = append it), and
after the write :meth:`apply` / :meth:`apply_marker` record it. Recovery calls the same two
``apply`` methods for every batch after the latest snapshot -- live appends and recovery share
one path, so the state after a restart equals the state before it.

Rules (ProducerAppendInfo, Kafka 3.x):

* an epoch below the producer's current epoch: INVALID_PRODUCER_EPOCH;
* same epoch, and ``(first_seq, last_seq)`` equals one of the last 5 batches: a duplicate,
  answered with the original offsets and not appended;
* same epoch: ``first_seq`` must be ``last_seq + 1`` (wrapping from 2^31-1 to 0), else
  OUT_OF_ORDER_SEQUENCE_NUMBER;
* a higher epoch must start at sequence 0 (unless the producer had no epoch);
* an unknown producer id (never seen, or its batches all gone) may start at any sequence
  (KIP-360: Kafka no longer answers UNKNOWN_PRODUCER_ID to Produce);
* a batch without a sequence (``base_sequence == -1``, written by a coordinator, e.g. the
  transactional offset commits on ``__consumer_offsets``) skips the sequence checks;
* a non-transactional batch from a producer with an ongoing transaction: INVALID_TXN_STATE.

Transactions: the first transactional batch of a producer opens its transaction at that batch's
first offset; the producer's control batch (COMMIT/ABORT marker) closes it and returns a
:class:`CompletedTxn`. The *first unstable offset* is the smallest open first offset; the last
stable offset (LSO) of the partition is ``min(high watermark, first unstable offset)``.

Snapshots (``<offset>.snapshot``, 20 digits, byte table in docs/formats.md) hold the state
after every batch below ``offset``. They are written at segment roll and at close, atomically
(temp file, fsync, rename, directory fsync); a snapshot beyond the end of the recovered log
(its data was a torn tail) is deleted, and the newest remaining one is the replay start.

Invariants: an entry holds at most 5 batches, all of its current epoch, in increasing offset
order; ``ongoing`` maps exactly the entries whose ``txn_first_offset >= 0``.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import NamedTuple

import crc32c

from seriatim.errors import CorruptRecordError, ErrorCode, InvalidRecordError, KafkaError, invariant
from seriatim.records import iter_records
from seriatim.storage.fileops import REAL_FILE_OPS, FileOps, write_all

MAX_BATCHES = 5  # Kafka's ProducerStateEntry.NUM_BATCHES_TO_RETAIN
INT32_MAX = 2**31 - 1
SNAPSHOT_SUFFIX = ".snapshot"
SNAPSHOT_VERSION = 1
SNAPSHOTS_KEPT = 2
MAX_SNAPSHOT_BYTES = 256 * 1024 * 1024

CONTROL_ABORT = 0
CONTROL_COMMIT = 1

_HEAD = struct.Struct(">hIi")  # version, crc32c(of what follows the crc), entry count
_ENTRY = struct.Struct(">qhiqqb")  # pid, epoch, coordinator epoch, txn first offset, ts, n
_BATCH = struct.Struct(">iiqq")  # first seq, last seq, first offset, last offset


class ProducerStateError(KafkaError):
    """A producer's batch breaks the sequence/epoch rules; ``code`` is Kafka's answer."""


class Duplicate(NamedTuple):
    """The offsets an identical earlier batch was stored at."""

    first_offset: int
    last_offset: int


@dataclass(frozen=True, slots=True)
class BatchMeta:
    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int


@dataclass(frozen=True, slots=True)
class CompletedTxn:
    producer_id: int
    first_offset: int
    last_offset: int  # the marker's offset
    aborted: bool


@dataclass(slots=True)
class ProducerEntry:
    producer_id: int
    epoch: int = -1
    batches: list[BatchMeta] = field(default_factory=list)
    coordinator_epoch: int = -1
    txn_first_offset: int = -1  # -1: no ongoing transaction in this partition
    last_timestamp_ms: int = -1

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else -1

    @property
    def last_offset(self) -> int:
        return self.batches[-1].last_offset if self.batches else -1

    def find(self, first_seq: int, last_seq: int) -> BatchMeta | None:
        for b in self.batches:
            if b.first_seq == first_seq and b.last_seq == last_seq:
                return b
        return None

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch = epoch
            self.batches.clear()


def last_sequence(first_seq: int, last_offset_delta: int) -> int:
    """Kafka's ``DefaultRecordBatch.incrementSequence``: sequences wrap from 2^31-1 to 0."""
    if first_seq > INT32_MAX - last_offset_delta:
        return last_offset_delta - (INT32_MAX - first_seq) - 1
    return first_seq + last_offset_delta


def in_sequence(last_seq: int, next_seq: int) -> bool:
    return next_seq == last_seq + 1 or (last_seq == INT32_MAX and next_seq == 0)


def snapshot_name(offset: int) -> str:
    return f"{offset:020d}{SNAPSHOT_SUFFIX}"


def parse_snapshot_name(name: str) -> int | None:
    stem, _, suffix = name.partition(".")
    if "." + suffix != SNAPSHOT_SUFFIX or len(stem) != 20 or not stem.isdigit():
        return None
    return int(stem)


class ProducerStateManager:
    """Producer entries of one partition; one owner (the log, under its lock)."""

    def __init__(self) -> None:
        self.producers: dict[int, ProducerEntry] = {}
        self.ongoing: dict[int, int] = {}  # producer id -> first offset of its open txn

    # --- deciding -----------------------------------------------------------------------------

    def check(self, producer_id: int, epoch: int, first_seq: int, last_offset_delta: int,
              transactional: bool) -> Duplicate | None:
        """Validate a data batch; a :class:`Duplicate` means: do not append, answer these."""
        entry = self.producers.get(producer_id)
        if entry is None or entry.epoch < 0:
            return None  # unknown producer: any sequence (KIP-360)
        if epoch < entry.epoch:
            raise ProducerStateError(
                f"producer {producer_id}: epoch {epoch} is older than the current "
                f"epoch {entry.epoch}", ErrorCode.INVALID_PRODUCER_EPOCH)
        if entry.txn_first_offset >= 0 and not transactional and epoch == entry.epoch:
            raise ProducerStateError(
                f"producer {producer_id} has an open transaction; expected a transactional "
                "batch", ErrorCode.INVALID_TXN_STATE)
        if first_seq < 0:
            return None  # written by a coordinator: no sequence
        last_seq = last_sequence(first_seq, last_offset_delta)
        if epoch == entry.epoch:
            dup = entry.find(first_seq, last_seq)
            if dup is not None:
                return Duplicate(dup.first_offset, dup.last_offset)
            if not in_sequence(entry.last_seq, first_seq):  # no batches: last_seq is -1
                raise ProducerStateError(
                    f"producer {producer_id} epoch {epoch}: sequence {first_seq} does not "
                    f"follow {entry.last_seq}", ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER)
        elif first_seq != 0:
            raise ProducerStateError(
                f"producer {producer_id}: a new epoch {epoch} must start at sequence 0, "
                f"got {first_seq}", ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER)
        return None

    def check_marker(self, producer_id: int, epoch: int, coordinator_epoch: int) -> None:
        entry = self.producers.get(producer_id)
        if entry is None:
            return
        if epoch < entry.epoch:
            raise ProducerStateError(
                f"marker for producer {producer_id}: epoch {epoch} < {entry.epoch}",
                ErrorCode.INVALID_PRODUCER_EPOCH)
        if coordinator_epoch < entry.coordinator_epoch:
            raise ProducerStateError(
                f"marker for producer {producer_id}: coordinator epoch {coordinator_epoch} < "
                f"{entry.coordinator_epoch}", ErrorCode.TRANSACTION_COORDINATOR_FENCED)

    # --- applying (live appends and recovery) --------------------------------------------------

    def apply(self, producer_id: int, epoch: int, first_seq: int, first_offset: int,
              last_offset: int, timestamp_ms: int, transactional: bool) -> None:
        """Record an appended data batch."""
        entry = self._entry(producer_id)
        entry.set_epoch(epoch)
        if first_seq >= 0:
            last_seq = last_sequence(first_seq, last_offset - first_offset)
            entry.batches.append(BatchMeta(first_seq, last_seq, first_offset, last_offset))
            if len(entry.batches) > MAX_BATCHES:
                del entry.batches[0]
        entry.last_timestamp_ms = max(entry.last_timestamp_ms, timestamp_ms)
        if transactional and entry.txn_first_offset < 0:
            entry.txn_first_offset = first_offset
            self.ongoing[producer_id] = first_offset

    def apply_marker(self, producer_id: int, epoch: int, coordinator_epoch: int,
                     commit: bool, offset: int, timestamp_ms: int) -> CompletedTxn | None:
        """Record an appended COMMIT/ABORT marker; the transaction it closed, if any."""
        entry = self._entry(producer_id)
        entry.set_epoch(epoch)
        entry.coordinator_epoch = max(entry.coordinator_epoch, coordinator_epoch)
        entry.last_timestamp_ms = max(entry.last_timestamp_ms, timestamp_ms)
        first = entry.txn_first_offset
        entry.txn_first_offset = -1
        self.ongoing.pop(producer_id, None)
        if first < 0:
            return None
        return CompletedTxn(producer_id, first, offset, not commit)

    def _entry(self, producer_id: int) -> ProducerEntry:
        entry = self.producers.get(producer_id)
        if entry is None:
            entry = self.producers[producer_id] = ProducerEntry(producer_id)
        return entry

    def expire(self, now_ms: int, expiration_ms: int) -> list[int]:
        """Forget producers idle for ``expiration_ms`` (Kafka's ``producer.id.expiration.ms``,
        KIP-854): no batch or marker newer than that, and no open transaction. Returns the
        producer ids removed. A producer that comes back after this is unknown again: its next
        batch is accepted at any sequence (KIP-360), as in Kafka; only its retries of batches
        written before the expiry are no longer recognised as duplicates."""
        gone = [pid for pid, e in self.producers.items()
                if e.txn_first_offset < 0 and pid not in self.ongoing
                and e.last_timestamp_ms >= 0 and now_ms - e.last_timestamp_ms >= expiration_ms]
        for pid in gone:
            del self.producers[pid]
        return gone

    # --- queries ------------------------------------------------------------------------------

    def first_unstable_offset(self) -> int | None:
        return min(self.ongoing.values()) if self.ongoing else None

    def check_invariants(self) -> None:
        for pid, entry in self.producers.items():
            invariant(entry.producer_id == pid, f"entry of {pid} names {entry.producer_id}")
            invariant(len(entry.batches) <= MAX_BATCHES, f"producer {pid}: too many batches")
            offsets = [b.last_offset for b in entry.batches]
            invariant(offsets == sorted(offsets), f"producer {pid}: batches out of order")
            if entry.txn_first_offset >= 0:
                invariant(self.ongoing.get(pid) == entry.txn_first_offset,
                          f"producer {pid}: open transaction missing from ongoing")
        invariant(all(self.producers[p].txn_first_offset == o for p, o in self.ongoing.items()),
                  "ongoing names a producer without an open transaction")

    # --- snapshots ----------------------------------------------------------------------------

    def encode(self) -> bytes:
        body = bytearray()
        for pid in sorted(self.producers):
            e = self.producers[pid]
            body += _ENTRY.pack(pid, e.epoch, e.coordinator_epoch, e.txn_first_offset,
                                e.last_timestamp_ms, len(e.batches))
            for b in e.batches:
                body += _BATCH.pack(b.first_seq, b.last_seq, b.first_offset, b.last_offset)
        count_and_body = struct.pack(">i", len(self.producers)) + bytes(body)
        return struct.pack(">hI", SNAPSHOT_VERSION, crc32c.crc32c(count_and_body)) \
            + count_and_body

    @classmethod
    def decode(cls, data: bytes) -> ProducerStateManager:
        """Parse a snapshot; raises ValueError when it is damaged (the caller falls back)."""
        if len(data) < _HEAD.size:
            raise ValueError("snapshot shorter than its header")
        version, crc, count = _HEAD.unpack_from(data, 0)
        if version != SNAPSHOT_VERSION:
            raise ValueError(f"unknown snapshot version {version}")
        if crc32c.crc32c(data[6:]) != crc:
            raise ValueError("snapshot CRC mismatch")
        out = cls()
        pos = _HEAD.size
        for _ in range(count):
            if pos + _ENTRY.size > len(data):
                raise ValueError("snapshot truncated in an entry")
            pid, epoch, coord, txn_first, ts, n = _ENTRY.unpack_from(data, pos)
            pos += _ENTRY.size
            if not 0 <= n <= MAX_BATCHES or pos + n * _BATCH.size > len(data):
                raise ValueError(f"snapshot entry of {pid}: bad batch count {n}")
            batches = [BatchMeta(*_BATCH.unpack_from(data, pos + i * _BATCH.size))
                       for i in range(n)]
            pos += n * _BATCH.size
            out.producers[pid] = ProducerEntry(pid, epoch, batches, coord, txn_first, ts)
            if txn_first >= 0:
                out.ongoing[pid] = txn_first
        if pos != len(data):
            raise ValueError("trailing bytes after the last snapshot entry")
        return out

    def write_snapshot(self, directory: str, offset: int, fs: FileOps = REAL_FILE_OPS) -> None:
        """Write ``<offset>.snapshot`` atomically, then keep only the newest few."""
        path = os.path.join(directory, snapshot_name(offset))
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            write_all(fs, fd, self.encode())
            fs.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        for old in list_snapshots(directory)[:-SNAPSHOTS_KEPT]:
            os.unlink(os.path.join(directory, snapshot_name(old)))
        fs.fsync_dir(directory)


def list_snapshots(directory: str) -> list[int]:
    found = [parse_snapshot_name(n) for n in os.listdir(directory)]
    return sorted(o for o in found if o is not None)


def load_latest_snapshot(directory: str, end_offset: int, fs: FileOps = REAL_FILE_OPS
                         ) -> tuple[int, ProducerStateManager]:
    """The newest readable snapshot at or below ``end_offset`` and its offset; (0, empty)
    when there is none. Snapshots past the end (a torn tail was cut) are deleted, as are
    damaged ones."""
    removed = False
    best: tuple[int, ProducerStateManager] | None = None
    for offset in reversed(list_snapshots(directory)):
        path = os.path.join(directory, snapshot_name(offset))
        if offset > end_offset or best is not None:
            if offset > end_offset:
                os.unlink(path)
                removed = True
            continue
        try:
            size = os.path.getsize(path)
            if size > MAX_SNAPSHOT_BYTES:
                raise ValueError(f"snapshot of {size} bytes is over the limit")
            with open(path, "rb") as f:
                best = (offset, ProducerStateManager.decode(f.read()))
        except (OSError, ValueError):
            os.unlink(path)
            removed = True
    if removed:
        fs.fsync_dir(directory)
    return best if best is not None else (0, ProducerStateManager())


def control_marker(batch: bytes | memoryview) -> tuple[bool, int] | None:
    """(commit?, coordinator epoch) of a transaction marker batch; None for another kind of
    control record. Key: version int16, type int16 (0 abort, 1 commit); value: version int16,
    coordinator epoch int32."""
    try:
        rec = next(iter_records(batch))
    except (StopIteration, InvalidRecordError, CorruptRecordError):
        return None
    if rec.key is None or len(rec.key) < 4 or rec.value is None or len(rec.value) < 6:
        return None
    kind = int.from_bytes(rec.key[2:4], "big", signed=True)
    if kind not in (0, CONTROL_COMMIT):
        return None
    return kind == CONTROL_COMMIT, int.from_bytes(rec.value[2:6], "big", signed=True)
