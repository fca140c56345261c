"""kill -9 of a writer process mid-append: every acknowledged append survives, byte for byte.

The child appends batches of random sizes with flush_policy="always" and prints each offset
after ``append_many`` returns (the acknowledgement). The parent kills it with SIGKILL at a
random moment, reopens the log and checks that every acknowledged batch is present with its
exact bytes and that the next append gets the next offset.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

from seriatim.records import build_batch
from seriatim.storage import LogConfig, PartitionLog

CHILD = r"""
import random, sys, zlib
import seriatim
seed = int(sys.argv[2])
rng = random.Random(seed)
with seriatim.open(sys.argv[1], flush_policy="always", segment_bytes=200_000) as log:
    i = log.end_offset
    while True:
        n = rng.randint(1, 50)
        recs = [(b"%d" % (i + j), bytes([(i + j) % 251]) * rng.randint(0, 4000)) for j in range(n)]
        off = log.append_many(recs, timestamp_ms=1_700_000_000_000)
        print(off, n, zlib.crc32(b"".join(k + v for k, v in recs)), flush=True)
        i += n
"""


def expected_records(off: int, n: int) -> list[tuple[bytes, bytes]]:
    return [(b"%d" % (off + j), bytes([(off + j) % 251])) for j in range(n)]


def test_acknowledged_appends_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "log"
    acked: list[tuple[int, int, int]] = []
    rng = random.Random(int(os.environ.get("SERIATIM_SEED", "12345")))
    for round_ in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(rng.randrange(2**32))],
            stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        deadline = time.monotonic() + rng.uniform(0.3, 0.8)
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            off, n, crc = map(int, line.split())
            acked.append((off, n, crc))
        os.kill(proc.pid, signal.SIGKILL)
        for line in proc.stdout:  # acknowledgements written before the kill count too
            off, n, crc = map(int, line.split())
            acked.append((off, n, crc))
        proc.wait()
        assert len(acked) > round_, "the child acknowledged nothing"
        with PartitionLog.open(path, LogConfig(flush_policy="always")) as log:
            records = {r.offset: r for r in log.read_records(0)}
            for off, n, crc in acked:
                recs = [records[off + j] for j in range(n)]
                assert [r.key for r in recs] == [k for k, _ in expected_records(off, n)]
                data = b"".join((r.key or b"") + (r.value or b"") for r in recs)
                assert zlib.crc32(data) == crc, f"batch at {off} differs"
            last_off, last_n, _ = acked[-1]
            assert log.end_offset >= last_off + last_n
            # Nothing unacknowledged may sit *between* acknowledged batches: offsets are dense.
            assert sorted(records) == list(range(log.end_offset))
            nxt = log.end_offset
            assert log.append_batch(build_batch([(None, b"probe")])).base_offset == nxt
            acked.append((nxt, 0, zlib.crc32(b"")))
