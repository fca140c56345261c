"""Compaction meets transactions (Kafka's cleaner rules): a batch of an aborted transaction never
supersedes an earlier committed value and is removed; an open transaction's section is not
cleaned until it ends; markers are kept."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from seriatim.records import Record, build_batch, iter_batches, iter_records
from seriatim.storage import LogConfig, PartitionLog

COMPACTED = LogConfig(cleanup_policy="compact", segment_bytes=200, flush_policy="never")


def _plain(key: bytes, value: bytes) -> bytearray:
    return bytearray(build_batch([(key, value)]))


def _txn(pid: int, seq: int, key: bytes, value: bytes) -> bytearray:
    return bytearray(build_batch([(key, value)], producer_id=pid, producer_epoch=0,
                                 base_sequence=seq, transactional=True))


def _marker(pid: int, commit: bool) -> bytearray:
    key = struct.pack(">hh", 0, 1 if commit else 0)
    value = struct.pack(">hi", 0, 0)
    return bytearray(build_batch([(key, value)], producer_id=pid, producer_epoch=0,
                                 base_sequence=-1, transactional=True, control=True))


def _committed_view(log: PartitionLog) -> dict[bytes, bytes | None]:
    """What a read_committed reader ends with: latest value per key, aborted data skipped."""
    aborted = log.aborted_transactions(0, log.end_offset)
    ranges = {(a.producer_id, a.first_offset, a.last_offset) for a in aborted}
    view: dict[bytes, bytes | None] = {}
    data = log.read(log.start_offset, 1 << 30).bytes()
    for rec in _records_not_aborted(data, ranges):
        assert rec.key is not None
        view[rec.key] = rec.value
    return view


def _records_not_aborted(data: bytes, ranges: set[tuple[int, int, int]]) -> Iterator[Record]:
    for pos, h in iter_batches(data):
        if h.is_control:
            continue
        if h.is_transactional and any(p == h.producer_id and f <= h.base_offset <= last
                                      for p, f, last in ranges):
            continue
        yield from iter_records(data[pos:pos + h.size])


def _fill(log: PartitionLog, n: int, prefix: bytes) -> None:
    for i in range(n):  # filler keys so that segments roll and the section is cleanable
        log.append_batch(_plain(prefix + b"%d" % i, b"x"))


def test_an_aborted_write_never_replaces_a_committed_value(tmp_path: Path) -> None:
    with PartitionLog.open(tmp_path / "p", COMPACTED) as log:
        log.append_batch(_plain(b"k", b"committed"))
        log.append_batch(_txn(7, 0, b"k", b"aborted"))
        log.append_batch(_marker(7, commit=False))
        _fill(log, 20, b"f")
        before = _committed_view(log)
        assert before[b"k"] == b"committed"
        stats = log.compact()
        assert stats.records_removed >= 1
        after = _committed_view(log)
        assert after == before  # the committed value survived compaction
        values = [r.value for r in log.read_records() if r.key == b"k"]
        assert values == [b"committed"]  # and the aborted record is gone


def test_an_open_transaction_is_not_cleaned_until_it_ends(tmp_path: Path) -> None:
    with PartitionLog.open(tmp_path / "p", COMPACTED) as log:
        log.append_batch(_plain(b"k", b"old"))
        open_at = log.end_offset
        log.append_batch(_txn(9, 0, b"k", b"pending"))
        _fill(log, 20, b"g")
        assert log.first_unstable_offset() == open_at
        log.compact()
        # Nothing at or after the open transaction was cleaned, and "old" is not superseded
        # by the pending write (which may still abort).
        keys = [(r.offset, r.value) for r in log.read_records() if r.key == b"k"]
        assert keys == [(0, b"old"), (open_at, b"pending")]
        log.append_batch(_marker(9, commit=True))
        _fill(log, 20, b"h")
        log.compact()
        keys = [(r.offset, r.value) for r in log.read_records() if r.key == b"k"]
        assert keys == [(open_at, b"pending")]  # committed now: it supersedes "old"
