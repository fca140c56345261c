"""The log cleaner: compaction semantics, scheduling configs, retention, concurrency."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

import seriatim
from seriatim.errors import InvalidConfigError
from seriatim.records import Compression, TimestampType, build_batch, iter_batches
from seriatim.storage import LogConfig, LogManager, PartitionLog
from seriatim.storage.cleaner import (
    CLEANER_CHECKPOINT_FILE,
    Cleaner,
    CleanerConfig,
    OffsetMap,
    Throttler,
)
from seriatim.storage.segment import Segment
from seriatim.testing import ManualClock

DAY_MS = 86_400_000


def compact_cfg(**kw: object) -> LogConfig:
    base: dict[str, object] = {"cleanup_policy": "compact", "segment_bytes": 1024,
                               "flush_policy": "never", "index_interval_bytes": 128}
    base.update(kw)
    return LogConfig(**base)  # type: ignore[arg-type]


def put(log: PartitionLog, key: bytes | None, value: bytes | None, ts: int = 1_000) -> int:
    return log.append_batch(build_batch([(key, value)], timestamp_ms=ts)).base_offset


def latest(log: PartitionLog) -> dict[bytes | None, tuple[int, bytes | None]]:
    out: dict[bytes | None, tuple[int, bytes | None]] = {}
    prev = -1
    for rec in log.read_records():
        assert rec.offset > prev
        prev = rec.offset
        out[rec.key] = (rec.offset, rec.value)
    return out


def test_config_names_are_real_fields_now() -> None:
    cfg = LogConfig.from_kafka({"cleanup.policy": "compact,delete", "delete.retention.ms": "5",
                                "min.compaction.lag.ms": "6", "max.compaction.lag.ms": "7",
                                "min.cleanable.dirty.ratio": "0.25"})
    assert (cfg.delete_retention_ms, cfg.min_compaction_lag_ms, cfg.max_compaction_lag_ms,
            cfg.min_cleanable_dirty_ratio) == (5, 6, 7, 0.25)
    assert cfg.compact and cfg.delete
    assert LogConfig.from_kafka(cfg.to_kafka()) == cfg
    with pytest.raises(InvalidConfigError, match="between 0 and 1"):
        LogConfig.from_kafka({"min.cleanable.dirty.ratio": "1.5"})
    with pytest.raises(InvalidConfigError):
        LogConfig.from_kafka({"max.compaction.lag.ms": "0"})


def test_compaction_keeps_the_latest_value_per_key_and_every_offset(tmp_path: Path) -> None:
    with PartitionLog.open(tmp_path / "p", compact_cfg()) as log:
        for i in range(200):
            put(log, b"k%d" % (i % 7), b"v%d" % i)
        before = latest(log)
        start, end = log.start_offset, log.end_offset
        stats = log.compact(now_ms=2_000)
        assert stats.cleaned and stats.records_removed > 150
        assert latest(log) == before  # same value at the same offset
        assert (log.start_offset, log.end_offset) == (start, end)
        assert log.size_bytes < 0.2 * 200 * 80
    with PartitionLog.open(tmp_path / "p", compact_cfg()) as log:  # survives a reopen
        assert latest(log) == before


def test_records_without_a_key_are_removed_by_compaction(tmp_path: Path) -> None:
    with PartitionLog.open(tmp_path / "p", compact_cfg()) as log:
        for i in range(40):
            put(log, None if i % 2 else b"k", b"v%d" % i)
        log.roll()
        log.compact(now_ms=2_000)
        assert [r.key for r in log.read_records()] == [b"k"]


def test_tombstones_stay_for_delete_retention_ms_then_go(tmp_path: Path) -> None:
    cfg = compact_cfg(delete_retention_ms=DAY_MS)
    with PartitionLog.open(tmp_path / "p", cfg) as log:
        put(log, b"a", b"1", ts=1_000)
        put(log, b"b", b"2", ts=1_000)
        put(log, b"a", None, ts=5_000)
        log.roll()
        log.compact(now_ms=5_000 + DAY_MS)  # exactly at the horizon: kept
        assert {r.key: r.value for r in log.read_records()} == {b"a": None, b"b": b"2"}
        assert log.tombstones_expire_ms == 5_000 + DAY_MS
        stats = log.compact(now_ms=5_001 + DAY_MS)  # nothing dirty, but a tombstone expired
        assert stats.tombstones_removed == 1
        assert {r.key: r.value for r in log.read_records()} == {b"b": b"2"}


def test_min_compaction_lag_protects_recent_segments(tmp_path: Path) -> None:
    cfg = compact_cfg(min_compaction_lag_ms=10_000)
    with PartitionLog.open(tmp_path / "p", cfg) as log:
        for i in range(30):
            put(log, b"k", b"v%d" % i, ts=1_000)
        log.roll()
        assert log.compact(now_ms=5_000).passes == 0  # newest record 4 s old < 10 s
        assert len(list(log.read_records())) == 30
        assert log.compact(now_ms=11_001).passes == 1
        assert len(list(log.read_records())) == 1


def test_dirty_ratio_and_max_compaction_lag_decide_background_cleaning(tmp_path: Path) -> None:
    cfg = compact_cfg(min_cleanable_dirty_ratio=0.9, max_compaction_lag_ms=60_000)
    cleaner = Cleaner()
    with PartitionLog.open(tmp_path / "p", cfg) as log:
        for i in range(30):
            put(log, b"k%d" % (i % 20), b"v%d" % i, ts=1_000)
        log.roll()
        log.compact(now_ms=2_000)  # everything clean now
        for i in range(5):
            put(log, b"k%d" % i, b"w%d" % i, ts=3_000)
        log.roll()
        stats = cleaner.clean(log, 4_000)
        assert stats.passes == 0 and "dirty ratio" in stats.reason
        stats = cleaner.clean(log, 3_000 + 60_001)  # the oldest dirty record is overdue
        assert stats.passes == 1


def test_a_small_offset_map_cleans_in_several_passes_with_the_same_result(
        tmp_path: Path) -> None:
    results = []
    for capacity_bytes in (24, 24 * 5, 1 << 20):
        path = tmp_path / f"p{capacity_bytes}"
        with PartitionLog.open(path, compact_cfg()) as log:
            for i in range(120):
                put(log, b"k%d" % (i * 7 % 23), b"v%d" % i)
            log.roll()
            stats = Cleaner(CleanerConfig(dedupe_buffer_bytes=capacity_bytes,
                                          load_factor=1.0)).clean(log, 2_000, force=True)
            assert stats.map_entries_max <= max(1, capacity_bytes // 24) or \
                stats.map_entries_max == 1
            if capacity_bytes == 24:
                assert stats.passes > 5
            results.append(latest(log))
    assert results[0] == results[1] == results[2]
    assert len(results[0]) == 23


def test_small_cleaned_segments_merge_up_to_segment_bytes(tmp_path: Path) -> None:
    with PartitionLog.open(tmp_path / "p", compact_cfg(segment_bytes=2048)) as log:
        for i in range(300):
            put(log, b"k%d" % (i % 5), b"v%d" % i)
        log.roll()
        log.compact(now_ms=2_000)
        n_before = len(log.segment_base_offsets())
        log.compact(now_ms=2_000)  # nothing dirty: the clean section is regrouped
        assert len(log.segment_base_offsets()) == 2 < n_before  # one merged + the active
        assert len(latest(log)) == 5
        assert (tmp_path / "p" / CLEANER_CHECKPOINT_FILE).exists()


def test_compressed_and_log_append_time_batches_keep_their_attributes(tmp_path: Path) -> None:
    clock = ManualClock(wall_ms=50_000)
    cfg = compact_cfg(message_timestamp_type="LogAppendTime")
    with PartitionLog.open(tmp_path / "p", cfg, clock=clock) as log:
        for i in range(10):
            recs = [(b"a", b"x%d" % i), (b"b%d" % i, b"y%d" % i, [("h", b"v")])]
            log.append_batch(build_batch(recs, compression=Compression.GZIP,
                                         producer_id=7, producer_epoch=1, base_sequence=2 * i))
            clock.advance(1)
        log.roll()
        before = latest(log)
        log.compact(now_ms=60_000)
        assert latest(log) == before
        data = log.read(log.start_offset, 1 << 20).bytes()
        for _, hdr in iter_batches(data):
            assert hdr.compression == Compression.GZIP
            assert hdr.timestamp_type == TimestampType.LOG_APPEND_TIME
            assert hdr.producer_id == 7
        rec = next(r for r in log.read_records() if r.key == b"b3")
        assert rec.headers == (("h", b"v"),) and rec.timestamp_ms == 50_003


def test_delete_policy_logs_are_never_compacted_and_compact_logs_never_expire(
        tmp_path: Path) -> None:
    with PartitionLog.open(tmp_path / "d", compact_cfg(cleanup_policy="delete")) as log:
        for i in range(30):
            put(log, b"k", b"v%d" % i)
        assert log.compact().passes == 0
        assert len(list(log.read_records())) == 30
    with PartitionLog.open(tmp_path / "c", compact_cfg(retention_ms=1)) as log:
        for i in range(30):
            put(log, b"k%d" % i, b"v%d" % i, ts=1)
        assert log.apply_retention(now_ms=10**9) == 0
    with PartitionLog.open(tmp_path / "cd", compact_cfg(cleanup_policy="compact,delete",
                                                         retention_ms=1000)) as log:
        for i in range(30):
            put(log, b"k%d" % i, b"v%d" % i, ts=1)
        assert log.apply_retention(now_ms=10**9) > 0


def test_retention_by_time_and_by_bytes_with_a_manual_clock(tmp_path: Path) -> None:
    clock = ManualClock(wall_ms=1_000_000)
    cfg = LogConfig(segment_bytes=1024, flush_policy="never", retention_ms=10_000)
    with PartitionLog.open(tmp_path / "t", cfg, clock=clock) as log:
        for _ in range(40):
            put(log, b"k", b"v" * 40, ts=clock.wall_ms())
            clock.advance(1_000)
        assert log.apply_retention() > 0
        oldest = next(log.read_records()).timestamp_ms
        assert oldest >= clock.wall_ms() - 10_000 - 1024 // 60 * 1_000
    cfg = LogConfig(segment_bytes=1024, flush_policy="never", retention_bytes=2048)
    with PartitionLog.open(tmp_path / "b", cfg) as log:
        for _ in range(100):
            put(log, b"k", b"v" * 40)
        log.apply_retention()
        assert log.size_bytes <= 2048 + 1024


def test_offset_map_and_throttler() -> None:
    m = OffsetMap(2)
    assert m.room_for(5)  # an empty map takes one batch whatever its size
    m.put(b"a", 1)
    m.put(b"a", 4)
    assert (m.get(b"a"), m.get(b"zz"), len(m)) == (4, -1, 1)
    assert m.room_for(1) and not m.room_for(2)
    clock = ManualClock()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(round(seconds * 1000))

    t = Throttler(1000.0, clock, sleep)
    t.charge(500)
    t.charge(1500)
    assert sum(slept) == pytest.approx(2.0)  # 2000 bytes at 1000 bytes/s
    assert CleanerConfig(dedupe_buffer_bytes=24 * 100, load_factor=0.5).map_capacity == 50


def test_readers_and_appends_carry_on_during_compaction(tmp_path: Path) -> None:
    """A slice handed out before a swap still reads; appends proceed while cleaning."""
    with PartitionLog.open(tmp_path / "p", compact_cfg()) as log:
        for i in range(300):
            put(log, b"k%d" % (i % 9), b"v%d" % i)
        log.roll()
        before = log.read(0, 1 << 20)
        expected = before.bytes()
        stop = threading.Event()
        appended: list[int] = []

        def writer() -> None:
            i = 0
            while not stop.is_set() and i < 2000:
                appended.append(put(log, b"w%d" % (i % 3), b"x%d" % i))
                i += 1

        t = threading.Thread(target=writer)
        t.start()
        try:
            log.compact(now_ms=2_000)
        finally:
            stop.set()
            t.join()
        assert before.bytes() == expected  # the old (unlinked) files are still readable
        assert appended == list(range(300, 300 + len(appended)))
        got = latest(log)
        assert got[b"k0"][1] == b"v297"


def test_the_cleaner_gives_up_when_the_log_changes_under_it(tmp_path: Path) -> None:
    with PartitionLog.open(tmp_path / "p", compact_cfg()) as log:
        for i in range(100):
            put(log, b"k%d" % (i % 3), b"v%d" % i)
        log.roll()

        def truncate_midway(step: str) -> None:
            raise AssertionError("no swap expected")

        segs, _ = log.cleaner_view()
        sources = log.open_for_cleaning(len(segs) - 1)
        log.truncate_to(10)
        # The swap's identity check fails: nothing is renamed, nothing changes.
        fake = Segment(log.path, sources[0].base_offset, -1, 0)
        assert not log.replace_segments([s.seg for s in sources[:2]],
                                        [s.size for s in sources[:2]], fake, truncate_midway)
        for s in sources:
            os.close(s.fd)
        assert log.end_offset == 10


def test_embedded_log_and_manager_compact(tmp_path: Path) -> None:
    with seriatim.open(tmp_path / "e", cleanup_policy="compact", segment_bytes=1024,
                       flush_policy="never") as elog:
        for i in range(100):
            elog.append(b"v%d" % i, key=b"k%d" % (i % 4))
        elog.roll()
        assert elog.compact().cleaned
        assert len(list(elog.read())) == 4
    with LogManager(tmp_path / "m", LogConfig(flush_policy="never")) as mgr:
        mgr.create_topic("t", 2, {"cleanup.policy": "compact", "segment.bytes": "1024"})
        mgr.create_topic("d", 1, {"segment.bytes": "1024"})
        for p in (0, 1):
            for i in range(60):
                put(mgr.get("t", p), b"k%d" % (i % 3), b"v%d" % i)
            mgr.get("t", p).roll()
        stats = mgr.compact("t")
        assert stats.passes == 2
        assert all(len(list(mgr.get("t", p).read_records())) == 3 for p in (0, 1))
        assert mgr.compact("d").passes == 0
        logs = [plog for _, _, plog in mgr.logs()]
        assert LogManager.clean_logs(logs, mgr.cleaner).passes == 0  # nothing due
        for i in range(60):
            put(mgr.get("t", 1), b"k%d" % (i % 3), b"w%d" % i)
        mgr.get("t", 1).roll()
        assert LogManager.clean_logs(logs, mgr.cleaner).passes == 1  # dirty ratio > 0.5
