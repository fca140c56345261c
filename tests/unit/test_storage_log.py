"""PartitionLog and the embedded Log: appends, reads, rolls, truncation, retention, durability."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

import seriatim
from seriatim.errors import (
    CorruptRecordError,
    LogClosedError,
    LogLockedError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
    StorageError,
)
from seriatim.records import build_batch, iter_records, parse_header
from seriatim.storage import LogConfig, PartitionLog
from seriatim.storage.fileops import FileOps


class Clock:
    def __init__(self, now_ms: int = 1_700_000_000_000) -> None:
        self.now_ms = now_ms

    def wall_ms(self) -> int:
        return self.now_ms

    def monotonic_ns(self) -> int:
        return self.now_ms * 1_000_000


def batch(n: int = 1, *, ts: int = 1_700_000_000_000, size: int = 10) -> bytes:
    return build_batch([(None, b"v" * size, (), ts + i) for i in range(n)], timestamp_ms=ts)


def cfg(**kw: object) -> LogConfig:
    kw.setdefault("flush_policy", "never")
    return LogConfig(**kw)  # type: ignore[arg-type]


def open_log(path: Path, **kw: object) -> PartitionLog:
    clock = kw.pop("clock", Clock())
    return PartitionLog.open(path, cfg(**kw), clock=clock)  # type: ignore[arg-type]


def test_append_assigns_consecutive_offsets_and_reads_return_whole_batches(tmp_path: Path) -> None:
    with open_log(tmp_path / "p") as log:
        infos = [log.append_batch(batch(3)) for _ in range(4)]
        assert [(i.base_offset, i.last_offset) for i in infos] == [(0, 2), (3, 5), (6, 8), (9, 11)]
        assert (log.start_offset, log.end_offset) == (0, 12)
        res = log.read(4, 1 << 20)
        data = res.bytes()
        assert parse_header(data).base_offset == 3  # starts at the batch containing 4
        assert res.size_bytes == 3 * infos[0].size_bytes
        assert [r.offset for r in log.read_records(4)] == list(range(4, 12))


def test_append_rewrites_base_offset_in_place_and_keeps_the_crc(tmp_path: Path) -> None:
    with open_log(tmp_path / "p") as log:
        log.append_batch(batch(2))
        buf = bytearray(batch(1))
        crc_before = parse_header(buf).crc
        info = log.append_batch(buf, leader_epoch=7)
        h = parse_header(buf)
        assert (h.base_offset, h.partition_leader_epoch, h.crc) == (2, 7, crc_before)
        assert log.read(2, 1000).bytes() == bytes(buf)
        assert info.log_append_time_ms == -1
        assert log.epoch_entries() == [(7, 2)]


def test_read_respects_max_bytes_but_returns_at_least_one_batch(tmp_path: Path) -> None:
    with open_log(tmp_path / "p", index_interval_bytes=100) as log:
        size = log.append_batch(batch(1, size=500)).size_bytes
        for _ in range(20):
            log.append_batch(batch(1, size=500))
        assert log.read(0, 10).size_bytes == size  # min_one_batch
        assert log.read(0, 10, min_one_batch=False).size_bytes == 0
        assert log.read(0, 3 * size + 5).size_bytes == 3 * size
        assert log.read(5, 10**9, max_offset=8).size_bytes == 3 * size
        assert log.read(21, 100).slices == ()
        with pytest.raises(OffsetOutOfRangeError):
            log.read(22, 100)


def test_segments_roll_at_segment_bytes_and_reads_span_them(tmp_path: Path) -> None:
    with open_log(tmp_path / "p", segment_bytes=1000) as log:
        for _ in range(30):
            log.append_batch(batch(2, size=50))
        bases = log.segment_base_offsets()
        assert len(bases) > 3 and bases[0] == 0
        assert all(os.path.getsize(p) <= 1000 for p in log.segment_paths())
        assert [r.offset for r in log.read_records(0)] == list(range(60))
        assert len(log.read(0, 10**6).slices) == len(bases)
    with open_log(tmp_path / "p", segment_bytes=1000) as log:
        assert log.recovery_report.clean_shutdown
        assert [r.offset for r in log.read_records(17)] == list(range(17, 60))


def test_segment_ms_rolls_by_time(tmp_path: Path) -> None:
    clock = Clock()
    with open_log(tmp_path / "p", segment_ms=1000, clock=clock) as log:
        log.append_batch(batch(1, ts=clock.now_ms))
        log.append_batch(batch(1, ts=clock.now_ms))
        assert len(log.segment_base_offsets()) == 1
        clock.now_ms += 1001
        log.append_batch(batch(1, ts=clock.now_ms))
        assert log.segment_base_offsets() == [0, 2]


def test_full_index_rolls_the_segment(tmp_path: Path) -> None:
    with open_log(tmp_path / "p", segment_index_bytes=24, index_interval_bytes=0) as log:
        for _ in range(10):
            log.append_batch(batch(1))
        assert len(log.segment_base_offsets()) >= 3


def test_validation_rejects_corrupt_too_large_and_multi_batch_input(tmp_path: Path) -> None:
    with open_log(tmp_path / "p", max_message_bytes=200) as log:
        bad = bytearray(batch(1))
        bad[-1] ^= 1
        with pytest.raises(CorruptRecordError):
            log.append_batch(bad)
        with pytest.raises(RecordTooLargeError):
            log.append_batch(batch(1, size=300))
        with pytest.raises(Exception, match="exactly one"):
            log.append_batch(batch(1) + batch(1))
        assert log.end_offset == 0


def test_log_append_time_sets_the_attribute_max_timestamp_and_a_valid_crc(tmp_path: Path) -> None:
    clock = Clock(5_000)
    with open_log(tmp_path / "p", message_timestamp_type="LogAppendTime", clock=clock) as log:
        info = log.append_batch(batch(2, ts=1))
        assert info.log_append_time_ms == 5_000
        data = log.read(0, 1000).bytes()
        h = parse_header(data)
        assert h.attributes & 0x08 and h.max_timestamp == 5_000
        assert [r.timestamp_ms for r in iter_records(data)] == [5_000, 5_000]  # CRC checked


def test_offset_for_timestamp_and_max_timestamp(tmp_path: Path) -> None:
    with open_log(tmp_path / "p", index_interval_bytes=50, segment_bytes=600) as log:
        for i in range(20):
            log.append_batch(batch(2, ts=1000 + 10 * i))  # records at 1000+10i, 1001+10i
        assert log.offset_for_timestamp(0) == (0, 1000)
        assert log.offset_for_timestamp(1001) == (1, 1001)
        assert log.offset_for_timestamp(1002) == (2, 1010)
        assert log.offset_for_timestamp(1191) == (39, 1191)
        assert log.offset_for_timestamp(1192) is None
        assert log.offset_for_timestamp(-2) == (0, -1)
        assert log.offset_for_timestamp(-1) == (40, -1)
        assert log.max_timestamp() == (1191, 39)


def test_truncate_to_cuts_whole_batches_indexes_and_epochs(tmp_path: Path) -> None:
    with open_log(tmp_path / "p", segment_bytes=500, index_interval_bytes=10) as log:
        for i in range(20):
            log.append_batch(batch(2), leader_epoch=i // 5)
        log.truncate_to(13)  # inside the batch 12..13
        assert log.end_offset == 12
        assert log.epoch_entries() == [(0, 0), (1, 10)]
        assert [r.offset for r in log.read_records(0)][-1] == 11
        assert log.append_batch(batch(1)).base_offset == 12
    with open_log(tmp_path / "p") as log:
        assert log.end_offset == 13
        log.truncate_to(0)
        assert (log.start_offset, log.end_offset) == (0, 0)
        assert log.append_batch(batch(1)).base_offset == 0


def test_delete_records_before_advances_start_and_deletes_whole_segments(tmp_path: Path) -> None:
    with open_log(tmp_path / "p", segment_bytes=500) as log:
        for _ in range(20):
            log.append_batch(batch(2))
        n_before = len(log.segment_base_offsets())
        assert log.delete_records_before(15) == 15
        assert log.start_offset == 15
        assert log.segment_base_offsets()[0] <= 15
        assert len(log.segment_base_offsets()) < n_before
        assert next(r.offset for r in log.read_records()) == 15
        with pytest.raises(OffsetOutOfRangeError):
            log.read(3, 100)
        with pytest.raises(OffsetOutOfRangeError):
            log.delete_records_before(41)
    with open_log(tmp_path / "p") as log:
        assert log.start_offset == 15


def test_retention_by_size_and_time_deletes_old_segments_never_the_active(tmp_path: Path) -> None:
    with open_log(tmp_path / "p", segment_bytes=300, retention_bytes=600) as log:
        for _ in range(20):
            log.append_batch(batch(1, size=100))
        deleted = log.apply_retention()
        assert deleted > 0
        assert log.size_bytes <= 600 + 300
        assert log.start_offset == log.segment_base_offsets()[0]
    with open_log(tmp_path / "q", segment_bytes=300, retention_ms=1000) as log:
        for i in range(10):
            log.append_batch(batch(1, size=100, ts=10_000 + i * 1000))
        assert log.apply_retention(now_ms=10_000 + 5_500) > 0
        assert log.start_offset >= 4  # the segments holding timestamps <= 14_500 are gone
        log.apply_retention(now_ms=10**12)
        assert len(log.segment_base_offsets()) == 1  # only the active one is left
        assert [r.offset for r in log.read_records()] == list(range(log.start_offset, 10))


def test_leader_epoch_cache_end_offsets_and_persistence(tmp_path: Path) -> None:
    with open_log(tmp_path / "p") as log:
        log.append_batch(batch(2), leader_epoch=1)
        log.append_batch(batch(2), leader_epoch=1)
        log.append_batch(batch(2), leader_epoch=3)
        assert log.epoch_entries() == [(1, 0), (3, 4)]
        assert log.end_offset_for_epoch(1) == (1, 4)
        assert log.end_offset_for_epoch(2) == (1, 4)
        assert log.end_offset_for_epoch(3) == (3, 6)
        assert log.end_offset_for_epoch(0) == (0, 0)
        assert log.end_offset_for_epoch(9) == (-1, -1)
    with open_log(tmp_path / "p") as log:
        assert log.epoch_entries() == [(1, 0), (3, 4)]


def test_flush_policy_always_advances_the_recovery_point_per_append(tmp_path: Path) -> None:
    with open_log(tmp_path / "p", flush_policy="always") as log:
        log.append_batch(batch(3))
        assert log.flushed_offset == 3
    with open_log(tmp_path / "q", flush_policy="interval", flush_messages=5) as log:
        log.append_batch(batch(3))
        assert log.flushed_offset == 0 and not log.flush_due()
        log.append_batch(batch(3))
        assert log.flush_due()
        log.flush()
        assert log.flushed_offset == 6 and not log.flush_due()


class FailingFsync(FileOps):
    __slots__ = ("fail",)

    def __init__(self) -> None:
        self.fail = False

    def fdatasync(self, fd: int) -> None:
        if self.fail:
            raise OSError(errno.EIO, "injected EIO")
        super().fdatasync(fd)


@pytest.mark.parametrize("policy", ["always", "interval"])
def test_a_failed_fsync_takes_the_log_offline_for_good(tmp_path: Path, policy: str) -> None:
    fs = FailingFsync()
    log = PartitionLog.open(tmp_path / "p", LogConfig(flush_policy=policy), fs=fs)
    log.append_batch(batch(1))
    log.flush()
    fs.fail = True
    with pytest.raises(StorageError, match="injected EIO"):
        log.append_batch(batch(1)) if policy == "always" else (log.append_batch(batch(1)),
                                                                 log.flush())
    fs.fail = False  # a retry would "succeed": fail-stop means we never try
    for call in (lambda: log.append_batch(batch(1)), log.flush, lambda: log.read(0, 100)):
        with pytest.raises(StorageError, match="offline"):
            call()
    log.close()
    assert not (tmp_path / "p" / ".clean-shutdown").exists()
    with PartitionLog.open(tmp_path / "p", LogConfig()) as again:
        assert not again.recovery_report.clean_shutdown
        assert again.end_offset >= 1


def test_flush_in_another_thread_while_appending(tmp_path: Path) -> None:
    with open_log(tmp_path / "p", flush_policy="interval", segment_bytes=2000) as log:
        stop = threading.Event()
        errors: list[BaseException] = []

        def flusher() -> None:
            try:
                while not stop.is_set():
                    log.flush()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        t = threading.Thread(target=flusher)
        t.start()
        for _ in range(300):
            log.append_batch(batch(2))
        stop.set()
        t.join()
        assert errors == []
        log.flush()
        assert log.flushed_offset == log.end_offset == 600


def test_second_writer_is_refused_even_in_the_same_process(tmp_path: Path) -> None:
    with seriatim.open(tmp_path / "p") as log:
        with pytest.raises(LogLockedError, match=str(tmp_path / "p")):
            seriatim.open(tmp_path / "p")
        with seriatim.open(tmp_path / "p", readonly=True) as reader:
            assert reader.end_offset == log.end_offset
    with seriatim.open(tmp_path / "p"):  # released on close
        pass


def test_closed_log_refuses_calls(tmp_path: Path) -> None:
    log = open_log(tmp_path / "p")
    log.close()
    with pytest.raises(LogClosedError):
        log.append_batch(batch(1))


def test_embedded_api_round_trip(tmp_path: Path) -> None:
    clock = Clock(1234)
    with seriatim.open(tmp_path / "events", clock=clock) as log:
        assert log.append(b"value", key=b"k", headers=[("h", b"v")]) == 0
        assert log.append_many([(b"k1", b"v1"), (None, b"v2")]) == 1
        clock.now_ms = 2000
        log.append(b"later")
        recs = list(log.read(from_offset=0))
        assert [(r.offset, r.key, r.value) for r in recs] == [
            (0, b"k", b"value"), (1, b"k1", b"v1"), (2, None, b"v2"), (3, None, b"later")]
        assert recs[0].headers == (("h", b"v"),) and recs[0].timestamp_ms == 1234
        assert (log.start_offset, log.end_offset) == (0, 4)
        assert log.offset_for_time(1500) == 3
        assert log.offset_for_time(5000) is None
        assert log.flushed_offset == 4  # the embedded default is flush_policy="always"
        log.flush()


def test_embedded_open_accepts_kafka_names_and_shortcuts(tmp_path: Path) -> None:
    with seriatim.open(tmp_path / "e", config={"segment.bytes": "4096", "retention.ms": "5"},
                       flush_policy="never") as log:
        c = log.config
        assert (c.segment_bytes, c.retention_ms, c.flush_policy) == (4096, 5, "never")


def test_follow_in_a_thread_sees_records_appended_later(tmp_path: Path) -> None:
    with seriatim.open(tmp_path / "f", flush_policy="never", segment_bytes=300) as log:
        log.append(b"first")
        seen: list[bytes | None] = []
        stop = threading.Event()
        reader = seriatim.open(tmp_path / "f", readonly=True)

        def follow() -> None:
            for rec in reader.follow(0, poll_interval_s=0.005, stop=stop):
                seen.append(rec.value)
                if len(seen) == 21:
                    stop.set()

        t = threading.Thread(target=follow)
        t.start()
        for i in range(20):
            log.append(b"r%d" % i)  # crosses several segment rolls
        t.join(timeout=10)
        stop.set()
        reader.close()
        assert seen == [b"first"] + [b"r%d" % i for i in range(20)]


def test_follow_on_the_writer_log_object(tmp_path: Path) -> None:
    with seriatim.open(tmp_path / "g", flush_policy="never") as log:
        stop = threading.Event()
        seen: list[int] = []

        def follow() -> None:
            for rec in log.follow(0, poll_interval_s=0.005, stop=stop):
                seen.append(rec.offset)
                if len(seen) == 5:
                    stop.set()

        t = threading.Thread(target=follow)
        t.start()
        for _ in range(5):
            log.append(b"x")
        t.join(timeout=10)
        stop.set()
        assert seen == [0, 1, 2, 3, 4]
