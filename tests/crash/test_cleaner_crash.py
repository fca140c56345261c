"""Crash injection into the cleaner's swap: stop after every step, reopen, read correctly.

A "crash" is an exception raised by the cleaner's fault hook after step *k*; the log object
is then abandoned (descriptors closed, lock released, no clean-shutdown marker), which leaves
on disk exactly the files a process killed at that point leaves (every step before the hook
has returned, its fsyncs included). Reopening must resolve the leftovers and read, for every
key, the latest value of the log before cleaning, with strictly increasing offsets and only
records that were in the log at those offsets.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from seriatim.errors import CorruptLogError
from seriatim.records import build_batch
from seriatim.storage import LogConfig, PartitionLog
from seriatim.storage.cleaner import CLEANED_SUFFIX, DELETED_SUFFIX, SWAP_SUFFIX

CFG = LogConfig(cleanup_policy="compact", segment_bytes=1800, flush_policy="never",
                index_interval_bytes=64, delete_retention_ms=10**12)


class Crash(Exception):
    pass


def build(path: Path, *, flush: bool) -> dict[int, tuple[bytes | None, bytes | None]]:
    """A log of 12 keys with updates and tombstones; returns offset -> (key, value)."""
    written: dict[int, tuple[bytes | None, bytes | None]] = {}
    with PartitionLog.open(path, CFG) as log:
        for i in range(80):
            key = b"k%d" % (i * 5 % 12)
            value = None if i % 11 == 3 else b"v%d" % i
            recs = [(key, value), (b"k%d" % (i % 12), b"w%d" % i)]
            info = log.append_batch(build_batch(recs, timestamp_ms=1_000 + i))
            for j, (k, v) in enumerate(recs):
                written[info.base_offset + j] = (k, v)
        log.roll()
    if flush:  # everything below the recovery point: the trusted (index-reuse) path
        with PartitionLog.open(path, CFG) as log:
            log.flush()
    else:  # no recovery point: every segment is scanned and re-indexed on reopen
        (path / "recovery-point-checkpoint").unlink()
        (path / ".clean-shutdown").unlink()
    return written


Written = dict[int, tuple[bytes | None, bytes | None]]


def model(written: Written) -> dict[bytes | None, bytes | None]:
    out: dict[bytes | None, bytes | None] = {}
    for off in sorted(written):
        k, v = written[off]
        out[k] = v
    return out


def check(log: PartitionLog, written: dict[int, tuple[bytes | None, bytes | None]]) -> None:
    seen: dict[bytes | None, bytes | None] = {}
    prev = -1
    for rec in log.read_records():
        assert rec.offset > prev, "offsets must strictly increase"
        prev = rec.offset
        assert written[rec.offset] == (rec.key, rec.value), "a record changed or was invented"
        seen[rec.key] = rec.value
    assert seen == model(written)
    names = os.listdir(log.path)
    assert not [n for n in names if n.endswith((CLEANED_SUFFIX, SWAP_SUFFIX, DELETED_SUFFIX))]


def abandon(log: PartitionLog) -> None:
    """Drop the log as a killed process would: no flush, no marker."""
    log._close_segments()
    for _, seg in log._retired:
        seg.close()
    assert log._dir_lock is not None
    log._dir_lock.release()
    log._closed = True


def count_steps(tmp_path: Path, flush: bool) -> list[str]:
    path = tmp_path / "dry"
    build(path, flush=flush)
    steps: list[str] = []
    with PartitionLog.open(path, CFG) as log:
        log.compact(now_ms=10_000, fault=steps.append)
    return steps


@pytest.mark.parametrize("flush", [False, True], ids=["unflushed", "flushed"])
def test_a_crash_after_any_swap_step_leaves_a_log_that_reads_correctly(
        tmp_path: Path, flush: bool) -> None:
    steps = count_steps(tmp_path, flush)
    assert {"cleaned-written", "swap-committed", "old-renamed-0", "swap-installed",
            "indexes-written", "deleted-removed"} <= set(steps)
    assert steps.count("swap-committed") >= 2  # several groups, so crashes land between them
    for k, step in enumerate(steps):
        path = tmp_path / f"crash{k}"
        written = build(path, flush=flush)

        def fault(name: str, *, stop_at: int = k) -> None:
            fault.calls += 1  # type: ignore[attr-defined]
            if fault.calls - 1 == stop_at:  # type: ignore[attr-defined]
                raise Crash(name)

        fault.calls = 0  # type: ignore[attr-defined]
        log = PartitionLog.open(path, CFG)
        with pytest.raises(Crash, match=step):
            log.compact(now_ms=10_000, fault=fault)
        abandon(log)
        with PartitionLog.open(path, CFG) as log:
            check(log, written)
            log.compact(now_ms=10_000)  # and cleaning again finishes the job
            check(log, written)
        with PartitionLog.open(path, CFG) as log:
            check(log, written)
            assert len(list(log.read_records())) <= len(model(written)) + 2


def test_a_leftover_cleaned_file_is_discarded(tmp_path: Path) -> None:
    path = tmp_path / "p"
    written = build(path, flush=True)
    (path / ("00000000000000000000.log" + CLEANED_SUFFIX)).write_bytes(b"half a segment")
    with PartitionLog.open(path, CFG) as log:
        check(log, written)
        assert any("interrupted cleaning" in n for n in log.recovery_report.notes)


def test_a_damaged_swap_file_is_refused_not_completed(tmp_path: Path) -> None:
    path = tmp_path / "p"
    build(path, flush=True)
    first = path / "00000000000000000000.log"
    data = bytearray(first.read_bytes())
    data[100] ^= 0xFF
    (path / (first.name + SWAP_SUFFIX)).write_bytes(bytes(data))
    with pytest.raises(CorruptLogError, match="swap"):
        PartitionLog.open(path, CFG)
    assert first.exists()  # nothing was deleted


def test_a_swap_whose_last_segments_became_empty_leaves_them_harmlessly(
        tmp_path: Path) -> None:
    """The swap covers [X, next); an old segment of the group starting after ``next`` held only
    superseded records: it may survive recovery, and reads stay correct."""
    path = tmp_path / "p"
    cfg = LogConfig(cleanup_policy="compact", segment_bytes=300, flush_policy="never")
    written: dict[int, tuple[bytes | None, bytes | None]] = {}
    with PartitionLog.open(path, cfg) as log:
        for i in range(30):
            key = b"a" if i < 3 else b"b"
            info = log.append_batch(build_batch([(key, b"v%d" % i)], timestamp_ms=1))
            written[info.base_offset] = (key, b"v%d" % i)
        log.roll()
        segs = log.segment_base_offsets()
    # Craft the post-commit state by hand: a swap holding just "a" (offset 2) for the first
    # two segments, the old segments still present.
    first_two = b"".join((path / f"{b:020d}.log").read_bytes() for b in segs[:2])
    from seriatim.records import iter_batches
    keep = b"".join(first_two[p:p + h.size] for p, h in iter_batches(first_two)
                    if h.base_offset == 2)
    (path / f"{segs[0]:020d}.log{SWAP_SUFFIX}").write_bytes(keep)
    (path / ".clean-shutdown").unlink()
    with PartitionLog.open(path, cfg) as log:
        assert log.segment_base_offsets()[0] == segs[0]
        assert segs[1] in log.segment_base_offsets()  # starts after the swap's last offset
        check(log, written)


def test_a_compacted_log_with_gaps_recovers_after_its_policy_becomes_delete(
        tmp_path: Path) -> None:
    path = tmp_path / "p"
    written = build(path, flush=False)
    with PartitionLog.open(path, CFG) as log:
        log.compact(now_ms=10_000)
    (path / ".clean-shutdown").unlink()
    (path / "recovery-point-checkpoint").unlink()  # every segment is scanned again
    delete_cfg = LogConfig(cleanup_policy="delete", segment_bytes=1800, flush_policy="never",
                           retention_ms=-1)
    with PartitionLog.open(path, delete_cfg) as log:
        assert log.recovery_report.bytes_truncated == 0
        check(log, written)
