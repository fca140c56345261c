"""PartitionLog against an in-memory model: offsets, reads and the log range always agree.

Operations: append, truncate_to, delete_records_before, retention by size, clean reopen, and
unclean reopen (a copy of the live directory is the crash image, optionally with a torn tail
appended). Small segments make rolls, multi-segment reads and segment deletion common.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from seriatim.records import build_batch
from seriatim.storage import LogConfig, PartitionLog
from seriatim.storage.log import CLEAN_SHUTDOWN_FILE

CONFIG = LogConfig(flush_policy="never", segment_bytes=400, index_interval_bytes=60,
                   retention_bytes=700)


class LogModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="seriatim-model-"))
        self.path = self.tmp / "p"
        self.log = PartitionLog.open(self.path, CONFIG)
        self.batches: list[tuple[int, list[bytes]]] = []  # (base offset, values)
        self.start = 0
        self.end = 0
        self.counter = 0

    def teardown(self) -> None:
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- operations -------------------------------------------------------------------------

    @rule(n=st.integers(1, 5), size=st.integers(0, 120))
    def append(self, n: int, size: int) -> None:
        values = []
        for _ in range(n):
            self.counter += 1
            values.append(b"%d:" % self.counter + b"x" * size)
        info = self.log.append_batch(build_batch([(None, v) for v in values]))
        assert info.base_offset == self.end
        self.batches.append((self.end, values))
        self.end += n

    @precondition(lambda self: self.end > self.start)
    @rule(data=st.data())
    def truncate_to(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(self.start + 1, self.end))
        self.log.truncate_to(offset)
        kept = [(b, v) for b, v in self.batches if b + len(v) - 1 < offset]
        removed = self.batches[len(kept):]
        self.batches = kept
        # A batch is never split: the log now ends where the first removed batch began.
        self.end = removed[0][0] if removed else self.end
        self.start = min(self.start, self.end)

    @rule(data=st.data())
    def delete_records_before(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(self.start, self.end))
        assert self.log.delete_records_before(offset) == max(self.start, offset)
        self.start = max(self.start, offset)

    @rule()
    def retention_by_size(self) -> None:
        self.log.apply_retention(now_ms=0)  # retention.ms (7 days) never fires at t=0
        new_start = self.log.start_offset
        assert new_start >= self.start
        assert new_start == self.start or any(b == new_start for b, _ in self.batches) \
            or new_start == self.end
        self.start = new_start

    @rule()
    def reopen_clean(self) -> None:
        self.log.close()
        self.log = PartitionLog.open(self.path, CONFIG)
        assert self.log.recovery_report.clean_shutdown

    @rule(torn=st.sampled_from([b"", b"\0" * 100, b"\x00\x00\x00\x00\x00\x00\x00\x07\x00\x00"]))
    def reopen_after_crash(self, torn: bytes) -> None:
        crash = self.tmp / "crash"
        shutil.copytree(self.path, crash)  # what the disk holds if power fails right now
        self.log.close()
        shutil.rmtree(self.path)
        crash.rename(self.path)
        (self.path / CLEAN_SHUTDOWN_FILE).unlink(missing_ok=True)
        if torn:
            with open(sorted(self.path.glob("*.log"))[-1], "ab") as f:
                f.write(torn)
        self.log = PartitionLog.open(self.path, CONFIG)
        report = self.log.recovery_report
        assert not report.clean_shutdown
        assert report.bytes_truncated == len(torn)

    # --- checks ---------------------------------------------------------------------------------

    @invariant()
    def offsets_match(self) -> None:
        assert (self.log.start_offset, self.log.end_offset) == (self.start, self.end)

    @invariant()
    def records_match(self) -> None:
        expected = [
            (b + i, v) for b, values in self.batches for i, v in enumerate(values)
            if b + i >= self.start
        ]
        got = [(r.offset, r.value) for r in self.log.read_records(self.start)]
        assert got == expected

    @invariant()
    def reads_start_at_the_batch_holding_the_offset(self) -> None:
        for base, values in self.batches[-3:]:
            last = base + len(values) - 1
            if last < self.start:
                continue
            target = max(base, self.start)
            data = self.log.read(target, 1).bytes()
            assert int.from_bytes(data[:8], "big") == base


TestLogModel = LogModel.TestCase
TestLogModel.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
