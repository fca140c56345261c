"""The replica's lean paths: LogSource yields RecordColumns read with PartitionLog.read (the
same records Log.follow yields), and SqliteMachine.apply_batch takes columns or records
alike."""

from __future__ import annotations

import errno
import threading
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

import seriatim
from seriatim.errors import InvariantError
from seriatim.records import Compression, Record, build_batch
from seriatim.records.columns import RecordColumns
from seriatim.state import LogSource, ReplicaBehindLogError, SqliteMachine, envelope, state_hash

T0 = 1_700_000_000_000


def fill(log: seriatim.Log) -> None:
    """Every shape a log can hold: plain runs, keys, headers, own timestamps, tombstones,
    compressed batches, large values, several segments."""
    log.append_many([(None, b"plain-%d" % i) for i in range(50)], timestamp_ms=T0)
    log.append_many([(b"k%d" % i, b"keyed", [("h", b"v")] if i % 2 else [], T0 + i)
                     for i in range(10)])
    log.append(None, key=b"tombstone")
    log.roll()
    for codec in (Compression.GZIP, Compression.ZSTD):
        log.append_batch(build_batch([(None, b"z%d" % i) for i in range(30)],
                                     compression=codec, now_ms=T0))
    log.append_many([(None, bytes(9000))] * 3)  # 3-byte varint lengths
    log.append_many([(None, b"x" * (i % 200)) for i in range(300)])
    log.roll()
    log.append(b"last")


def drain(source: LogSource, from_offset: int, end: int) -> list[RecordColumns]:
    stop = threading.Event()
    out: list[RecordColumns] = []
    gen = source.batches(from_offset, stop)
    try:
        if from_offset >= end:
            return out
        for batch in gen:
            assert isinstance(batch, RecordColumns)
            out.append(batch)
            assert source.position() == batch.offsets[-1] + 1
            if source.position() >= end:
                break
    finally:
        gen.close()
    return out


@pytest.mark.parametrize("read_bytes", [100, 5000, 1 << 20])
@pytest.mark.parametrize("max_batch", [1, 7, 1000])
def test_log_source_delivers_what_the_log_holds(tmp_path: Path, read_bytes: int,
                                                max_batch: int) -> None:
    with seriatim.open(tmp_path / "log", segment_bytes=20_000) as log:
        fill(log)
        end = log.end_offset
        for from_offset in (0, 3, 55, 61, end - 1, end):
            source = LogSource(log, max_batch_records=max_batch, poll_interval_s=0.001)
            source._read_bytes = read_bytes
            batches = drain(source, from_offset, end)
            got = [r for b in batches for r in b]
            assert got == list(log.read(from_offset))
            assert all(0 < len(b) <= max_batch for b in batches)
            if max_batch == 1000 and read_bytes == 1 << 20 and batches:
                # a batch ends at the log end or at max_batch_records, not at a segment
                assert len(batches) == 1 + (end - from_offset - 1) // 1000


def test_a_readonly_source_sees_new_records(tmp_path: Path) -> None:
    with seriatim.open(tmp_path / "log") as writer, \
            seriatim.open(tmp_path / "log", readonly=True, create=False) as reader:
        writer.append(b"a")
        stop = threading.Event()
        source = LogSource(reader, poll_interval_s=0.001)
        gen = source.batches(0, stop)
        try:
            assert [r.value for r in next(gen)] == [b"a"]
            writer.append_many([(None, b"b"), (None, b"c")])
            assert [r.value for r in next(gen)] == [b"b", b"c"]
        finally:
            gen.close()


def test_records_deleted_before_they_were_read_stop_the_source(tmp_path: Path) -> None:
    with seriatim.open(tmp_path / "log", segment_bytes=2000) as log:
        log.append_many([(None, b"%d" % i) for i in range(10)])
        stop = threading.Event()
        gen = LogSource(log, poll_interval_s=0.001).batches(0, stop)
        try:
            assert len(next(gen)) == 10
            for i in range(40):
                log.append(b"more-%d" % i)
            log.roll()
            log.delete_records_before(30)
            with pytest.raises(ReplicaBehindLogError, match="from 10 were deleted"):
                next(gen)
        finally:
            gen.close()


def test_stop_ends_the_source(tmp_path: Path) -> None:
    with seriatim.open(tmp_path / "log") as log:
        log.append(b"a")
        stop = threading.Event()
        gen = LogSource(log, poll_interval_s=0.001).batches(0, stop)
        assert len(next(gen)) == 1
        threading.Timer(0.05, stop.set).start()
        assert list(gen) == []  # waits, then ends when the event is set


VALUES = [
    envelope.statement("CREATE TABLE t (k PRIMARY KEY, v, at DEFAULT CURRENT_TIMESTAMP)"),
    *[envelope.statement("INSERT INTO t (k, v) VALUES (?, ?)", [i, f"v{i}"]) for i in range(20)],
    envelope.statement("INSERT INTO t (k, v) VALUES (?, ?)", [3, "duplicate"]),
    envelope.statement("INSERT INTO t (k, v) VALUES (?, ?)", [100, True]),
    envelope.statement("INSERT INTO t (k, v) VALUES (?, ?)", [101, b"\x00\x01"]),
    envelope.statement("UPDATE t SET v = :v WHERE k = :k", {"k": 1, "v": "named"}),
    envelope.statement("   "),
    b"not json",
    envelope.upsert("t", {"k": 2}, {"v": "up"}),
    envelope.statement("DELETE FROM t WHERE k = ? RETURNING k", [4]),
    envelope.statement("INSERT INTO t (k, v) VALUES (?, random())", [102]),
]


def test_columns_and_records_apply_alike(tmp_path: Path) -> None:
    records = [Record(i, T0 + 1000 * i, None, v, ()) for i, v in enumerate(VALUES)]
    with SqliteMachine(tmp_path / "records.sqlite") as a, \
            SqliteMachine(tmp_path / "columns.sqlite") as b, \
            SqliteMachine(tmp_path / "single.sqlite") as c:
        a.apply_batch(records)
        b.apply_batch(RecordColumns.from_records(records))
        for r in records:
            c.apply(r)
        assert a.errors() == b.errors() == c.errors()
        assert [(o, k) for o, k, _ in a.errors()] == [
            (21, "sql"), (25, "envelope"), (26, "envelope"), (29, "nondeterministic")]
        assert state_hash(a.path) == state_hash(b.path) == state_hash(c.path)
        assert a.applied_offset == b.applied_offset == len(records)


def test_redelivery_and_order_with_columns(tmp_path: Path) -> None:
    ins = envelope.statement("CREATE TABLE t (a)")
    with SqliteMachine(tmp_path / "r.sqlite") as m:
        m.apply_batch(RecordColumns([0, 1, 2, 3], [T0] * 4, [ins, *[envelope.statement(
            "INSERT INTO t VALUES (?)", [i]) for i in range(3)]]))
        assert m.applied_offset == 4
        # below the applied offset: skipped, whatever their order
        m.apply_batch(RecordColumns([2, 1, 5, 6], [T0] * 4, [b"x", b"y", ins.replace(
            b"CREATE TABLE t", b"CREATE TABLE u"), envelope.statement("INSERT INTO u VALUES (1)")]))
        assert m.applied_offset == 7 and m.errors() == []
        with pytest.raises(InvariantError, match="out of order: offset 8 after 9"):
            m.apply_batch(RecordColumns([9, 8], [T0] * 2, [b"x", b"y"]))
        assert m.applied_offset == 7


def test_a_segment_closed_under_a_read_is_read_again(tmp_path: Path) -> None:
    """A segment deleted between PartitionLog.read and the pread (EBADF) means: ask again;
    any other I/O error stops the source."""
    from seriatim.storage.log import FileSlice

    real_read = FileSlice.read
    failures = [errno.EBADF]

    def flaky(self: FileSlice) -> bytes:
        if failures:
            raise OSError(failures.pop(), "injected")
        return real_read(self)

    with seriatim.open(tmp_path / "log") as log, \
            mock.patch.object(FileSlice, "read", flaky):
        log.append_many([(None, b"%d" % i) for i in range(5)])
        gen = LogSource(log, poll_interval_s=0.001).batches(0, threading.Event())
        try:
            assert [r.value for r in next(gen)] == [b"%d" % i for i in range(5)]
            failures.append(errno.EIO)
            log.append(b"5")
            with pytest.raises(OSError, match="injected"):
                next(gen)
        finally:
            gen.close()


def test_statements_from_the_reference_decoder_join_runs(tmp_path: Path) -> None:
    """Boolean and blob parameters are not for the msgspec decoder; their statements still
    go through executemany with their neighbours (same outcome as one by one)."""
    sql = "INSERT INTO t (k, v) VALUES (?, ?)"
    values = [envelope.statement("CREATE TABLE t (k PRIMARY KEY, v)")]
    values += [envelope.statement(sql, [i, [True, b"\x01", i, None][i % 4]]) for i in range(12)]
    values += [envelope.statement(sql, [3, False])]  # a duplicate key inside the run
    records = [Record(i, T0, None, v, ()) for i, v in enumerate(values)]
    with SqliteMachine(tmp_path / "batched.sqlite") as batched, \
            SqliteMachine(tmp_path / "single.sqlite") as single:
        runs: list[int] = []
        apply_run = batched._apply_run

        def spy(sql_: str, timestamps: list[int], params: list[Any]) -> bool:
            runs.append(len(params))
            return apply_run(sql_, timestamps, params)

        batched._apply_run = spy  # type: ignore[method-assign, assignment]
        batched.apply_batch(RecordColumns.from_records(records))
        for r in records:
            single.apply(r)
        assert runs == [13]  # one run; it failed (duplicate) and was re-applied one by one
        assert batched.errors() == single.errors() and len(batched.errors()) == 1
        assert state_hash(batched.path) == state_hash(single.path)
