"""Compaction against a model: whatever appends, rolls and cleanings happen, a reader of the log
sees for every key the latest value the uncompacted log holds; tombstones vanish once
delete.retention.ms has passed (manual clock); offsets strictly increase; and a reader that
keeps reading from its position while compaction runs never sees an older value of a key after
a newer one."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from seriatim.records import build_batch
from seriatim.storage import LogConfig, PartitionLog
from seriatim.storage.cleaner import Cleaner, CleanerConfig

KEYS = [b"a", b"b", b"c", b"d", b"e"]
RETENTION_MS = 1_000


class CompactedLog(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="seriatim-compact-"))
        self.cfg = LogConfig(cleanup_policy="compact", segment_bytes=400, flush_policy="never",
                             index_interval_bytes=64, delete_retention_ms=RETENTION_MS)
        self.log = PartitionLog.open(self.dir / "p", self.cfg)
        self.now_ms = 10_000
        self.seq = 0
        # the model: every record ever appended, offset -> (key, value, timestamp)
        self.appended: dict[int, tuple[bytes, bytes | None, int]] = {}
        # a reader that follows the log across compactions: next offset, last value per key
        self.reader_pos = 0
        self.reader_seen: dict[bytes, int] = {}  # key -> sequence number of the last value

    def teardown(self) -> None:
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(keys=st.lists(st.sampled_from(KEYS), min_size=1, max_size=4),
          tombstone=st.lists(st.booleans(), min_size=4, max_size=4))
    def append(self, keys: list[bytes], tombstone: list[bool]) -> None:
        recs = []
        for i, key in enumerate(keys):
            self.seq += 1
            recs.append((key, None if tombstone[i] else b"%d" % self.seq))
        info = self.log.append_batch(build_batch(recs, timestamp_ms=self.now_ms))
        for i, (key, value) in enumerate(recs):
            self.appended[info.base_offset + i] = (key, value, self.now_ms)

    @rule()
    def roll(self) -> None:
        self.log.roll()

    @rule(ms=st.integers(0, 2 * RETENTION_MS))
    def tick(self, ms: int) -> None:
        self.now_ms += ms

    @rule(capacity=st.sampled_from([1, 2, 3, 1000]), force=st.booleans())
    def compact(self, capacity: int, force: bool) -> None:
        cleaner = Cleaner(CleanerConfig(dedupe_buffer_bytes=24 * capacity, load_factor=1.0))
        cleaner.clean(self.log, self.now_ms, force=force)

    @rule()
    def reopen(self) -> None:
        self.log.close()
        self.log = PartitionLog.open(self.dir / "p", self.cfg)

    @rule(n=st.integers(1, 30))
    def read_some(self, n: int) -> None:
        """The reader continues from its position; each key's values only move forward."""
        if self.reader_pos >= self.log.end_offset:
            return
        pos = max(self.reader_pos, self.log.start_offset)
        for i, rec in enumerate(self.log.read_records(pos)):
            if i >= n:
                break
            assert rec.key is not None
            if rec.value is not None:
                seq = int(rec.value)
                assert seq > self.reader_seen.get(rec.key, 0), "an older value after a newer"
                self.reader_seen[rec.key] = seq
            self.reader_pos = rec.offset + 1

    def _latest(self) -> dict[bytes, tuple[int, bytes | None, int]]:
        latest: dict[bytes, tuple[int, bytes | None, int]] = {}
        for off in sorted(self.appended):
            key, value, ts = self.appended[off]
            latest[key] = (off, value, ts)
        return latest

    @invariant()
    def reading_matches_the_model(self) -> None:
        latest = self._latest()
        seen: dict[bytes, tuple[int, bytes | None]] = {}
        prev = -1
        for rec in self.log.read_records():
            assert rec.offset > prev
            prev = rec.offset
            assert rec.key is not None
            assert self.appended[rec.offset][:2] == (rec.key, rec.value)
            seen[rec.key] = (rec.offset, rec.value)
        for key, (off, value, ts) in latest.items():
            if key in seen:
                assert seen[key] == (off, value), (key, seen[key], off, value)
            else:
                # only a tombstone may be gone, and only once delete.retention.ms has passed
                # (cleanings run at self.now_ms, which only moves forward)
                assert value is None and ts < self.now_ms - RETENTION_MS, (key, off, value)
        assert self.log.end_offset == (max(self.appended) + 1 if self.appended else 0)

    @rule()
    def roll_and_compact_everything(self) -> None:
        """After a full cleaning, no expired tombstone and no superseded value remains."""
        self.log.roll()
        self.log.compact(self.now_ms)
        horizon = self.now_ms - RETENTION_MS
        keys = [rec.key for rec in self.log.read_records()]
        assert len(keys) == len(set(keys)), "one record per key after a full cleaning"
        for rec in self.log.read_records():
            assert not (rec.value is None and self.appended[rec.offset][2] < horizon)


CompactedLog.TestCase.settings = settings(
    max_examples=100, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
TestCompactedLog = CompactedLog.TestCase


def test_tombstones_disappear_after_retention(tmp_path: Path) -> None:
    cfg = LogConfig(cleanup_policy="compact", segment_bytes=400, flush_policy="never",
                    delete_retention_ms=RETENTION_MS)
    with PartitionLog.open(tmp_path / "p", cfg) as log:
        for i in range(50):
            key = KEYS[i % len(KEYS)]
            log.append_batch(build_batch([(key, b"%d" % i)], timestamp_ms=5_000))
        for key in KEYS[:3]:
            log.append_batch(build_batch([(key, None)], timestamp_ms=6_000))
        log.roll()
        log.compact(now_ms=6_000 + RETENTION_MS)
        assert {r.key for r in log.read_records() if r.value is None} == set(KEYS[:3])
        log.compact(now_ms=6_001 + RETENTION_MS)
        assert {r.key for r in log.read_records()} == set(KEYS[3:])
