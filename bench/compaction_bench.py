"""Compaction benchmark: cleaning a log of N keys x 10 updates, against reading it once.

    python -m bench.compaction_bench            # 100 MiB, 100 000 keys (default)
    python -m bench.compaction_bench --quick    # 10 MiB, 10 000 keys (smoke run)
    python -m bench.compaction_bench --full     # 1 GiB, 1 000 000 keys (the issue's spec)

The log: ``keys`` distinct 12-byte keys, each updated ``updates`` times (10), round-robin, in
batches of 100 records (as a producer sends them), uncompressed, values sized so that the log
holds ``size`` bytes; ``segment.bytes`` is size/8 so seven segments are sealed and cleanable.

Each phase runs in its own child process, so its peak RSS (``ru_maxrss``) is its own:

* ``raw write``   -- the log's bytes written with ``os.write`` in 1 MiB chunks, then fsync: the
  disk's sequential-write baseline, measured in the same run;
* ``log append``  -- the same batches through ``PartitionLog.append_batch`` (flush.policy
  never, one fsync at the end): what writing the log once costs;
* ``read``        -- every record of that log decoded with seriatim's reader
  (``PartitionLog.read_records``, what ``Log.read()`` returns): the yardstick of the issue's
  target, measured in the same run on the same (page-cached) log;
* ``compact``     -- ``PartitionLog.compact()`` on that log with the default cleaner config
  (``--dedupe-mib N`` overrides ``log.cleaner.dedupe.buffer.size``; a smaller buffer than the
  dirty keys need cleans in several passes, each mapping as many dirty records as have room,
  then rewriting the log from its start, as Kafka does), including the fsyncs and swaps.

The issue's targets (for ``--full``): compaction time <= 3x the read time, and compaction peak
RSS <= 200 MB. The last line reports both against the run's own read time.

Prints one table; the lead's suite runner can call :func:`run` and format its rows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

UPDATES = 10
BATCH_RECORDS = 100
KEY_BYTES = 12
RECORD_OVERHEAD = 10  # length, attributes, deltas, key/value lengths, header count
MiB = 1024 * 1024
TARGET_READ_RATIO = 3.0  # the issue: compaction <= 3x the time to read the log
TARGET_RSS_MB = 200  # the issue: peak RSS <= 200 MB (10**6 bytes)

PRESETS = {
    "quick": (10 * MiB, 10_000),
    "default": (100 * MiB, 100_000),
    "full": (1024 * MiB, 1_000_000),
}


def _value_bytes(size: int, keys: int) -> int:
    per_record = size // (keys * UPDATES)
    per_batch_share = 61 // BATCH_RECORDS + 1
    return max(1, per_record - KEY_BYTES - RECORD_OVERHEAD - per_batch_share)


def _batches(size: int, keys: int) -> Any:
    from seriatim.records import build_batch

    value = b"x" * _value_bytes(size, keys)
    pending = []
    for update in range(UPDATES):
        for k in range(keys):
            pending.append((b"key-%08d" % k, value[:-4] + b"%04d" % update))
            if len(pending) == BATCH_RECORDS:
                yield build_batch(pending, timestamp_ms=1_000_000 + update)
                pending = []
    if pending:
        yield build_batch(pending, timestamp_ms=1_000_000 + UPDATES)


def _config(size: int) -> Any:
    from seriatim.storage import LogConfig

    return LogConfig(cleanup_policy="compact", flush_policy="never",
                     segment_bytes=max(1 * MiB, size // 8))


def _phase(name: str, directory: str, size: int, keys: int, dedupe_mib: int | None
           ) -> dict[str, Any]:
    from seriatim.storage import PartitionLog
    from seriatim.storage.cleaner import Cleaner, CleanerConfig

    out: dict[str, Any] = {}
    if name == "write":
        batches = list(_batches(size, keys))  # built before timing: the log is the subject
        t0 = time.perf_counter()
        with PartitionLog.open(directory, _config(size)) as log:
            for batch in batches:
                log.append_batch(batch)
            log.flush()
            out["bytes"] = log.size_bytes
            out["segments"] = len(log.segment_base_offsets())
        out["seconds"] = time.perf_counter() - t0
    elif name == "raw":
        data = b"".join(_batches(size, keys))
        t0 = time.perf_counter()
        fd = os.open(os.path.join(directory, "raw.bin"), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            for pos in range(0, len(view), MiB):
                os.write(fd, view[pos : pos + MiB])
            os.fsync(fd)
        finally:
            os.close(fd)
        out["seconds"] = time.perf_counter() - t0
        out["bytes"] = len(data)
    elif name == "read":
        with PartitionLog.open(directory, _config(size)) as log:
            t0 = time.perf_counter()
            records = value_bytes = 0
            for rec in log.read_records():
                records += 1
                if rec.value is not None:
                    value_bytes += len(rec.value)
            out["seconds"] = time.perf_counter() - t0
            out["bytes"] = log.size_bytes
            out["records"] = records
            out["value_bytes"] = value_bytes
    elif name == "compact":
        with PartitionLog.open(directory, _config(size)) as log:
            before = log.size_bytes
            config = (CleanerConfig() if dedupe_mib is None
                      else CleanerConfig(dedupe_buffer_bytes=dedupe_mib * MiB))
            out["dedupe_mib"] = config.dedupe_buffer_bytes / MiB
            t0 = time.perf_counter()
            stats = log.compact(cleaner=Cleaner(config))
            out["seconds"] = time.perf_counter() - t0
            out["bytes_before"] = before
            out["bytes"] = log.size_bytes
            out["passes"] = stats.passes
            out["records_removed"] = stats.records_removed
            out["map_entries_max"] = stats.map_entries_max
            out["segments"] = len(log.segment_base_offsets())
            out["distinct_keys"] = len({r.key for r in log.read_records()})
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _child(name: str, directory: str, size: int, keys: int, dedupe_mib: int | None
           ) -> dict[str, Any]:
    extra = [] if dedupe_mib is None else ["--dedupe-mib", str(dedupe_mib)]
    proc = subprocess.run(
        [sys.executable, "-m", "bench.compaction_bench", "--phase", name, "--dir", directory,
         "--size", str(size), "--keys", str(keys), *extra],
        check=True, capture_output=True, text=True,
        cwd=Path(__file__).resolve().parent.parent)
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def run(size: int, keys: int, dedupe_mib: int | None = None) -> list[dict[str, Any]]:
    """Run the four phases; rows of (phase, seconds, MiB/s, peak RSS MiB, notes), the last
    one the verdict against the issue's targets (``seconds`` = compact / read)."""
    root = tempfile.mkdtemp(prefix="seriatim-compaction-bench-")
    try:
        raw_dir = os.path.join(root, "raw")
        os.makedirs(raw_dir)
        raw = _child("raw", raw_dir, size, keys, dedupe_mib)
        log_dir = os.path.join(root, "log")
        write = _child("write", log_dir, size, keys, dedupe_mib)
        read = _child("read", log_dir, size, keys, dedupe_mib)
        compact = _child("compact", log_dir, size, keys, dedupe_mib)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert compact["distinct_keys"] == keys, compact
    assert read["records"] == keys * UPDATES, read
    ratio = compact["seconds"] / read["seconds"]
    rss_mb = compact["peak_rss_mib"] * MiB / 1e6
    verdict = (f"target <= {TARGET_READ_RATIO:g}x read: "
               f"{'met' if ratio <= TARGET_READ_RATIO else 'MISSED'}; "
               f"peak RSS {rss_mb:.0f} MB, target <= {TARGET_RSS_MB} MB: "
               f"{'met' if rss_mb <= TARGET_RSS_MB else 'MISSED'}")
    rows = [
        {"phase": "raw write (os.write + fsync)", "seconds": raw["seconds"],
         "mib_s": raw["bytes"] / MiB / raw["seconds"], "rss": raw["peak_rss_mib"],
         "notes": f"{raw['bytes'] / MiB:.0f} MiB"},
        {"phase": "log append (PartitionLog)", "seconds": write["seconds"],
         "mib_s": write["bytes"] / MiB / write["seconds"], "rss": write["peak_rss_mib"],
         "notes": f"{write['segments']} segments"},
        {"phase": "read (PartitionLog.read_records)", "seconds": read["seconds"],
         "mib_s": read["bytes"] / MiB / read["seconds"], "rss": read["peak_rss_mib"],
         "notes": f"{read['records']:,} records decoded"},
        {"phase": "compact (PartitionLog.compact)", "seconds": compact["seconds"],
         "mib_s": compact["bytes_before"] / MiB / compact["seconds"],
         "rss": compact["peak_rss_mib"],
         "notes": (f"{compact['bytes_before'] / MiB:.0f} -> {compact['bytes'] / MiB:.1f} MiB, "
                   f"{compact['passes']} pass(es), dedupe buffer "
                   f"{compact['dedupe_mib']:g} MiB, map {compact['map_entries_max']:,} keys")},
        {"phase": "compact / read", "seconds": ratio, "mib_s": float("nan"),
         "rss": compact["peak_rss_mib"], "notes": verdict},
    ]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true")
    group.add_argument("--full", action="store_true")
    parser.add_argument("--dedupe-mib", type=int, default=None,
                        help="log.cleaner.dedupe.buffer.size in MiB (default: the cleaner's)")
    parser.add_argument("--phase", choices=["raw", "write", "read", "compact"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--keys", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase:
        print(json.dumps(_phase(args.phase, args.dir, args.size, args.keys, args.dedupe_mib)))
        return 0
    size, keys = PRESETS["quick" if args.quick else "full" if args.full else "default"]
    rows = run(size, keys, args.dedupe_mib)
    print(f"compaction: {keys:,} keys x {UPDATES} updates, {size / MiB:.0f} MiB log")
    print(f"{'phase':32} {'seconds':>8} {'MiB/s':>8} {'peak RSS MiB':>13}  notes")
    for r in rows[:-1]:
        print(f"{r['phase']:32} {r['seconds']:8.2f} {r['mib_s']:8.1f} {r['rss']:13.0f}  "
              f"{r['notes']}")
    last = rows[-1]
    print(f"{last['phase']:32} {last['seconds']:7.2f}x {'':8} {last['rss']:13.0f}  "
          f"{last['notes']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
