"""Recovery after unclean shutdowns: torn tails are cut, mid-log damage is refused, indexes rebuilt.

An unclean shutdown is made by closing cleanly and then deleting the clean-shutdown marker (and,
where a test needs every segment scanned, the recovery-point checkpoint): what is left on disk is
exactly what a crash after the last fsync leaves. The bytes are then damaged the way crashes and
disks damage them.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

from seriatim.errors import CorruptLogError
from seriatim.records import build_batch, iter_batches
from seriatim.storage import LogConfig, PartitionLog
from seriatim.storage.log import CLEAN_SHUTDOWN_FILE, RECOVERY_POINT_FILE

CFG = LogConfig(flush_policy="never", index_interval_bytes=64)


def make_log(path: Path, n_batches: int, *, segment_bytes: int = 1 << 20,
             records_per_batch: int = 2) -> list[bytes]:
    """Write ``n_batches`` batches; return the bytes of each as stored."""
    cfg = LogConfig(flush_policy="never", index_interval_bytes=64, segment_bytes=segment_bytes)
    stored = []
    with PartitionLog.open(path, cfg) as log:
        for i in range(n_batches):
            recs = [(b"k%d" % i, b"value-%d-%d" % (i, j) * 3) for j in range(records_per_batch)]
            info = log.append_batch(build_batch(recs, timestamp_ms=1000 + i))
            stored.append(log.read(info.base_offset, 1).bytes())
    return stored


def make_unclean(path: Path, *, drop_recovery_point: bool = False) -> None:
    (path / CLEAN_SHUTDOWN_FILE).unlink()
    if drop_recovery_point:
        (path / RECOVERY_POINT_FILE).unlink()


def last_segment(path: Path) -> Path:
    return sorted(path.glob("*.log"))[-1]


def batch_positions(data: bytes) -> list[int]:
    return [pos for pos, _ in iter_batches(data)]


def all_bytes(log: PartitionLog) -> bytes:
    return log.read(log.start_offset, 1 << 30).bytes() if log.end_offset > log.start_offset \
        else b""


def test_torn_tail_is_cut_at_every_byte_position_of_the_last_batch(tmp_path: Path) -> None:
    path = tmp_path / "p"
    stored = make_log(path, 5)
    seg = last_segment(path)
    original = seg.read_bytes()
    last_pos = batch_positions(original)[-1]
    saved = tmp_path / "saved"
    shutil.copytree(path, saved)
    for cut in range(last_pos + 1, len(original)):
        shutil.rmtree(path)
        shutil.copytree(saved, path)
        seg.write_bytes(original[:cut])
        make_unclean(path)
        with PartitionLog.open(path, CFG) as log:
            assert log.recovery_report.bytes_truncated == cut - last_pos, cut
            assert log.end_offset == 8
            assert all_bytes(log) == b"".join(stored[:4])
            assert log.append_batch(build_batch([(None, b"next")])).base_offset == 8
        assert PartitionLog.open(path, CFG, readonly=True).end_offset == 9


@pytest.mark.parametrize("tail", ["zeros", "garbage", "partial-header"])
def test_a_tail_of_zeros_or_garbage_is_cut(tmp_path: Path, tail: str) -> None:
    path = tmp_path / "p"
    stored = make_log(path, 4)
    seg = last_segment(path)
    junk = {
        "zeros": b"\0" * 4096,
        "garbage": random.Random(7).randbytes(5000).replace(b"\x02", b"\x03"),
        "partial-header": stored[0][:30],
    }[tail]
    with open(seg, "ab") as f:
        f.write(junk)
    make_unclean(path)
    with PartitionLog.open(path, CFG) as log:
        assert log.recovery_report.bytes_truncated == len(junk)
        assert all_bytes(log) == b"".join(stored)
        assert log.append_batch(build_batch([(None, b"x")])).base_offset == 8


def test_every_bit_flip_in_the_last_batch_is_cut(tmp_path: Path) -> None:
    path = tmp_path / "p"
    stored = make_log(path, 3, records_per_batch=1)
    seg = last_segment(path)
    original = seg.read_bytes()
    last_pos = batch_positions(original)[-1]
    saved = tmp_path / "saved"
    shutil.copytree(path, saved)
    for byte in range(last_pos, len(original)):
        if last_pos + 12 <= byte < last_pos + 16:
            continue  # partitionLeaderEpoch: outside the CRC by design, as in Kafka
        shutil.rmtree(path)
        shutil.copytree(saved, path)
        damaged = bytearray(original)
        damaged[byte] ^= 0x10
        seg.write_bytes(bytes(damaged))
        make_unclean(path)
        with PartitionLog.open(path, CFG) as log:
            assert log.recovery_report.bytes_truncated == len(original) - last_pos, byte
            assert all_bytes(log) == b"".join(stored[:2])


def test_a_bit_flip_mid_log_is_refused_naming_file_and_position(tmp_path: Path) -> None:
    path = tmp_path / "p"
    make_log(path, 6)
    seg = last_segment(path)
    original = seg.read_bytes()
    bad_pos = batch_positions(original)[2]
    damaged = bytearray(original)
    damaged[bad_pos + 40] ^= 1
    seg.write_bytes(bytes(damaged))
    make_unclean(path)
    with pytest.raises(CorruptLogError) as info:
        PartitionLog.open(path, CFG)
    assert info.value.path == str(seg) and info.value.position == bad_pos
    assert str(seg) in str(info.value) and str(bad_pos) in str(info.value)
    assert seg.read_bytes() == bytes(damaged)  # nothing was cut
    with pytest.raises(CorruptLogError):  # and it stays refused (the lock was released too)
        PartitionLog.open(path, CFG)


def test_damage_at_the_end_of_an_older_segment_is_mid_log_when_later_segments_hold_data(
        tmp_path: Path) -> None:
    path = tmp_path / "p"
    make_log(path, 12, segment_bytes=400)
    segs = sorted(path.glob("*.log"))
    assert len(segs) >= 3
    first = segs[0]
    data = bytearray(first.read_bytes())
    data[-5] ^= 0xFF
    first.write_bytes(bytes(data))
    make_unclean(path, drop_recovery_point=True)
    with pytest.raises(CorruptLogError) as info:
        PartitionLog.open(path, CFG)
    assert info.value.path == str(first)


def test_a_torn_older_segment_followed_only_by_garbage_is_cut_and_later_segments_deleted(
        tmp_path: Path) -> None:
    path = tmp_path / "p"
    stored = make_log(path, 12, segment_bytes=400)
    segs = sorted(path.glob("*.log"))
    second = segs[1]
    data = second.read_bytes()
    positions = batch_positions(data)
    second.write_bytes(data[: positions[-1] + 20])  # a torn last batch
    for later in segs[2:]:
        later.write_bytes(b"\0" * later.stat().st_size)  # never made it to disk
    lost = sum(s.stat().st_size for s in segs[2:]) + 20
    make_unclean(path, drop_recovery_point=True)
    with PartitionLog.open(path, CFG) as log:
        report = log.recovery_report
        assert report.bytes_truncated == lost
        assert report.segments_deleted == len(segs) - 2
        assert len(log.segment_base_offsets()) == 2
        kept = b"".join(s.read_bytes() for s in segs[:1]) + data[: positions[-1]]
        assert all_bytes(log) == kept
        assert kept == b"".join(stored[: len(batch_positions(kept))])
        next_offset = log.end_offset
        assert log.append_batch(build_batch([(None, b"x")])).base_offset == next_offset


@pytest.mark.parametrize("damage", ["missing", "garbage", "half-entry", "wrong-position"])
def test_damaged_or_missing_index_files_are_rebuilt(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "p"
    stored = make_log(path, 30, segment_bytes=600)
    first = sorted(path.glob("*.index"))[0]
    tindex = first.with_suffix(".timeindex")
    assert first.stat().st_size >= 16
    if damage == "missing":
        first.unlink()
        tindex.unlink()
    elif damage == "garbage":
        first.write_bytes(random.Random(1).randbytes(first.stat().st_size))
        tindex.write_bytes(random.Random(2).randbytes(tindex.stat().st_size))
    elif damage == "half-entry":
        first.write_bytes(first.read_bytes()[:-4])
    else:
        data = bytearray(first.read_bytes())
        data[-1] = (data[-1] + 1) % 256  # the last entry no longer points at a batch start
        first.write_bytes(bytes(data))
    with PartitionLog.open(path, CFG) as log:
        assert log.recovery_report.indexes_rebuilt >= 1
        assert all_bytes(log) == b"".join(stored)
        for i in range(0, 60, 7):
            assert [r.offset for r in log.read_records(i)][:1] == [i]
        assert log.offset_for_timestamp(1000 + 13) == (26, 1013)
    with PartitionLog.open(path, CFG) as log:
        assert log.recovery_report.indexes_rebuilt == 0  # the rebuilt files were written back


def test_recovery_is_idempotent_and_cleans_leftover_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "p"
    stored = make_log(path, 5)
    (path / "recovery-point-checkpoint.tmp").write_bytes(b"half")
    (path / "00000000000000099999.index").write_bytes(b"")  # orphan index
    with open(last_segment(path), "ab") as f:
        f.write(b"\0" * 100)
    make_unclean(path)
    with PartitionLog.open(path, CFG) as log:
        assert log.recovery_report.bytes_truncated == 100
    assert not (path / "recovery-point-checkpoint.tmp").exists()
    assert not (path / "00000000000000099999.index").exists()
    make_unclean(path)
    with PartitionLog.open(path, CFG) as log:
        assert log.recovery_report.bytes_truncated == 0
        assert all_bytes(log) == b"".join(stored)


def test_a_damaged_checkpoint_falls_back_to_full_recovery(tmp_path: Path) -> None:
    path = tmp_path / "p"
    stored = make_log(path, 8, segment_bytes=400)
    (path / RECOVERY_POINT_FILE).write_text("1\n1\n99999\ncrc32c 00000000\n")
    (path / CLEAN_SHUTDOWN_FILE).write_text("garbage")
    with PartitionLog.open(path, CFG) as log:
        assert not log.recovery_report.clean_shutdown
        assert log.recovery_report.segments_recovered == len(log.segment_base_offsets())
        assert all_bytes(log) == b"".join(stored)


def test_clean_marker_that_disagrees_with_the_log_triggers_recovery(tmp_path: Path) -> None:
    path = tmp_path / "p"
    make_log(path, 4)
    with open(last_segment(path), "ab") as f:
        f.write(b"\0" * 64)  # bytes the marker knows nothing about
    with PartitionLog.open(path, CFG) as log:
        assert log.end_offset == 8
        assert log.recovery_report.bytes_truncated == 64
    assert os.path.getsize(last_segment(path)) == sum(len(b) for b in make_log(tmp_path / "q", 4))
